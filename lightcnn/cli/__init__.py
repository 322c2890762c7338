"""What every command of the project does the same way: one log format, and user mistakes as one line.

A command's body raises the library's own errors; :func:`run` turns them into ``error: <message>`` on one line and an
exit status: 1 when the job itself failed on the way (``failures``: training diverged, images missing), 2 for
anything wrong with the input or the installation (ValueError, OSError and their kinds: bad flags, missing or
damaged files, a full disk; an optional package a command needs). An error that names a setting (an exception with a
``field``) is shown with its flag. ``--debug`` or ``LIGHTCNN_DEBUG=1`` shows the traceback instead.
"""
import logging
import os
import sys
import traceback


def use_every_core():
    """OpenMP threads for every core unless the user set ``OMP_NUM_THREADS``. MXNet reads the count once, when it is
    first imported, and otherwise used one thread on the 2-core machines this project is measured on; a process
    setting, so the commands decide it and the library, imported into someone else's program, does not."""
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))


# every command module imports this package before anything that loads MXNet (Python imports the package of
# lightcnn.cli.<command> first), so this covers them all
use_every_core()

from lightcnn.optional import MissingDependencyError  # noqa: E402 (after the thread count)

LOG_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOGGER = "lightcnn"


def setup_logging(log_path=None, quiet=False):
    """The project's logger: console (unless ``quiet``) and, with ``log_path``, a log file, in one format."""
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    logger.handlers.clear()
    logger.propagate = False
    formatter = logging.Formatter(LOG_FORMAT)
    handlers = [] if quiet else [logging.StreamHandler()]
    if log_path:
        os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
        handlers.append(logging.FileHandler(log_path))
    for handler in handlers:
        handler.setFormatter(formatter)
        logger.addHandler(handler)
    return logger


def print_listed(say, sections, limit, full_list):
    """Each non-empty (title, items) section as a count and its first ``limit`` items; the rest are in ``full_list``."""
    for title, items in sections:
        if not items:
            continue
        say(f"{title}: {len(items)}")
        for item in items[:limit]:
            say(f"    {item}")
        if len(items) > limit:
            say(f"    ... {len(items) - limit} more in {full_list}")


def add_debug_flag(parser):
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error (LIGHTCNN_DEBUG=1 too)")


def flag_of(field):
    """``lr_step_epochs`` -> ``--lr-step-epochs``."""
    return "--" + field.replace("_", "-")


def describe(error):
    """One line for the user: the message, with the flag of the setting it is about."""
    if isinstance(error, OSError) and error.strerror and error.filename:  # "[Errno 2] ..." without the errno
        text = f"{error.strerror}: {error.filename}" + (f" -> {error.filename2}" if error.filename2 else "")
    else:
        text = str(error).strip() or type(error).__name__
    field = getattr(error, "field", None)
    return f"{flag_of(field)}: {text}" if field else text


def _to_log_files(message):
    """The error line in the log files of the project's logger too (the training log), not twice on the console."""
    logger = logging.getLogger(LOGGER)
    record = logger.makeRecord(LOGGER, logging.ERROR, __file__, 0, message, None, None)
    for handler in logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def run(body, argv=None, failures=()):
    """``body(argv)`` -> its exit status; errors become one line (see the module doc)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("LIGHTCNN_DEBUG") == "1"
    try:
        return body(argv) or 0
    except failures + (ValueError, OSError, MissingDependencyError) as error:
        if debug:
            traceback.print_exc()
        message = describe(error)
        print(f"error: {message}", file=sys.stderr)
        _to_log_files(message)
        return 1 if isinstance(error, failures) else 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C, or SIGTERM in training (lightcnn.training.stopping)
        print(f"interrupted ({getattr(interrupt, 'signal_name', 'SIGINT')})", file=sys.stderr)
        return getattr(interrupt, "exit_status", 130)
