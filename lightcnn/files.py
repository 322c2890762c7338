"""Files written whole or not at all, and JSON that keeps non-finite numbers.

Every output of the project (checkpoints, features, lists, metrics, results, datasets) is written under a
temporary name in its destination folder and renamed onto its final name once complete, so a process killed
mid-write leaves the previous file, or none, but never half of one. Renamed files get the permissions any new file
of the user gets (the umask), not the 0600 of a temporary file.
"""
import contextlib
import hashlib
import json
import math
import os
import tempfile


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_file(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def sha256(path):
    """The hex sha256 of a file's content."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def remove_quietly(*paths):
    """Remove files that may not exist (cleanup must never hide the error being handled)."""
    for path in paths:
        try:
            os.remove(path)
        except OSError:
            pass


def publish(temp, path):
    """Flush ``temp`` to disk, give it the user's default permissions and rename it onto ``path``."""
    fsync_file(temp)
    os.chmod(temp, 0o666 & ~_umask())
    os.replace(temp, path)


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name beside ``path`` (same extension, which some writers need); when the block
    succeeds the file is published onto ``path``, when it fails the temporary file is removed."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    os.makedirs(folder, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp" + os.path.splitext(name)[1], dir=folder)
    os.close(handle)
    try:
        yield temp
        publish(temp, path)
    except BaseException:
        remove_quietly(temp)
        raise


def write_text(path, text):
    with atomic_path(path) as temp:
        with open(temp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def write_lines(path, lines):
    write_text(path, "".join(f"{line}\n" for line in lines))


def json_safe(value):
    """``value`` with numpy scalars and arrays as plain Python, and NaN / infinities as the strings "NaN",
    "Infinity", "-Infinity" (strict JSON has no such numbers; lfw_eval.m writes the same strings)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ndarray":
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


def json_restore(value):
    """The inverse of :func:`json_safe` for the non-finite numbers."""
    if isinstance(value, dict):
        return {k: json_restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_restore(v) for v in value]
    if value in ("Infinity", "-Infinity", "NaN"):
        return float(value)
    return value


def write_json(path, value, indent=1):
    """Strict JSON (non-finite numbers as strings), written atomically."""
    write_text(path, json.dumps(json_safe(value), indent=indent, allow_nan=False) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json_restore(json.load(f))
