"""Files written whole or not at all, and JSON that keeps non-finite numbers.

Every output of the project (checkpoints, features, lists, metrics, results, datasets) is written under a
temporary name in its destination folder and renamed onto its final name once complete, so a process killed
mid-write leaves the previous file, or none, but never half of one. Renamed files get the permissions any new file
of the user gets (the umask), not the 0600 of a temporary file.

A write that fails is a :class:`WriteError` naming the file the user asked for (not its temporary name) and the
reason in words: a full disk says "No space left on device" with the space left there, also when the writer was
MXNet's C++ code, whose own message only says "FileStream.Write incomplete".
"""
import contextlib
import errno
import hashlib
import json
import math
import os
import shutil
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


class WriteError(OSError):
    """A file could not be written: ``cannot write PATH: REASON``, one line; ``errno`` is the cause's when known."""

    def __init__(self, message, code=None):
        super().__init__(message)
        self.errno = code


_FULL = (errno.ENOSPC, errno.EDQUOT)


def mxnet_message(error):
    """The one line of an MXNetError that says something: its text starts with "Traceback (most recent call
    last):" and C++ file names; the cause is the last line, after "MXNetError: " and the failed check's condition."""
    lines = [line.strip() for line in str(error).strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith(("Traceback (most recent call last)", "File \"",
                                                                     "[bt]", "Stack trace"))]
    if not lines:
        return "MXNet gave no reason"
    last = lines[-1]
    if last.startswith("MXNetError: "):
        last = last[len("MXNetError: "):]
    if last.startswith("Check failed: ") and ": " in last[len("Check failed: "):]:
        last = last.rsplit(": ", 1)[1]  # "Check failed: <C++ condition>: <what went wrong>"
    return last


def _probe_errno(folder):
    """The errno a small write in ``folder`` fails with now (None when it succeeds): why a writer that reports no
    errno (MXNet's C++ streams) failed."""
    try:
        with tempfile.TemporaryFile(dir=folder) as f:
            f.write(b"\0" * (1 << 16))
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        return error.errno
    return None


def write_reason(path, error):
    """``(reason, errno or None)`` of ``error`` (an OSError, or MXNet's error) raised while writing ``path``, in
    words: "No space left on device" also when the writer said only "FileStream.Write incomplete"."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if isinstance(error, OSError) and error.errno:
        code = error.errno
    else:  # MXNet's C++ streams and OpenCV's imwrite lose the errno: ask the disk why
        code = _probe_errno(folder) if os.path.isdir(folder) else None
    if code:
        return os.strerror(code), code
    return (str(error) if isinstance(error, OSError) else mxnet_message(error)), None


def write_failure(path, error):
    """A :class:`WriteError` for ``error`` (an OSError, or MXNet's error) raised while writing ``path``: ``cannot
    write PATH: No space left on device (0.0 MB free there)``."""
    path = os.fspath(path)
    reason, code = write_reason(path, error)
    if code in _FULL:
        try:
            free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
            reason += f" ({free / 2 ** 20:.1f} MB free there)"
        except OSError:
            pass
    if not code and reason.startswith("cannot write "):  # the writer's own words already name the file
        return WriteError(reason)
    return WriteError(f"cannot write {path}: {reason}", code)


@contextlib.contextmanager
def writing(path):
    """Raise a failed write inside the block (an OSError, or MXNet's error) as a :class:`WriteError` naming
    ``path``."""
    try:
        yield
    except WriteError:
        raise
    except OSError as error:
        raise write_failure(path, error) from None
    except Exception as error:  # noqa: BLE001 (MXNet's error class is importable only with MXNet)
        if type(error).__name__ != "MXNetError":
            raise
        raise write_failure(path, error) from None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary file name beside ``path`` (same extension, which some writers need); when the block
    succeeds the file is published onto ``path``, when it fails the temporary file is removed. A failed write (of
    the block's writer, or of the publishing) is a :class:`WriteError` naming ``path``."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    with writing(path):
        os.makedirs(folder, exist_ok=True)
        handle, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp" + os.path.splitext(name)[1], dir=folder)
        os.close(handle)
    try:
        with writing(path):
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
