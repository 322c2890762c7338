"""Device choice, decided in one place: '--gpus 0,1' -> [mx.gpu(0), mx.gpu(1)]; empty -> [mx.cpu()]."""
import mxnet as mx


class DeviceError(ValueError):
    """The GPU list cannot be used; ``field`` names the setting for the command line (``--gpus``)."""

    field = "gpus"


def contexts_from_gpus(gpus):
    """Parse a '--gpus' value into contexts; a GPU that does not exist is a clear error, not a crash later."""
    text = (gpus or "").strip()
    if not text:
        return [mx.cpu()]
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise DeviceError(f"takes comma-separated GPU numbers such as '0,1', got {gpus!r}") from None
    if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
        raise DeviceError(f"lists each GPU once, as non-negative numbers; got {gpus!r}")
    available = mx.context.num_gpus()
    missing = [i for i in ids if i >= available]
    if missing:
        found = (f"{available} GPU(s) (0..{available - 1})" if available
                 else "no GPU (a CPU build of MXNet, or no driver)")
        raise DeviceError(f"asks for GPU {', '.join(map(str, missing))} but MXNet sees {found}; leave the GPU list "
                          f"empty to run on the CPU")
    return [mx.gpu(i) for i in ids]


def as_context_list(ctx):
    """None -> [cpu]; a context -> [it]; a list stays a list."""
    if ctx is None:
        return [mx.cpu()]
    return list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
