"""BLUFR's configuration (which images each trial trains and tests on) and its match to a features file.

The configuration is read from ``blufr_lfw_config.mat`` (``imageList``, ``labels``, and 10-cell ``trainIndex``,
``testIndex``, ``galIndex``, ``probIndex``) or from the folder of its text lists (``image_list.txt``, ``labels.txt``,
``train_set.txt``, ``test_set.txt``, ``gallery_set.txt``, ``probe_set.txt``): the same numbers either way. The
files count from 1; here every index counts from 0. BLUFR's names are bare (``Name_0001.jpg``); a features file keys
its rows ``Name/Name_0001.jpg`` (:func:`image_key`).
"""
import dataclasses
import os
import re

import numpy as np

SETS = ("train", "test", "gallery", "probe")
MAT_NAMES = {"train": "trainIndex", "test": "testIndex", "gallery": "galIndex", "probe": "probIndex"}
LIST_FILES = {"train": "train_set.txt", "test": "test_set.txt", "gallery": "gallery_set.txt",
              "probe": "probe_set.txt"}
NAMES_SHOWN = 10  # missing images named in an error; the results JSON has them all


@dataclasses.dataclass
class Config:
    """``names`` (bare file names) and ``labels`` (ints) of every image; ``trials[t][set]``: 0-based indexes."""

    names: list
    labels: np.ndarray
    trials: list
    source: str = ""


class MissingImagesError(ValueError):
    """Images of the configuration that have no feature row; ``.names`` lists them all."""

    def __init__(self, message, names):
        super().__init__(message)
        self.names = names


def image_key(name):
    """``Name_0001.jpg`` -> ``Name/Name_0001.jpg`` (a name that already has a folder keeps its last two parts)."""
    name = name.strip().replace("\\", "/")
    if "/" in name:
        return "/".join(name.split("/")[-2:])
    m = re.match(r"^(.+)_\d+\.\w+$", name)
    if m is None:
        raise ValueError(f"BLUFR image name {name!r} is not Name_NNNN.ext")
    return f"{m.group(1)}/{name}"


def _index_column(value, what, n):
    index = np.asarray(value).astype(np.int64).ravel(order="F") - 1
    if index.size and (index.min() < 0 or index.max() >= n):
        raise ValueError(f"{what}: indexes outside 1..{n}")
    return index


def _from_mat(path):
    from lightcnn.protocols.features import _load_mat, _strings  # _load_mat's errors are one line naming the file
    content = _load_mat(path)
    for key in ("imageList", "labels") + tuple(MAT_NAMES.values()):
        if key not in content:
            raise ValueError(f"{path}: no '{key}' variable (not a BLUFR configuration)")
    names = _strings(content["imageList"])
    cells = {s: np.asarray(content[MAT_NAMES[s]]).ravel(order="F") for s in SETS}
    n_trials = {len(c) for c in cells.values()}
    if len(n_trials) != 1:
        raise ValueError(f"{path}: the index cells hold different numbers of trials")
    trials = [{s: _index_column(cells[s][t], f"{path}: {MAT_NAMES[s]}{{{t + 1}}}", len(names)) for s in SETS}
              for t in range(n_trials.pop())]
    return names, np.asarray(content["labels"]).astype(np.int64).ravel(), trials


def _read_lines(path):
    with open(path, encoding="utf-8-sig") as f:
        return [line.strip() for line in f if line.strip()]


def _read_set_file(path, n):
    """A ``*_set.txt``: the number of trials, then per trial a count and that many ``index, name`` lines."""
    lines = _read_lines(path)
    try:
        n_trials, at, trials = int(lines[0]), 1, []
        for _ in range(n_trials):
            count = int(lines[at])
            rows = [int(line.split(",")[0]) for line in lines[at + 1:at + 1 + count]]
            if len(rows) != count:
                raise IndexError
            trials.append(_index_column(rows, path, n))
            at += 1 + count
    except (ValueError, IndexError):
        raise ValueError(f"{path}: not a BLUFR set list (trials, then per trial a count and 'index, name' lines)") \
            from None
    return trials


def _from_lists(folder):
    names = _read_lines(os.path.join(folder, "image_list.txt"))
    try:
        labels = np.array([int(x) for x in _read_lines(os.path.join(folder, "labels.txt"))], dtype=np.int64)
    except ValueError:
        raise ValueError(f"{folder}/labels.txt: not one whole number per line") from None
    sets = {s: _read_set_file(os.path.join(folder, LIST_FILES[s]), len(names)) for s in SETS}
    if len({len(v) for v in sets.values()}) != 1:
        raise ValueError(f"{folder}: the set lists hold different numbers of trials")
    return names, labels, [{s: sets[s][t] for s in SETS} for t in range(len(sets["train"]))]


def load_config(path):
    """A :class:`Config` from ``blufr_lfw_config.mat`` or the folder of BLUFR's text lists."""
    if os.path.isdir(path):
        names, labels, trials = _from_lists(path)
    elif os.path.exists(path):
        names, labels, trials = _from_mat(path)
    else:
        raise FileNotFoundError(2, "no BLUFR configuration (a .mat file or the folder of its lists)", path)
    if len(labels) != len(names):
        raise ValueError(f"{path}: {len(labels)} labels for {len(names)} images")
    if not trials:
        raise ValueError(f"{path}: no trials")
    return Config(names, labels, trials, str(path))


def feature_rows(config, features):
    """Row of each configuration image in ``features.data``, -1 where it has none (absent or listed missing)."""
    index = features.index()
    for key in features.missing:
        index.pop(key, None)
    return np.array([index.get(image_key(n), -1) for n in config.names], dtype=np.int64)


def apply_missing(config, rows, exclude_missing=False, log=print):
    """The trials restricted to images with a feature, and the ``excluded`` record; refuses missing ones unless
    ``exclude_missing`` (:class:`MissingImagesError`, with their count and first names)."""
    used = np.zeros(len(config.names), dtype=bool)
    for trial in config.trials:
        for s in SETS:
            used[trial[s]] = True
    lost = np.flatnonzero(used & (rows < 0))
    names = [image_key(config.names[i]) for i in lost]
    counts = {s: [int(np.count_nonzero(rows[trial[s]] < 0)) for trial in config.trials] for s in SETS}
    if names and not exclude_missing:
        shown = "\n".join("  " + n for n in names[:NAMES_SHOWN])
        more = f"\n  ... and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
        raise MissingImagesError(f"{len(names)} of {int(used.sum())} BLUFR images have no feature (leave them out "
                                 f"of every trial with --exclude-missing, or 'exclude_missing', true in "
                                 f"blufr_eval):\n{shown}{more}", names)
    if names:
        log("excluded %d of %d images without a feature from every trial; per trial (1..%d):\n%s"
            % (len(names), int(used.sum()), len(config.trials),
               "\n".join("  %-8s %s" % (s, " ".join(str(c) for c in counts[s])) for s in SETS)))
    trials = [{s: trial[s][rows[trial[s]] >= 0] for s in SETS} for trial in config.trials]
    return trials, {"images": len(names), "names": names, **counts}
