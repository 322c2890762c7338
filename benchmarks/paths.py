"""Where the benchmarks find the project and the shared data (no MXNet here: any benchmark may import it first)."""
import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the faces no one here made: LIGHTCNN_DATA, else ../shared/data beside the project root; every benchmark's --data
# flag (or --lfw-root, --orl, ...) overrides it
SHARED_DATA = os.environ.get("LIGHTCNN_DATA") or os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "data")
