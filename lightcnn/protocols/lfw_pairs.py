"""LFW image lists and pair files (pure Python + numpy; no MXNet).

Image keys are ``Name/Name_NNNN.jpg``: the last two path components, so the original port's
``/lfw_patch/Name/Name_0001.jpg`` and a bare ``Name/Name_0001.jpg`` name the same image.

Pair files, detected from their content (``lfw_verification-matlab/lfw_read_pairs.m`` applies the same rules):

* official View 2 ``pairs.txt``: header ``F<TAB>n`` (``10\\t300``), then F blocks of n matched lines
  ``Name i j`` followed by n mismatched lines ``Name1 i Name2 j``. Fold k is block k.
* official View 1 ``pairsDevTrain.txt`` / ``pairsDevTest.txt``: header ``N``, then N matched, then N mismatched.
* the original evaluator's ``pair.label``: ``<1|0> key1 key2`` per line, no header.

View 1 files are one block (all matched, then all mismatched), so cutting them into ten contiguous folds would
make every fold one-sided. They get 10 *stratified* folds instead: the i-th matched pair (0-based, file order)
goes to fold ``floor(10 * i / n_matched)``, the i-th mismatched pair to ``floor(10 * i / n_mismatched)``.
A ``pair.label`` whose labels form 10 equal blocks of n ones then n zeros (the 6,000-line file written from
``pairs.txt``, in the same order) gets those blocks as folds, like ``pairs.txt``; any other ``pair.label`` gets
stratified folds. Folds are 0-based here (printed 1-based).

Blank lines are ignored everywhere; CRLF endings are accepted. Errors name the file, the 1-based line number
and the offending line.
"""
import dataclasses
import re

from lightcnn import files

STRATIFIED_FOLDS = 10

# The format names (also written by lfw_eval.m into its results).
VIEW2, VIEW1, PAIR_LABEL = "pairs.txt (View 2)", "pairs.txt (View 1)", "pair.label"


@dataclasses.dataclass(frozen=True)
class Pair:
    """One verification pair: two image keys, whether they show the same person, and its fold (0-based)."""

    key1: str
    key2: str
    is_same: bool
    fold: int


class PairFileError(ValueError):
    pass


def image_key(path):
    """``/lfw_patch/Name/Name_0001.jpg`` -> ``Name/Name_0001.jpg`` (last two components; ``/`` or ``\\``)."""
    parts = [p for p in re.split(r"[/\\]", path.strip()) if p]
    if len(parts) < 2:
        raise ValueError(f"image path {path!r} has no <Name>/<file> components")
    return parts[-2] + "/" + parts[-1]


def lfw_key(name, index):
    """Key of image ``index`` (1-based) of ``name`` as the official pair files number them."""
    return "%s/%s_%04d.jpg" % (name, name, index)


_KEY_RE = re.compile(r"^(?P<name>[^/]+)/(?P=name)_(?P<index>\d+)\.jpg$")


def split_lfw_key(key):
    """``Name/Name_0004.jpg`` -> ``("Name", 4)``; ValueError for a key pairs.txt cannot express."""
    m = _KEY_RE.match(key)
    if m is None:
        raise ValueError(f"{key!r} is not an LFW key Name/Name_NNNN.jpg")
    return m.group("name"), int(m.group("index"))


def _lines(path):
    """(line_number, stripped_text) for every non-blank line; CRLF and a BOM tolerated."""
    with open(path, "r", encoding="utf-8-sig", newline="") as f:
        text = f.read()
    # The same line breaks as lfw_read_pairs.m (str.splitlines would also split on \v, \f, \x1c, ...).
    for number, line in enumerate(re.split(r"\r\n|\n|\r", text), start=1):
        line = line.strip()
        if line:
            yield number, line


# ---------------------------------------------------------------------------------------------------------------
# image lists

def read_image_list(path):
    """Keys ``Name/Name_NNNN.jpg`` of an image list, one path per line, in file order.

    Any leading prefix is reduced to the last two components; a key listed twice is an error naming both lines.
    """
    keys, first_line = [], {}
    for number, line in _lines(path):
        try:
            key = image_key(line)
        except ValueError as e:
            raise ValueError(f"{path}:{number}: {e}: {line!r}") from None
        if key in first_line:
            raise ValueError(f"{path}:{number}: duplicate image {key!r} (first listed on line {first_line[key]})")
        first_line[key] = number
        keys.append(key)
    return keys


# ---------------------------------------------------------------------------------------------------------------
# pair files

def _stratified_folds(is_same, n_folds=STRATIFIED_FOLDS):
    """Fold of each pair: each tenth of the matched and each tenth of the mismatched pairs, in file order."""
    n_pos = sum(1 for s in is_same if s)
    n_neg = len(is_same) - n_pos
    folds, i_pos, i_neg = [], 0, 0
    for same in is_same:
        if same:
            folds.append(n_folds * i_pos // n_pos)
            i_pos += 1
        else:
            folds.append(n_folds * i_neg // n_neg)
            i_neg += 1
    return folds


def _block_folds(is_same, n_folds=STRATIFIED_FOLDS):
    """Folds if the labels are n_folds blocks of n matched then n mismatched (n >= 1), else None."""
    total = len(is_same)
    if total == 0 or total % (2 * n_folds):
        return None
    n = total // (2 * n_folds)
    block = [True] * n + [False] * n
    if list(is_same) != block * n_folds:
        return None
    return [i // (2 * n) for i in range(total)]


def _is_uint(token):
    return re.fullmatch(r"[0-9]+", token) is not None and int(token) > 0


def _parse_pair_line(path, number, line, tokens, matched):
    if matched:
        if len(tokens) != 3 or not (_is_uint(tokens[1]) and _is_uint(tokens[2])):
            raise PairFileError(f"{path}:{number}: expected a matched pair 'Name i j', got {line!r}")
        return lfw_key(tokens[0], int(tokens[1])), lfw_key(tokens[0], int(tokens[2]))
    if len(tokens) != 4 or not (_is_uint(tokens[1]) and _is_uint(tokens[3])):
        raise PairFileError(f"{path}:{number}: expected a mismatched pair 'Name1 i Name2 j', got {line!r}")
    return lfw_key(tokens[0], int(tokens[1])), lfw_key(tokens[2], int(tokens[3]))


def read_pairs_with_format(path):
    """Like :func:`read_pairs`, also returning the detected format (VIEW2, VIEW1 or PAIR_LABEL)."""
    lines = list(_lines(path))
    if not lines:
        raise PairFileError(f"{path}: no pairs (empty file)")
    number, line = lines[0]
    tokens = line.split()

    if 1 <= len(tokens) <= 2 and all(_is_uint(t) for t in tokens):
        body = lines[1:]
        if len(tokens) == 2:
            fmt, n_blocks, n = VIEW2, int(tokens[0]), int(tokens[1])
        else:
            fmt, n_blocks, n = VIEW1, 1, int(tokens[0])
        if len(body) != 2 * n * n_blocks:
            raise PairFileError(f"{path}:{number}: header {line!r} announces {2 * n * n_blocks} pair lines, "
                                f"the file has {len(body)}")
        pairs = []
        for i, (number, line) in enumerate(body):
            block, within = divmod(i, 2 * n)
            key1, key2 = _parse_pair_line(path, number, line, line.split(), matched=within < n)
            pairs.append((key1, key2, within < n, block))
        if fmt == VIEW1:
            folds = _stratified_folds([p[2] for p in pairs])
            pairs = [(k1, k2, same, fold) for (k1, k2, same, _), fold in zip(pairs, folds)]
        return [Pair(*p) for p in pairs], fmt

    if len(tokens) == 3 and tokens[0] in ("0", "1"):
        raw = []
        for number, line in lines:
            tokens = line.split()
            try:
                if len(tokens) != 3 or tokens[0] not in ("0", "1"):
                    raise ValueError("expected '<1|0> Name/Name_NNNN.jpg Name/Name_NNNN.jpg'")
                raw.append((image_key(tokens[1]), image_key(tokens[2]), tokens[0] == "1"))
            except ValueError as e:
                raise PairFileError(f"{path}:{number}: {e}, got {line!r}") from None
        is_same = [r[2] for r in raw]
        folds = _block_folds(is_same) or _stratified_folds(is_same)
        return [Pair(k1, k2, same, fold) for (k1, k2, same), fold in zip(raw, folds)], PAIR_LABEL

    raise PairFileError(f"{path}:{number}: not a pairs.txt header ('10<TAB>300' or 'N') nor a pair.label line "
                        f"('<1|0> key1 key2'): {line!r}")


def read_pairs(path):
    """Pairs of an LFW pair file (View 2 / View 1 ``pairs.txt`` or ``pair.label``), in file order, with folds."""
    return read_pairs_with_format(path)[0]


def _block_layout(pairs):
    """(n_folds, n) if the pairs are folds 0..F-1 in order, each n matched then n mismatched; else None."""
    if not pairs:
        return None
    n_folds = max(p.fold for p in pairs) + 1
    if len(pairs) % (2 * n_folds):
        return None
    n = len(pairs) // (2 * n_folds)
    for i, p in enumerate(pairs):
        block, within = divmod(i, 2 * n)
        if p.fold != block or p.is_same != (within < n):
            return None
    return n_folds, n


def write_pairs_txt(pairs, path):
    """Write pairs in the official format.

    Header ``F<TAB>n`` when the pairs are F folds in block order (each n matched then n mismatched; 10 folds
    for View 2), else header ``N`` (View 1) when they are N matched then N mismatched. Anything else, or a key
    that is not ``Name/Name_NNNN.jpg``, or a matched pair of two names, cannot be written and is a ValueError.
    """
    pairs = list(pairs)
    layout = _block_layout(pairs)
    n_same = sum(p.is_same for p in pairs)
    if layout is not None and layout[0] > 1:
        header = "%d\t%d" % layout
    elif n_same * 2 == len(pairs) and all(p.is_same for p in pairs[:n_same]):
        header = "%d" % n_same
    else:
        raise ValueError("pairs.txt needs blocks of n matched then n mismatched pairs (one block per fold, or "
                         "one block in all); these pairs are in neither order")
    lines = [header]
    for p in pairs:
        (name1, i), (name2, j) = split_lfw_key(p.key1), split_lfw_key(p.key2)
        if p.is_same:
            if name1 != name2:
                raise ValueError(f"matched pair of two names cannot be written to pairs.txt: {p}")
            lines.append("%s\t%d\t%d" % (name1, i, j))
        else:
            lines.append("%s\t%d\t%s\t%d" % (name1, i, name2, j))
    files.write_lines(path, lines)
