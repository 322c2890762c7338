"""The ORL protocol of this project (the AT&T/ORL faces: 40 people, ``sN/i.pgm``, 10 images each): train on people
s1-s30, verify every pair of the ten others, whom training never saw."""
from lightcnn.protocols.lfw_pairs import Pair

TRAIN_PEOPLE = tuple(f"s{i}" for i in range(1, 31))
UNSEEN_PEOPLE = tuple(f"s{i}" for i in range(31, 41))


def unseen_pairs(people=UNSEEN_PEOPLE, images=10):
    """``(keys, pairs)``: every same/different pair of ``people``: 450 matched and 4,500 mismatched for ten people,
    dealt round-robin into 10 folds of each kind."""
    keys = [f"{p}/{i}.pgm" for p in people for i in range(1, images + 1)]
    matched, mismatched = [], []
    for a in range(len(keys)):
        for b in range(a + 1, len(keys)):
            same = keys[a].split("/")[0] == keys[b].split("/")[0]
            (matched if same else mismatched).append((keys[a], keys[b]))
    pairs = [Pair(k1, k2, True, i % 10) for i, (k1, k2) in enumerate(matched)]
    pairs += [Pair(k1, k2, False, i % 10) for i, (k1, k2) in enumerate(mismatched)]
    return keys, pairs
