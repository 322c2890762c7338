"""Device choice, decided in one place: '--gpus 0,1' -> [mx.gpu(0), mx.gpu(1)]; empty -> [mx.cpu()]."""
import mxnet as mx


def contexts_from_gpus(gpus):
    """Parse a '--gpus' value into contexts; a GPU that does not exist is a clear error, not a crash later."""
    text = (gpus or "").strip()
    if not text:
        return [mx.cpu()]
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus takes comma-separated GPU numbers such as '0,1', got {gpus!r}") from None
    if len(set(ids)) != len(ids) or any(i < 0 for i in ids):
        raise ValueError(f"--gpus lists each GPU once, as non-negative numbers; got {gpus!r}")
    available = mx.context.num_gpus()
    missing = [i for i in ids if i >= available]
    if missing:
        found = f"{available} GPU(s) (0..{available - 1})" if available else "no GPU (a CPU build of MXNet, or no driver)"
        raise ValueError(f"--gpus asks for GPU {', '.join(map(str, missing))} but MXNet sees {found}; "
                         f"leave --gpus empty to train on the CPU")
    return [mx.gpu(i) for i in ids]
