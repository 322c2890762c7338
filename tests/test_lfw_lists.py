"""LFW image lists and pair files: the official files parse as documented, and the formats convert both ways."""
import collections

import pytest

from lightcnn.protocols import lfw_pairs
from lightcnn.protocols.lfw_pairs import Pair

from helpers.lfw_files import write_image_list, write_pair_label


def fold_counts(pairs):
    return collections.Counter((p.fold, p.is_same) for p in pairs)


# ---------------------------------------------------------------------------------------------------------------
# the real files in ../shared/data/lfw

def test_pairs_txt_view2(shared_data):
    pairs, fmt = lfw_pairs.read_pairs_with_format(shared_data / "lfw" / "pairs.txt")
    assert fmt == lfw_pairs.VIEW2
    assert len(pairs) == 6000
    assert fold_counts(pairs) == {(k, s): 300 for k in range(10) for s in (True, False)}
    # fold k is lines 600k+1 .. 600k+600 after the header, matched first
    assert [p.fold for p in pairs] == [i // 600 for i in range(6000)]
    assert [p.is_same for p in pairs[:600]] == [True] * 300 + [False] * 300
    # first line "Abel_Pacheco 1 4", first mismatched "Abdel_Madi_Shabneh 1 Dean_Barker 1",
    # first of fold 2 "Abdullah_Gul 1 6", last "Slobodan_Milosevic 2 Sok_An 1"
    assert pairs[0] == Pair("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0)
    assert pairs[300] == Pair("Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg", "Dean_Barker/Dean_Barker_0001.jpg",
                              False, 0)
    assert pairs[600] == Pair("Abdullah_Gul/Abdullah_Gul_0001.jpg", "Abdullah_Gul/Abdullah_Gul_0006.jpg", True, 1)
    assert pairs[-1] == Pair("Slobodan_Milosevic/Slobodan_Milosevic_0002.jpg", "Sok_An/Sok_An_0001.jpg", False, 9)


def test_pair_label_equals_pairs_txt(shared_data):
    from_txt = lfw_pairs.read_pairs(shared_data / "lfw" / "pairs.txt")
    from_label, fmt = lfw_pairs.read_pairs_with_format(shared_data / "lfw" / "pair.label")
    assert fmt == lfw_pairs.PAIR_LABEL
    assert from_label == from_txt  # keys, labels and folds, pair for pair


def test_lfw_patch_image_list(shared_data):
    keys = lfw_pairs.read_image_list(shared_data / "lfw" / "lfw_patch_part.txt")
    assert len(keys) == 13233 == len(set(keys))
    assert keys[0] == "Aaron_Eckhart/Aaron_Eckhart_0001.jpg"  # from "/lfw_patch/Aaron_Eckhart/...jpg\r\n"
    assert all(k.count("/") == 1 and not k.endswith("\r") and k.endswith(".jpg") for k in keys)
    # every pair of pairs.txt names an image of the list
    pairs = lfw_pairs.read_pairs(shared_data / "lfw" / "pairs.txt")
    assert {k for p in pairs for k in (p.key1, p.key2)} <= set(keys)


def test_view1_dev_test_stratified(shared_data):
    pairs, fmt = lfw_pairs.read_pairs_with_format(shared_data / "lfw" / "pairsDevTest.txt")
    assert fmt == lfw_pairs.VIEW1
    assert len(pairs) == 1000
    assert [p.is_same for p in pairs] == [True] * 500 + [False] * 500
    assert fold_counts(pairs) == {(k, s): 50 for k in range(10) for s in (True, False)}
    # each tenth in file order
    assert [p.fold for p in pairs] == [i // 50 for i in range(500)] * 2
    assert pairs[0] == Pair("Abdullah_Gul/Abdullah_Gul_0013.jpg", "Abdullah_Gul/Abdullah_Gul_0014.jpg", True, 0)
    assert pairs[500] == Pair("AJ_Lamas/AJ_Lamas_0001.jpg", "Zach_Safrin/Zach_Safrin_0001.jpg", False, 0)
    assert pairs[-1] == Pair("Todd_Petit/Todd_Petit_0001.jpg", "Vicente_Fernandez/Vicente_Fernandez_0003.jpg",
                             False, 9)


def test_view1_dev_train(shared_data):
    pairs = lfw_pairs.read_pairs(shared_data / "lfw" / "pairsDevTrain.txt")
    assert len(pairs) == 2200
    assert fold_counts(pairs) == {(k, s): 110 for k in range(10) for s in (True, False)}


def test_round_trip_real_files(shared_data, tmp_path):
    original = shared_data / "lfw" / "pairs.txt"
    pairs = lfw_pairs.read_pairs(original)
    write_pair_label(pairs, tmp_path / "pair.label")
    assert (tmp_path / "pair.label").read_bytes() == (shared_data / "lfw" / "pair.label").read_bytes()
    again = lfw_pairs.read_pairs(tmp_path / "pair.label")
    assert again == pairs
    lfw_pairs.write_pairs_txt(again, tmp_path / "pairs.txt")
    assert (tmp_path / "pairs.txt").read_bytes() == original.read_bytes()

    dev = lfw_pairs.read_pairs(shared_data / "lfw" / "pairsDevTest.txt")
    write_pair_label(dev, tmp_path / "dev.label")
    assert lfw_pairs.read_pairs(tmp_path / "dev.label") == dev  # not 10 blocks -> stratified again, same folds
    lfw_pairs.write_pairs_txt(dev, tmp_path / "dev.txt")
    assert (tmp_path / "dev.txt").read_bytes() == (shared_data / "lfw" / "pairsDevTest.txt").read_bytes()


# ---------------------------------------------------------------------------------------------------------------
# synthetic files

def write(path, text, newline="\n"):
    path.write_bytes(text.replace("\n", newline).encode())
    return path


def test_image_list_prefix_crlf_blank(tmp_path):
    path = write(tmp_path / "list.txt", "/lfw_patch/A_B/A_B_0001.jpg\n\n  C/C_0002.jpg  \nx/y/D/D_0001.jpg\n\n",
                 newline="\r\n")
    assert lfw_pairs.read_image_list(path) == ["A_B/A_B_0001.jpg", "C/C_0002.jpg", "D/D_0001.jpg"]


def test_image_list_duplicate_names_line(tmp_path):
    path = write(tmp_path / "list.txt", "/a/A/A_0001.jpg\nB/B_0001.jpg\n\nA/A_0001.jpg\n")
    with pytest.raises(ValueError, match=r"list.txt:4: duplicate image 'A/A_0001.jpg' \(first listed on line 1\)"):
        lfw_pairs.read_image_list(path)
    path = write(tmp_path / "bad.txt", "A/A_0001.jpg\nnoslash.jpg\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: .*noslash.jpg"):
        lfw_pairs.read_image_list(path)


def test_write_image_list(tmp_path):
    root = tmp_path / "faces"
    for rel in ["Bob/Bob_0002.jpg", "Bob/Bob_0001.JPG", "Al/Al_0001.png", "s1/1.pgm", "Al/notes.txt"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    (root / "stray.jpg").write_bytes(b"")  # not inside a <Name> folder
    keys = write_image_list(root, tmp_path / "list.txt")
    assert keys == ["Al/Al_0001.png", "Bob/Bob_0001.JPG", "Bob/Bob_0002.jpg", "s1/1.pgm"]
    assert lfw_pairs.read_image_list(tmp_path / "list.txt") == keys


def synthetic_view2(n_folds=10, n=3):
    pairs = []
    for k in range(n_folds):
        pairs += [Pair(lfw_pairs.lfw_key("P%d_%d" % (k, i), 1), lfw_pairs.lfw_key("P%d_%d" % (k, i), 2 + i), True, k)
                  for i in range(n)]
        pairs += [Pair(lfw_pairs.lfw_key("Q%d" % i, 1), lfw_pairs.lfw_key("R-%d" % i, 12), False, k) for i in range(n)]
    return pairs


def test_synthetic_round_trip(tmp_path):
    pairs = synthetic_view2()
    lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")
    assert (tmp_path / "pairs.txt").read_text().splitlines()[:2] == ["10\t3", "P0_0\t1\t2"]
    assert lfw_pairs.read_pairs_with_format(tmp_path / "pairs.txt") == (pairs, lfw_pairs.VIEW2)
    write_pair_label(pairs, tmp_path / "pair.label")
    assert lfw_pairs.read_pairs_with_format(tmp_path / "pair.label") == (pairs, lfw_pairs.PAIR_LABEL)
    # CRLF and blank lines change nothing
    text = (tmp_path / "pairs.txt").read_text()
    write(tmp_path / "crlf.txt", "\n" + text.replace("\n", "\n\n"), newline="\r\n")
    assert lfw_pairs.read_pairs(tmp_path / "crlf.txt") == pairs


def test_generic_pair_label_gets_stratified_folds(tmp_path):
    # 25 matched then 15 mismatched: not 10 blocks, so each tenth of each class in file order
    lines = ["1 A/A_%04d.jpg A/A_%04d.jpg" % (i + 1, i + 2) for i in range(25)]
    lines += ["0 A/A_0001.jpg B/B_%04d.jpg" % (i + 1) for i in range(15)]
    write(tmp_path / "pair.label", "\n".join(lines) + "\n")
    pairs = lfw_pairs.read_pairs(tmp_path / "pair.label")
    assert [p.fold for p in pairs[:25]] == [10 * i // 25 for i in range(25)]
    assert [p.fold for p in pairs[25:]] == [10 * i // 15 for i in range(15)]
    assert [p.fold for p in pairs[:5]] == [0, 0, 0, 1, 1]
    with pytest.raises(ValueError, match="neither order"):
        lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")  # 25 + 15 cannot be written as pairs.txt


@pytest.mark.parametrize("text, line, what", [
    ("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\tD\t1\nC\t1\t2\n", 4, "expected a matched pair"),
    ("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\nC\t1\t2\n", 5, "expected a mismatched pair"),
    ("1\nA\t1\tx\nA\t1\tB\t1\n", 2, "expected a matched pair"),
    ("1\nA\t1\t2\nA\t0\tB\t1\n", 3, "expected a mismatched pair"),
    ("1\nA\t1\t2\n\nA\t1\tB\t1\nA\t1\tB\t2\n", 1, "announces 2 pair lines, the file has 3"),
    ("1 A/A_0001.jpg A/A_0002.jpg\n0 A/A_0001.jpg B/B_0001.jpg\n2 A/A_0001.jpg A/A_0002.jpg\n", 3, "<1|0>"),
    ("1 A/A_0001.jpg A/A_0002.jpg\n0 A/A_0001.jpg\n", 2, "<1|0>"),
    ("1 A/A_0001.jpg A/A_0002.jpg\n1 A/A_0001.jpg A_0002.jpg\n", 2, "no <Name>/<file>"),
    ("\nhello world\n", 2, "not a pairs.txt header"),
])
def test_malformed_lines_name_file_and_line(tmp_path, text, line, what):
    path = write(tmp_path / "bad_pairs.txt", text)
    with pytest.raises(lfw_pairs.PairFileError) as info:
        lfw_pairs.read_pairs(path)
    message = str(info.value)
    assert f"bad_pairs.txt:{line}:" in message and what in message


def test_empty_pair_file(tmp_path):
    with pytest.raises(lfw_pairs.PairFileError, match="empty"):
        lfw_pairs.read_pairs(write(tmp_path / "empty.txt", "\n\n"))


def test_write_pairs_txt_rejects_what_it_cannot_express(tmp_path):
    pairs = synthetic_view2(n_folds=2, n=1)
    bad = [Pair("A/A_0001.jpg", "B/B_0001.jpg", True, 0)] + pairs[1:]
    with pytest.raises(ValueError, match="two names"):
        lfw_pairs.write_pairs_txt(bad, tmp_path / "x.txt")
    odd = [Pair("A/A_1.png", "A/A_0002.jpg", True, 0)] + pairs[1:]
    with pytest.raises(ValueError, match="not an LFW key"):
        lfw_pairs.write_pairs_txt(odd, tmp_path / "x.txt")
