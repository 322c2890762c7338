"""One writer per output: a run holds an exclusive lock beside what it writes, so two runs never write the same files.

``hold(target)`` locks ``TARGET.lock`` with ``flock``. The kernel releases the lock when the process ends, however it
ends (kill -9 included), so a lock is never stale. The file itself stays: a run that removed it on its way out
could race a third run that had just opened it, and the two would then lock different files. The holder writes its
pid, host and start time into the file, so that a refused run can say who is writing.
"""
import contextlib
import errno
import fcntl
import os
import socket
import time

LOCK_SUFFIX = ".lock"


class OutputBusy(ValueError):
    """Another process writes ``target``; ``field`` names the setting (shown as its flag), ``pid`` the holder (None
    when it could not be read)."""

    def __init__(self, message, field=None, pid=None):
        super().__init__(message)
        self.field, self.pid = field, pid


# this process's locks, {lock path: [fd, depth]}: flock locks an open file, so a second open of the same file in
# this process would conflict with the first; a nested hold of the same target shares the first one instead
_held = {}


def lock_path(target):
    return os.path.abspath(os.fspath(target)) + LOCK_SUFFIX


def _holder(fd):
    """(pid, text) of the process that holds the lock, from what it wrote into the file; (None, "") if nothing yet."""
    for _ in range(10):  # the holder writes its pid just after locking: give it a moment
        words = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
        if len(words) >= 3 and words[0].isdigit():
            pid, host, started = int(words[0]), words[1], " ".join(words[2:])
            where = f" on {host}" if host != socket.gethostname() else ""
            return pid, f" (pid {pid}{where}, started {started})"
        time.sleep(0.05)
    return None, ""


def acquire(target, field=None, under=True):
    """Lock ``TARGET.lock`` for this process, or raise :class:`OutputBusy` at once naming the holder.

    ``under``: ``target`` is a prefix the run writes files under (a checkpoint prefix); otherwise it is the file.
    """
    path = lock_path(target)
    if path in _held:
        _held[path][1] += 1
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            os.close(fd)
            raise
        pid, who = _holder(fd)
        os.close(fd)
        what, other = (f"under {target}", "prefix") if under else (str(target), "file name")
        raise OutputBusy(f"another run is writing {what}{who}; wait for it or choose another {other}", field,
                         pid) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
    _held[path] = [fd, 1]


def release(target):
    path = lock_path(target)
    entry = _held.get(path)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        os.close(entry[0])  # closing the last descriptor releases the lock


@contextlib.contextmanager
def hold(target, field=None, under=True):
    """Hold ``TARGET.lock`` for the block (see :func:`acquire`)."""
    acquire(target, field, under)
    try:
        yield
    finally:
        release(target)
