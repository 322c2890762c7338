"""Optional dependencies: imported only by the feature that needs them, with a one-line install hint when absent.

Training and extraction need none of them: torch (reading the authors' PyTorch files), onnx and onnxruntime (ONNX
export), mediapipe (face alignment), horovod (its distributed store).
"""
import importlib


class MissingDependencyError(ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


def require(module, purpose, install):
    """Import ``module`` for ``purpose``, or raise MissingDependencyError saying ``pip install <install>``."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(f"{purpose} needs {module.split('.')[0]}, which is not installed: "
                                     f"pip install {install}") from error
