"""Stopping a run without losing work: SIGTERM (what cluster schedulers send before they kill a job) is handled like
Ctrl-C, and a signal that arrives while a checkpoint is being written takes effect only once the checkpoint is
complete."""
import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """A stop signal; ``exit_status`` is the shell's convention (128 + the signal number)."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signal_name = signal.Signals(signum).name
        self.exit_status = 128 + signum


class StopSignals:
    """Within ``with StopSignals() as stop:`` SIGINT and SIGTERM raise :class:`Interrupted` in the main thread,
    except inside ``with stop.deferred():``, where they wait for the block to finish. Outside the main thread
    (where Python cannot install handlers) it does nothing."""

    def __init__(self):
        self._previous = {}
        self._deferring = False
        self._pending = None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False

    def _handle(self, signum, frame):
        if self._deferring:
            self._pending = signum
        else:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def deferred(self):
        """Hold stop signals until the block is done; then raise the one that arrived, if any."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        pending, self._pending = self._pending, None
        if pending is not None:
            raise Interrupted(pending)
