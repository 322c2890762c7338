"""The one similarity of the project: the cosine of two features, for the LFW protocol and for a pair of photos alike,
so that the threshold the evaluator chooses is a threshold on the very numbers ``verify-pair`` compares."""
import numpy as np


def cosine_scores(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (n, D) arrays, in double; 0 where a norm is 0."""
    x1 = np.asarray(x1, dtype=np.float64)
    x2 = np.asarray(x2, dtype=np.float64)
    # Row sums of elementwise products, so identical rows give bit-identical scores (exact ties), as in lfw_eval.m.
    dot = np.sum(x1 * x2, axis=1)
    norms = np.sqrt(np.sum(x1 * x1, axis=1)) * np.sqrt(np.sum(x2 * x2, axis=1))
    zero = norms == 0
    return np.where(zero, 0.0, dot / np.where(zero, 1.0, norms))


def zero_norm(data):
    """Rows whose norm is 0, computed as :func:`cosine_scores` computes it (they score cosine 0)."""
    x = np.asarray(data, dtype=np.float64)
    return np.sum(x * x, axis=1) == 0
