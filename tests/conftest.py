import os
import pathlib
import shutil

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
