"""Every ``VA2JAX_*`` environment variable: its meaning, default and check, in one place.

Read a variable with :func:`get` (``get("CACHE")`` for ``VA2JAX_CACHE``); an unknown name is a
programming error (``KeyError``), a bad value a one-line :class:`~va2jax.errors.Va2JaxError` that
names the variable. :func:`check_all` validates every variable that is set (the CLI calls it
first, so a typo fails before any work).

Two kinds of variables:

* **per use** — read from the environment at each :func:`get`, so a process (or a test) may change
  them between calls: caches, corpus and model paths, the simulator's model choice;
* **per process** — read when the module that uses them is first imported (XLA flags must be set
  before JAX starts; code-generation settings change the generated code, which is cached), marked
  "import" below; changing them later has no effect.

Importing va2jax leaves the process's XLA configuration (``XLA_FLAGS``) alone unless
``VA2JAX_XLA_MAX_ISA`` asks for an ISA cap: its own options (fusion off for generated model code)
are passed per compilation, to the programs va2jax compiles (docs/performance.md, "XLA options").

======================== ========== =============================================================
variable                 read       meaning (default)
======================== ========== =============================================================
VA2JAX_CACHE             per use    root of the on-disk caches ($XDG_CACHE_HOME/va2jax)
VA2JAX_CORPUS            per use    third-party Verilog-A corpus (.cache/corpus in the repository)
VA2JAX_MODEL_PATH        per use    extra folders (os.pathsep-separated) searched for .va models
VA2JAX_SIM_MODELS        per use    model source for netlist ``load``: auto | va | osdi | builtin
VA2JAX_BACKEND           per use    Model.eval/evaluator backend: jax | numpy | native (unset: native on CPU)
VA2JAX_SIM_DEVICE_EVAL   per use    device evaluation in the simulator: native | inline | separate (CPU: native)
VA2JAX_SIM_DENSE_SOLVE   per use    Newton's dense solve: native | lapack (CPU, n <= 12: native)
VA2JAX_SIM_NATIVE_STAMPS per use    1: device stamps summed by one native kernel per output (CPU, dense)
VA2JAX_SIM_NATIVE_NEWTON per use    1: the whole Newton solve as one native kernel (CPU, dense, native groups)
VA2JAX_SIM_NEWTON_MATRIX per use    that kernel's matrices: dense | sparse (unset: sparse)
VA2JAX_SIM_NATIVE_STEP   per use    1: whole transient steps (up to a chunk) as one native kernel (with the above)
VA2JAX_SIM_FUSION        per use    1: XLA fusion on in the simulator's loops; 0: off (per compilation)
VA2JAX_EXE_CACHE         per use    1: keep compiled executables on disk; 0: off
VA2JAX_XLA_MAX_ISA       import     highest x86 ISA XLA may use, added to XLA_FLAGS (process-wide)
                                    before JAX starts; AVX makes fused eval exact (unset/empty: none)
VA2JAX_XLA_FUSION        per use    1: model code compiled with XLA's fusion passes (0: without;
                                    per compilation, the process's own programs keep XLA's default)
VA2JAX_XLA_CACHE         import     1: JAX's persistent compilation cache under the cache; 0: off
VA2JAX_FUSE_MIN_BATCH    import     batch size from which eval is compiled fused (4096; 0 never)
VA2JAX_PARALLEL_COMPILE  import     threads compiling a split eval's parts (0: min(4, CPUs))
VA2JAX_GPU_FUSION        import     1: eval compiled for an accelerator is fused; 0: unfused
VA2JAX_OPT               import     1: common-subexpression elimination in generated code; 0: off
VA2JAX_PART_SIZE         import     statements per separately compiled part of eval (1500)
VA2JAX_NATIVE_OPT        per use    LLVM optimisation level of native eval kernels, 0-3 (2)
VA2JAX_NATIVE_CODEGEN    per use    LLVM code-generator level of native eval kernels, 0-3 (1)
VA2JAX_NATIVE_THREADS    per use    most threads one native kernel call uses (0: every core; read
                                    per Model.eval call and when an evaluator is built)
VA2JAX_COORDINATOR       per use    host:port of process 0 of a distributed sweep (unset: none)
VA2JAX_NUM_PROCESSES     per use    number of processes of a distributed sweep (1)
VA2JAX_PROCESS_ID        per use    this process's id in a distributed sweep, 0..N-1 (0)
VA2JAX_DIST_TIMEOUT      per use    seconds to reach the coordinator / notice a dead peer (120)
======================== ========== =============================================================
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import Va2JaxError


def _flag(raw: str) -> bool:
    if raw not in ("0", "1"):
        raise ValueError("expected 0 or 1")
    return raw == "1"


def _count(raw: str) -> int:
    try:
        v = int(raw)
    except ValueError:
        raise ValueError("expected a whole number") from None
    if v < 0:
        raise ValueError("expected a number >= 0")
    return v


def _positive(raw: str) -> int:
    v = _count(raw)
    if v == 0:
        raise ValueError("expected a number > 0")
    return v


def _choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str | None:
        v = raw.strip().lower()
        if not v:
            return None
        if v not in options:
            raise ValueError("expected " + " or ".join(repr(o) for o in options))
        return v
    return parse


def _level(raw: str) -> int:
    v = _count(raw)
    if v > 3:
        raise ValueError("expected 0, 1, 2 or 3")
    return v


def _text(raw: str) -> str:
    return raw


@dataclass(frozen=True)
class Variable:
    """One environment variable: ``VA2JAX_<name>``."""

    name: str
    default: Any  #: value when unset (or set to the empty string, unless ``empty_is_value``)
    parse: Callable[[str], Any]  #: raw text → value; raises ValueError with the reason
    doc: str
    empty_is_value: bool = False  #: ``""`` is a value of its own (not "unset")

    @property
    def env(self) -> str:
        return f"VA2JAX_{self.name}"


_VARS = [
    Variable("CACHE", None, _text, "root of the on-disk caches"),
    Variable("CORPUS", None, _text, "folder of the third-party Verilog-A corpus"),
    Variable("MODEL_PATH", None, _text, "extra folders searched for .va models (os.pathsep list)"),
    Variable("SIM_MODELS", "auto", _text, "model source for netlist loads (auto, va, osdi, builtin)"),
    Variable("BACKEND", None, _choice("jax", "numpy", "native"),
             "Model.eval/evaluator backend (jax, numpy, native); unset: native on a CPU, jax elsewhere"),
    Variable("SIM_DEVICE_EVAL", None, _choice("native", "inline", "separate"),
             "device evaluation in the simulator (native, inline, separate); unset: native on the "
             "CPU, else by model size"),
    Variable("SIM_DENSE_SOLVE", None, _choice("native", "lapack"),
             "Newton's dense linear solve on the CPU (native: up to 12 unknowns, the default; lapack)"),
    Variable("SIM_NATIVE_STAMPS", True, _flag, "device stamps summed by native kernels (CPU, dense)"),
    Variable("SIM_NATIVE_NEWTON", True, _flag,
             "the whole Newton solve as one native kernel (CPU, dense, every group native)"),
    Variable("SIM_NEWTON_MATRIX", None, _choice("dense", "sparse"),
             "the native Newton kernel's matrices (dense, sparse); unset: sparse (every size)"),
    Variable("SIM_NATIVE_STEP", True, _flag,
             "whole transient steps as one native kernel (with SIM_NATIVE_NEWTON; dc/pulse/pwl/sine sources)"),
    Variable("SIM_FUSION", True, _flag, "XLA fusion in the simulator's compiled loops"),
    Variable("EXE_CACHE", True, _flag, "on-disk cache of compiled executables"),
    Variable("XLA_MAX_ISA", None, _text,
             "highest x86 ISA XLA may use, set process-wide in XLA_FLAGS (unset or empty: none)",
             empty_is_value=True),
    Variable("XLA_FUSION", False, _flag, "compile generated model code with XLA's fusion passes"),
    Variable("XLA_CACHE", True, _flag, "JAX's persistent compilation cache under VA2JAX_CACHE"),
    Variable("FUSE_MIN_BATCH", 4096, _count, "batch size from which eval is compiled fused (0: never)"),
    Variable("PARALLEL_COMPILE", 0, _count, "threads compiling a split eval's parts (0: automatic)"),
    Variable("GPU_FUSION", True, _flag, "eval compiled for an accelerator is fused"),
    Variable("OPT", True, _flag, "common-subexpression elimination in generated code"),
    Variable("PART_SIZE", 1500, _positive, "statements per separately compiled part of eval"),
    Variable("NATIVE_OPT", 2, _level, "LLVM optimisation level of native eval kernels (0-3)"),
    Variable("NATIVE_CODEGEN", 1, _level, "LLVM code-generator level of native eval kernels (0-3)"),
    Variable("NATIVE_THREADS", 0, _count, "most threads one native kernel call uses (0: every core)"),
    Variable("COORDINATOR", None, _text, "host:port of process 0 of a distributed sweep"),
    Variable("NUM_PROCESSES", None, _positive, "number of processes of a distributed sweep"),
    Variable("PROCESS_ID", None, _count, "this process's id in a distributed sweep (0..N-1)"),
    Variable("DIST_TIMEOUT", 120, _positive,
             "seconds to reach the coordinator or notice a dead peer in a distributed sweep"),
]
#: every variable by short name (``"CACHE"`` for ``VA2JAX_CACHE``)
VARIABLES: dict[str, Variable] = {v.name: v for v in _VARS}


def get(name: str) -> Any:
    """The value of ``VA2JAX_<name>`` now (its default when unset), checked."""
    var = VARIABLES[name]
    raw = os.environ.get(var.env)
    if raw is None or (raw == "" and not var.empty_is_value):
        return var.default
    try:
        return var.parse(raw)
    except ValueError as exc:
        raise Va2JaxError(f"{var.env}={raw!r}: {exc}") from None


def check_all() -> None:
    """Validate every ``VA2JAX_*`` variable of :data:`VARIABLES` that is set."""
    for name in VARIABLES:
        get(name)


#: XLA passes va2jax disables when it compiles generated model code: operator fusion makes XLA's
#: compile time of large straight-line model code grow super-linearly (see docs/performance.md);
#: without it a 4,000-op function compiles in seconds instead of minutes. Passed per compilation
#: (``compiler_options``, :data:`va2jax.codegen._xla.FUSION_OFF`), never put in ``XLA_FLAGS``:
#: process-wide, it also made XLA compute complex ``dot_general`` with transposed operands wrongly
#: in the user's own programs (jax/jaxlib 0.10.2). ``VA2JAX_XLA_FUSION=1`` compiles model code fused.
FAST_COMPILE_PASSES = "fusion,cpu-instruction-fusion,multi_output_fusion"

#: The same passes as an ``XLA_FLAGS`` entry (for a user who wants the old process-wide setting).
FAST_COMPILE_XLA_FLAGS = f"--xla_disable_hlo_passes={FAST_COMPILE_PASSES}"

#: An x86 instruction set without FMA. XLA compiles with LLVM's ``AllowFPOpFusion = Fast``, so
#: wherever a multiply and an add end up in one fused kernel LLVM contracts them into an FMA
#: instruction (one rounding instead of two) — and OpenVAF's OSDI code rounds twice. Without FMA
#: in the target (AVX, not AVX2/FMA3) there is nothing to contract into: fused and unfused kernels
#: give the same bits (measured on PSP103 at 1,024 and 16,384 instances, docs/performance.md).
#: XLA reads ``xla_cpu_max_isa`` only when its CPU client starts (a per-compilation value is
#: accepted and ignored: measured, jaxlib 0.10.2), so the cap is process-wide and therefore only
#: set when the user asks for it: ``VA2JAX_XLA_MAX_ISA=AVX``. Unfused model code (va2jax's
#: default) rounds twice with or without it.
SAFE_MAX_ISA = "AVX"


def configure_xla() -> None:
    """Add ``--xla_cpu_max_isa=$VA2JAX_XLA_MAX_ISA`` to ``XLA_FLAGS`` where the user set that
    variable (x86-64 only; not if ``XLA_FLAGS`` already names an ISA cap); otherwise leave
    ``XLA_FLAGS`` exactly as it is.

    Only then does va2jax touch the process's XLA configuration; its other XLA options are per
    compilation. Takes effect only before JAX initialises its CPU backend; it is called by
    :func:`enable_x64`, which every va2jax entry point calls before computing with JAX (and when
    ``codegen._xla`` is imported).
    """
    import platform

    isa = get("XLA_MAX_ISA")
    if not isa or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_max_isa" not in flags:
        os.environ["XLA_FLAGS"] = (flags + f" --xla_cpu_max_isa={isa}").strip()


def enable_x64() -> None:
    """Turn on JAX's float64 (va2jax computes in double precision, as OSDI libraries do) after
    :func:`configure_xla` (which changes nothing unless ``VA2JAX_XLA_MAX_ISA`` is set; it takes
    effect only if JAX's CPU backend has not started yet — so whichever va2jax path runs first,
    the flags are the same); called by the public entry points (:mod:`va2jax.codegen`,
    :mod:`va2jax.sim`)."""
    configure_xla()
    import jax

    jax.config.update("jax_enable_x64", True)
