"""The per-epoch LFW check of training: after every epoch, the 10-fold accuracy of the current network on an LFW
pair file (``--verify-pairs pairs.txt --verify-root DIR``), with the extractor's preprocessing and the evaluator's
protocol."""
import logging
import os

from lightcnn import extract
from lightcnn.images import Preprocess
from lightcnn.protocols import lfw_pairs, tenfold
from lightcnn.protocols.features import Features


def make_pair_verifier(pairs_path, image_root, preprocess=Preprocess(), batch_size=extract.DEFAULT_BATCH_SIZE,
                       flip=False, logger=None, workers=None, log_interval=None):
    """``verify(net, ctx) -> float``: the 10-fold mean accuracy of ``net`` on an LFW pair file.

    Only the images the pairs use are extracted (``image_root/Name/Name_NNNN.jpg``). Pairs with an image that is
    missing are excluded and reported: the list once here, and the count with every result. Pairs with an image
    that exists but cannot be decoded are excluded the same way (and listed when first seen). The folds are the
    pair file's own (see :func:`lightcnn.protocols.lfw_pairs.read_pairs`); every fold must keep at least one pair.
    """
    log = logger or logging.getLogger(__name__)
    pairs = lfw_pairs.read_pairs(pairs_path)
    keys = list(dict.fromkeys(k for p in pairs for k in (p.key1, p.key2)))
    paths = {k: os.path.join(image_root, *k.split("/")) for k in keys}
    absent = {k for k in keys if not os.path.isfile(paths[k])}
    lost = [p for p in pairs if p.key1 in absent or p.key2 in absent]
    if lost:
        log.warning("verification: %d of %d pairs of %s are excluded, an image is missing under %s:\n%s",
                    len(lost), len(pairs), pairs_path, image_root,
                    "\n".join(f"  fold {p.fold + 1} {'same' if p.is_same else 'diff'} {p.key1} {p.key2}"
                              for p in lost))
    n_folds = max(p.fold for p in pairs) + 1
    empty = sorted(set(range(n_folds)) - {p.fold for p in pairs if p.key1 not in absent and p.key2 not in absent})
    if n_folds < 2 or empty:
        raise ValueError(f"{pairs_path}: verification needs 2 or more folds, each with a pair whose images exist; "
                         f"found {n_folds} fold(s), without such a pair: {[k + 1 for k in empty]}")
    present = [k for k in keys if k not in absent]
    reported = {(p.key1, p.key2) for p in lost}
    aligned = extract.input_is_aligned(image_root, preprocess, log)  # else aligned on the way, when trained so

    def verify(net, ctx):
        result = extract.extract_features(net, [paths[k] for k in present], preprocess, ctx, batch_size, flip,
                                          skip_missing=True, keys=present, workers=workers,
                                          log_interval=log_interval, log=log, aligned=aligned)
        features = Features(result.features, result.keys, frozenset(result.missing))
        results = tenfold.verify(features, pairs, exclude_missing=True, log=lambda message: None)
        new = [tuple(pair) for pair in results["excluded"] if tuple(pair) not in reported]
        if new:
            log.warning("verification: %d more pairs excluded, an image cannot be read:\n%s", len(new),
                        "\n".join(f"  {a} {b}" for a, b in new))
            reported.update(new)
        log.info("verification on %s: %d-fold accuracy %.4f +- %.4f, AUC %.4f, over %d of %d pairs "
                 "(%d excluded: image missing or unreadable)", os.path.basename(pairs_path), results["n_folds"],
                 results["accuracy_mean"], results["accuracy_std"], results["auc"], results["n_pairs"],
                 results["n_listed"], results["n_excluded"])
        return float(results["accuracy_mean"])

    return verify
