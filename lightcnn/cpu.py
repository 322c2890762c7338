"""The CPU as oneDNN (MXNet's CPU kernels) will use it: /proc/cpuinfo's model name and instruction-set flags, and the
cap the ``DNNL_MAX_CPU_ISA`` environment variable puts on them.

MXNet 1.9.1 bundles oneDNN 2.4, which honours ``DNNL_MAX_CPU_ISA`` (read once, when MXNet loads; exact upper-case
names, anything else is ignored) and ignores ``MKLDNN_MAX_CPU_ISA``. Held to ``AVX2``, a CPU with AVX-512, VNNI and
bfloat16 runs the kernels of a plain AVX2 machine, so one machine can run, and test, the code paths of another kind.
What the project decides from the CPU (bfloat16 allowed, the int8 recipe) uses :func:`usable_flags`, so it decides
as it would on that other machine.
"""
import os

ISA_ENV = "DNNL_MAX_CPU_ISA"
# the flags this project asks about, as /proc/cpuinfo names them, that oneDNN may use under each cap
_SSE41 = {"sse4_1"}
_AVX2 = _SSE41 | {"avx", "avx2"}
_AVX512 = _AVX2 | {"avx512f"}
ISA_CAPS = {
    "SSE41": _SSE41,
    "AVX": _SSE41 | {"avx"},
    "AVX2": _AVX2,
    "AVX2_VNNI": _AVX2 | {"avx_vnni"},
    "AVX512_CORE": _AVX512,
    "AVX512_CORE_VNNI": _AVX512 | {"avx512_vnni"},
    "AVX512_CORE_BF16": _AVX512 | {"avx512_vnni", "avx512_bf16"},
    "AVX512_CORE_AMX": _AVX512 | {"avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8"},
}
ISA_FLAGS = set().union(*ISA_CAPS.values())
# what the project's choices depend on, in the order a benchmark's header prints them
REPORTED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def _cpuinfo_field(name, path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == name:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's instruction-set flags (a set of names; empty when they cannot be read, e.g. not Linux)."""
    field = _cpuinfo_field("flags", path)
    return set(field.split()) if field else set()


def cpu_model(path="/proc/cpuinfo"):
    """The CPU's model name (``"unknown CPU"`` when it cannot be read)."""
    return _cpuinfo_field("model name", path) or "unknown CPU"


def isa_cap(environ=None):
    """The ``DNNL_MAX_CPU_ISA`` cap oneDNN applies (one of :data:`ISA_CAPS`), or None (no cap, or a value oneDNN
    ignores: it matches exact upper-case names only)."""
    value = (os.environ if environ is None else environ).get(ISA_ENV, "")
    return value if value in ISA_CAPS else None


def usable_flags(flags=None, environ=None):
    """The CPU's flags less the instruction sets the cap holds oneDNN off."""
    flags = cpu_flags() if flags is None else set(flags)
    cap = isa_cap(environ)
    return {flag for flag in flags if cap is None or flag not in ISA_FLAGS or flag in ISA_CAPS[cap]}


def describe(flags=None, environ=None):
    """One line naming the CPU, its reported flags, and the cap when one holds oneDNN back, for logs and benchmarks."""
    flags = cpu_flags() if flags is None else set(flags)
    present = [flag for flag in REPORTED_FLAGS if flag in flags]
    text = f"{cpu_model()} ({' '.join(present) or 'none of ' + ' '.join(REPORTED_FLAGS)})"
    cap = isa_cap(environ)
    return text + (f"; oneDNN held to {cap} by {ISA_ENV}" if cap else "")


def summary(flags=None, environ=None):
    """The same facts as a dict (benchmark JSON): model, flags present, the cap, and the flags oneDNN may use."""
    flags = cpu_flags() if flags is None else set(flags)
    usable = usable_flags(flags, environ)
    return {"model": cpu_model(), "flags": [f for f in REPORTED_FLAGS if f in flags], "isa_cap": isa_cap(environ),
            "usable_flags": [f for f in REPORTED_FLAGS if f in usable]}
