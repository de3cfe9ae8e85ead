"""XLA configuration for the generated code: the per-compilation ``compiler_options`` of eval,
the fusion probe, and the optional process-wide ISA cap (see docs/performance.md, "XLA options").

va2jax does not change the process's XLA defaults: the programs it compiles for generated model
code get their options per compilation (:func:`_compiler_options`: fusion off, so compile time
stays near-linear in the model's size and ``a*b + c`` rounds twice as in OSDI), and a program the
user compiles — including one that calls ``Model.function`` or ``Model.eval_traceable`` inside
the user's own ``jax.jit`` — gets XLA's defaults (JAX refuses ``compiler_options`` on a nested
``jit``, so the options cannot travel with the model code into the user's program).
:func:`configure_xla` (in :mod:`va2jax._config`) adds ``--xla_cpu_max_isa`` to ``XLA_FLAGS`` only
where ``VA2JAX_XLA_MAX_ISA`` asks for it.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from .. import _config

# the XLA settings live in ``_config`` (the optional ISA cap is set before JAX starts by every
# entry point through ``enable_x64``); re-exported here
from .._config import FAST_COMPILE_PASSES, FAST_COMPILE_XLA_FLAGS, SAFE_MAX_ISA, configure_xla  # noqa: F401
from .._paths import cache_dir

#: Batch buckets at least this large compile eval with XLA's fusion passes on
#: (``VA2JAX_FUSE_MIN_BATCH``, ``0`` = never) — where fused code gives unfused code's bits, i.e.
#: only under the ISA cap ``VA2JAX_XLA_MAX_ISA=AVX`` (:func:`fusion_is_exact`). Fusion makes each
#: compile ≈ 2× slower and runs large batches faster (PSP103 at 16,384: 1.4×,
#: docs/performance.md), so it pays where throughput matters and stays off for the small batches
#: a first result needs.
FUSE_MIN_BATCH = _config.get("FUSE_MIN_BATCH")

#: Threads that XLA-compile the pieces of a split eval at once (``VA2JAX_PARALLEL_COMPILE``;
#: default: the CPU count, at most 4; ``1`` = one after the other, as they are first called).
PARALLEL_COMPILE = _config.get("PARALLEL_COMPILE") or min(4, os.cpu_count() or 1)

#: ``compiler_options`` with XLA's fusion passes on (no HLO pass disabled; also undoes a user's
#: own ``--xla_disable_hlo_passes`` for that compilation).
FUSION_ON = {"xla_disable_hlo_passes": ""}

#: ``compiler_options`` of generated model code by default: the passes of
#: :data:`~va2jax._config.FAST_COMPILE_PASSES` off for this compilation only.
FUSION_OFF = {"xla_disable_hlo_passes": FAST_COMPILE_PASSES}

#: Whether eval compiled for a GPU (or another accelerator) is fused (``VA2JAX_GPU_FUSION``).
GPU_FUSION = _config.get("GPU_FUSION")


_FUSION_EXACT: bool | None = None


def fusion_is_exact() -> bool:
    """Whether fused XLA code rounds ``a*b + c`` twice, like OSDI (probed once per process).

    True on x86-64 only under an ISA cap without FMA (``VA2JAX_XLA_MAX_ISA=AVX`` or the user's
    own ``--xla_cpu_max_isa=AVX``, set before JAX's CPU backend started), or on a CPU without FMA;
    False with XLA's default ISA on an FMA CPU (fused code contracts ``a*b + c``). The probe:
    ``(1 + 2⁻³⁰)(1 − 2⁻³⁰) − 1`` is exactly 0 with two roundings and −2⁻⁶⁰ with one.
    """
    global _FUSION_EXACT
    if _FUSION_EXACT is None:
        jax = _jax()
        import jax.numpy as jnp

        with jax.default_device(jax.devices("cpu")[0]):  # the CPU backend, also on a GPU machine
            a = jnp.full(8, 1.0 + 2.0 ** -30)
            b = jnp.full(8, 1.0 - 2.0 ** -30)
            c = jnp.full(8, -1.0)
            fn = jax.jit(lambda a, b, c: a * b + c, compiler_options=FUSION_ON)
            _FUSION_EXACT = bool(np.all(np.asarray(fn(a, b, c)) == 0.0))
    return _FUSION_EXACT


def _compiler_options(size: int, platform: str = "cpu") -> dict[str, str]:
    """XLA options for compiling eval (and its input/assembly programs) at padded batch ``size``
    for ``platform``.

    CPU: unfused (:data:`FUSION_OFF`) — except with ``VA2JAX_XLA_FUSION=1`` (always fused) and
    for buckets of at least :data:`FUSE_MIN_BATCH` where fused code gives OSDI's bits
    (:func:`fusion_is_exact`). GPU and other accelerators: always fused (unless
    ``VA2JAX_GPU_FUSION=0``) — unfused, every operation of the model is its own kernel launch.
    Their ``exp``/``log`` are the device's own and fused code contracts ``a*b + c`` into FMAs, so
    accelerator results agree with OSDI to rounding, not to the bit (docs/performance.md)."""
    if _config.get("XLA_FUSION"):
        return dict(FUSION_ON)
    if platform != "cpu":
        return dict(FUSION_ON) if GPU_FUSION else dict(FUSION_OFF)
    if FUSE_MIN_BATCH > 0 and size >= FUSE_MIN_BATCH and fusion_is_exact():
        return dict(FUSION_ON)
    return dict(FUSION_OFF)


def _options_for(size: int):
    """``_compiler_options`` for ``size`` as a function of the target platform (for CachedJit)."""
    return functools.partial(_compiler_options, size)


_JAX_READY = False


def _jax():
    """JAX with float64 on and, unless the user chose one (or ``VA2JAX_XLA_CACHE=0``), JAX's
    persistent compilation cache under ``$VA2JAX_CACHE/xla``: a model's compiled parts are reused
    by later processes (PSP103's first result drops from ~2× to ~1× its generation time)."""
    global _JAX_READY
    import jax

    if not _JAX_READY:
        _config.enable_x64()
        if (_config.get("XLA_CACHE")
                and not jax.config.jax_compilation_cache_dir):
            jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "xla"))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)
        _JAX_READY = True
    return jax


def persistent_cache() -> None:
    """Turn on what :func:`_jax` sets up — float64 and, unless the user chose a folder or set
    ``VA2JAX_XLA_CACHE=0``, JAX's persistent compilation cache under ``$VA2JAX_CACHE/xla`` — for
    programs that do not go through model code generation (the simulator's loops)."""
    _jax()


configure_xla()
