"""lightcnn.tools.orl_benchmark: the protocol of tests/test_orl.py (its measured runs are in the README)."""
import collections

from lightcnn.tools import orl_benchmark


def test_unseen_pairs_are_test_orls():
    keys, pairs = orl_benchmark.unseen_pairs()
    assert len(keys) == 100 and keys[0] == "s31/1.pgm" and keys[-1] == "s40/10.pgm"
    assert len(pairs) == 4950 and sum(p.is_same for p in pairs) == 450
    per_fold = collections.Counter((p.fold, p.is_same) for p in pairs)
    assert all(per_fold[(k, True)] == 45 and per_fold[(k, False)] == 450 for k in range(10))
    assert not set(orl_benchmark.TRAIN_PEOPLE) & {k.split("/")[0] for k in keys}
