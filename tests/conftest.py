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
