"""Numeric precision, decided in one place: which dtype a run may use on which hardware, MXNet's AMP set up once per
process, and the conversions of a float32 network for low-precision inference.

- ``float32``: everywhere.
- ``bfloat16``: CPUs whose instruction set has bfloat16 arithmetic (``avx512_bf16`` or ``amx_bf16`` in
  /proc/cpuinfo, and oneDNN not held below them: :mod:`lightcnn.cpu`). MXNet 1.9.1's bfloat16 kernels are oneDNN's,
  CPU only. Same exponent range as float32, so no loss scaling.
- ``float16``: GPUs, with AMP's dynamic loss scaling (float16 overflows at 65504).

Training keeps float32 master weights and optimizer states: AMP only inserts casts around the operators it lists
(convolutions and fully connected layers run in the low precision), so checkpoints are float32 and portable.
``mxnet.contrib.amp.init`` rewrites MXNet's operator functions for the whole process and must run before a network
is built: :func:`init_amp` is the only caller, and refuses a second, different dtype in the same process.
"""
from lightcnn import cpu

DTYPES = ("float32", "bfloat16", "float16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

_amp_dtype = None  # the dtype amp.init ran with in this process


class PrecisionError(ValueError):
    """A dtype this hardware (or this process) cannot run; ``field`` names the setting (``--dtype``)."""

    field = "dtype"


def cpu_has_bf16(flags=None):
    """Whether oneDNN will run bfloat16 arithmetic here (the flag, and no DNNL_MAX_CPU_ISA cap below it)."""
    return any(flag in cpu.usable_flags(flags) for flag in BF16_CPU_FLAGS)


def fastest_cpu_dtype(flags=None):
    """What make lfw and make demo train and extract in on this CPU: bfloat16 where it has bfloat16 arithmetic."""
    return "bfloat16" if cpu_has_bf16(flags) else "float32"


def check_dtype(dtype, ctxs, flags=None):
    """Raise PrecisionError (one line) when ``dtype`` cannot run on ``ctxs`` (a list of MXNet contexts)."""
    if dtype not in DTYPES:
        raise PrecisionError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)}")
    on_gpu = any(ctx.device_type == "gpu" for ctx in ctxs)
    if dtype == "bfloat16":
        if on_gpu:
            raise PrecisionError("bfloat16 runs on the CPU only in MXNet 1.9.1 (oneDNN kernels); on GPUs use float16")
        if not cpu_has_bf16(flags):
            held = f" (held off by {cpu.ISA_ENV}={cpu.isa_cap()})" if cpu.isa_cap() else ""
            raise PrecisionError(f"bfloat16 needs a CPU with bfloat16 arithmetic (the {' or '.join(BF16_CPU_FLAGS)} "
                                 f"flag in /proc/cpuinfo); this CPU has neither{held}: use float32")
    if dtype == "float16" and not on_gpu:
        raise PrecisionError("float16 needs a GPU (--gpus); on a CPU use float32"
                             + (" or bfloat16 (this CPU has it)" if cpu_has_bf16(flags) else ""))


def init_amp(dtype):
    """Set up MXNet's AMP for ``dtype`` in this process (before any network is built); float32 does nothing."""
    global _amp_dtype
    if dtype == "float32":
        if _amp_dtype is not None:
            raise PrecisionError(f"this process already runs AMP in {_amp_dtype} (amp.init is process-wide); "
                                 f"float32 needs a new process")
        return
    if _amp_dtype == dtype:
        return
    if _amp_dtype is not None:
        raise PrecisionError(f"this process already runs AMP in {_amp_dtype} (amp.init is process-wide); {dtype} "
                             f"needs a new process")
    from mxnet.contrib import amp
    amp.init(target_dtype=dtype)
    _amp_dtype = dtype


def amp_dtype():
    """The dtype AMP runs in in this process (None: float32, AMP not initialised)."""
    return _amp_dtype


def uses_loss_scaling(dtype):
    """float16's range needs the loss scaled up (and the scaler skips steps whose gradients overflow)."""
    return dtype == "float16"


def init_trainer(trainer, dtype):
    """Attach AMP's dynamic loss scaler to a Gluon Trainer when ``dtype`` needs one."""
    if uses_loss_scaling(dtype):
        from mxnet.contrib import amp
        amp.init_trainer(trainer)


def scaled(losses, trainer):
    """The losses to differentiate (inside ``autograd.record``): scaled by the trainer's loss scale under float16,
    as they are otherwise. The Trainer divides the gradients by the same scale in ``step``."""
    if getattr(trainer, "_amp_loss_scaler", None) is None:
        return losses
    from mxnet.contrib import amp
    with amp.scale_loss(losses, trainer) as scaled_losses:
        return scaled_losses


def loss_scale(trainer):
    """The current loss scale (None without loss scaling)."""
    scaler = getattr(trainer, "_amp_loss_scaler", None)
    return None if scaler is None else scaler.loss_scale


def to_float32(x):
    """An NDArray in float32 (low-precision outputs are cast; numpy has no bfloat16)."""
    import mxnet as mx
    import numpy as np
    if x.dtype == np.float32:
        return x
    # astype knows float16 but not MXNet's bfloat16 (a structured numpy dtype); amp_cast knows both
    return mx.nd.amp_cast(x, dtype="float32")


def convert_for_inference(block, dtype, ctx):
    """A float32 HybridBlock (hybridized and run once) as a block computing in ``dtype`` (AMP's casts inserted
    around the operators it lists); float32 returns ``block`` unchanged."""
    if dtype == "float32":
        return block
    from mxnet.contrib import amp
    converted = amp.convert_hybrid_block(block, target_dtype=dtype, ctx=ctx)
    converted.hybridize(static_alloc=True, static_shape=True)
    return converted
