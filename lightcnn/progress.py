"""Progress of a long job on stderr: count, rate and ETA; and durations as h:mm:ss."""
import sys
import time


class Progress:
    """``PREFIX done/total images (rate/s, ETA h:mm:ss)EXTRA`` lines on stderr while a long job runs, at most every
    ``every`` seconds, and a last one from :meth:`finish` (the ETA when the total is known and work remains)."""

    def __init__(self, prefix, total=None, every=2.0, enabled=True):
        self.prefix, self.total, self.every, self.enabled = prefix, total, every, enabled
        self.start = self.last = time.time()
        self.done = 0

    def update(self, n=1, extra=""):
        self.done += n
        now = time.time()
        if self.enabled and now - self.last >= self.every:
            self.last = now
            self._print(extra)

    def finish(self, extra=""):
        if self.enabled:
            self._print(extra)

    def _print(self, extra):
        rate = self.done / max(time.time() - self.start, 1e-9)
        of = f"/{self.total}" if self.total is not None else ""
        left = (self.total or 0) - self.done
        eta = f", ETA {format_seconds(left / rate)}" if left > 0 and rate > 0 else ""
        print(f"{self.prefix}{self.done}{of} images ({rate:.1f}/s{eta}){extra}", file=sys.stderr, flush=True)


def format_seconds(seconds):
    """``h:mm:ss``."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
