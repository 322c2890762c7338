import logging
import os
import pathlib
import shutil
import subprocess

import pytest

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data():
    """../shared/data (real faces no one here made); skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real-face data not found at {SHARED_DATA} (../shared/data beside the project root)")
    return SHARED_DATA


@pytest.fixture
def mounted(tmp_path):
    """mount(options) -> a fresh tmpfs folder (``size=64k``, ``ro,size=1m``): a real full or read-only disk."""
    points = []

    def mount(options):
        point = tmp_path / f"disk{len(points)}"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True,
                              text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (root in a container that allows it is needed): "
                        f"{done.stderr.strip()}")
        points.append(point)
        return point

    yield mount
    for point in points:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


@pytest.fixture(scope="session")
def octave_cli():
    path = shutil.which("octave-cli")
    if path is None:
        pytest.skip("octave-cli not installed (CI installs GNU Octave: apt-get install octave)")
    return path


@pytest.fixture(scope="session")
def worker_run(tmp_path_factory):
    """worker_run(epochs, *extra) -> the folder of a ``tests/helpers/fit_worker.py`` run with those arguments, made
    once per session and shared by every test that asks for the same run (read it, or copy it to change it)."""
    from helpers.runs import run_worker
    made = {}

    def get(epochs, *extra):
        key = (epochs,) + tuple(map(str, extra))
        if key not in made:
            made[key] = tmp_path_factory.mktemp(f"run{epochs}")
            run_worker(made[key], epochs, *extra)
        return made[key]
    return get


@pytest.fixture(autouse=True)
def project_logger_as_it_was():
    """A command run in-process (``main([...])``) sets up the project's logger (its own handlers, no propagation to
    the root, where pytest's caplog listens): put it back, so no test depends on which ran before it in its process
    (the Makefile spreads the files over two processes)."""
    logger = logging.getLogger("lightcnn")
    handlers, propagate, level = logger.handlers[:], logger.propagate, logger.level
    yield
    logger.handlers[:] = handlers
    logger.propagate = propagate
    logger.setLevel(level)
