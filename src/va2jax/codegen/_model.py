"""The public :class:`Model`: a Verilog-A module compiled to JAX, with setup and eval.

Conventions (identical to :mod:`va2jax.osdi`, so results compare entry by entry):

* unknowns are the OSDI descriptor's nodes, in its order (``Model.nodes``); voltages in V, flow
  unknowns in A;
* residuals are OSDI's: resistive ``f`` (A) and reactive ``q`` (C) with f(x) + dq/dt = 0; Jacobians
  are dense ``(n, n)``, row = residual node, column = unknown;
* node collapsing per instance: each node maps to the lowest-index node of its merged set, or to
  ground; a collapsed node's row and column are zero and its contribution appears at its
  representative; rows/columns merged into ground are dropped.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import numbers
import os
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import _config
from .._paths import cache_dir
from ..errors import Va2JaxError, suggest
from ..mir import INT, REAL, STR, ModuleIR
from ..simparams import DEFAULT_SIM_PARAMS
from . import _code_cache
from ._exe_cache import CachedJit, _atomic_write, load_code, target_platform  # noqa: F401 (importers)
from ._generate import GENERATOR_VERSION, GeneratedModule, generate
from ._rt_ops import ANALYSIS_BITS

_ANALYSIS = ANALYSIS_BITS


#: XLA passes va2jax disables by default: operator fusion makes XLA's compile time of large
#: straight-line model code grow super-linearly (see docs/performance.md); without it a 4,000-op
#: function compiles in seconds instead of minutes. ``VA2JAX_XLA_FUSION=1`` keeps XLA's defaults.
FAST_COMPILE_XLA_FLAGS = "--xla_disable_hlo_passes=fusion,cpu-instruction-fusion,multi_output_fusion"

#: Highest x86 instruction set XLA's CPU code generator may use. XLA compiles with LLVM's
#: ``AllowFPOpFusion = Fast``, so wherever a multiply and an add end up in one fused kernel LLVM
#: contracts them into an FMA instruction (one rounding instead of two) — and OpenVAF's OSDI code
#: rounds twice. Without FMA in the target (AVX, not AVX2/FMA3) there is nothing to contract into:
#: fused and unfused kernels give the same bits (measured on PSP103 at 1,024 and 16,384 instances,
#: docs/performance.md). ``VA2JAX_XLA_MAX_ISA`` overrides it; empty leaves XLA's default.
SAFE_MAX_ISA = "AVX"


def configure_xla() -> None:
    """Add va2jax's XLA flags to ``XLA_FLAGS`` (each unless the user already set that flag).

    :data:`FAST_COMPILE_XLA_FLAGS` (unless ``VA2JAX_XLA_FUSION=1``) and, on x86-64,
    ``--xla_cpu_max_isa`` = :data:`SAFE_MAX_ISA` (``VA2JAX_XLA_MAX_ISA``). Must run before JAX
    initialises its CPU backend; it is called when va2jax.codegen is imported.
    """
    import platform

    flags = os.environ.get("XLA_FLAGS", "")
    if not _config.get("XLA_FUSION") and "xla_disable_hlo_passes" not in flags:
        flags = (flags + " " + FAST_COMPILE_XLA_FLAGS).strip()
    isa = _config.get("XLA_MAX_ISA")
    isa = SAFE_MAX_ISA if isa is None else isa
    if isa and "xla_cpu_max_isa" not in flags and platform.machine().lower() in ("x86_64", "amd64"):
        flags = (flags + f" --xla_cpu_max_isa={isa}").strip()
    if flags:
        os.environ["XLA_FLAGS"] = flags


configure_xla()

#: Batch buckets at least this large compile eval with XLA's fusion passes back on (per
#: compilation, through ``compiler_options``; ``VA2JAX_FUSE_MIN_BATCH``, ``0`` = never). Fusion
#: makes each compile ≈ 2× slower and runs large batches faster (PSP103 at 16,384: 1.4×,
#: docs/performance.md), with the same bits as unfused code (see :data:`SAFE_MAX_ISA`), so it
#: pays where throughput matters and stays off for the small batches a first result needs.
FUSE_MIN_BATCH = _config.get("FUSE_MIN_BATCH")

#: Threads that XLA-compile the pieces of a split eval at once (``VA2JAX_PARALLEL_COMPILE``;
#: default: the CPU count, at most 4; ``1`` = one after the other, as they are first called).
PARALLEL_COMPILE = _config.get("PARALLEL_COMPILE") or min(4, os.cpu_count() or 1)

#: ``compiler_options`` that undo :data:`FAST_COMPILE_XLA_FLAGS` for one compilation.
FUSION_ON = {"xla_disable_hlo_passes": ""}

#: Eval-input kinds that an evaluator takes per call (see ``Model._batch_inputs``): the node
#: voltages, and with Newton limiting also the previous ``$limit`` states and ``enable_lim``.
_VOLT_DYNAMIC = frozenset({"volt"})
_LIMIT_DYNAMIC = frozenset({"volt", "prev_state", "enable_lim"})

#: Whether eval compiled for a GPU (or another accelerator) is fused (``VA2JAX_GPU_FUSION``).
GPU_FUSION = _config.get("GPU_FUSION")


_FUSION_EXACT: bool | None = None


def fusion_is_exact() -> bool:
    """Whether fused XLA code rounds ``a*b + c`` twice, like OSDI (probed once per process).

    False where the ISA cap of :func:`configure_xla` is not in force: another ISA, a user's own
    ``--xla_cpu_max_isa``, or JAX's CPU backend started before va2jax was imported. The probe:
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


def _compiler_options(size: int, platform: str = "cpu") -> dict[str, str] | None:
    """XLA options for compiling eval at padded batch ``size`` for ``platform`` (``None``: the
    process defaults).

    CPU: fusion for buckets of at least :data:`FUSE_MIN_BATCH`, and only where it gives OSDI's
    bits (:func:`fusion_is_exact`). GPU and other accelerators: always fused (unless
    ``VA2JAX_GPU_FUSION=0``) — unfused, every operation of the model is its own kernel launch. Their
    ``exp``/``log`` are the device's own and fused code contracts ``a*b + c`` into FMAs, so
    accelerator results agree with OSDI to rounding, not to the bit (docs/performance.md)."""
    if "xla_disable_hlo_passes" not in os.environ.get("XLA_FLAGS", ""):
        return None  # fusion is on for every compilation already
    if platform != "cpu":
        return dict(FUSION_ON) if GPU_FUSION else None
    if FUSE_MIN_BATCH > 0 and size >= FUSE_MIN_BATCH and fusion_is_exact():
        return dict(FUSION_ON)
    return None


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
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
        _JAX_READY = True
    return jax


@dataclass(frozen=True)
class ModelParam:
    """A model parameter: canonical name, aliases, type (``real``/``int``/``str``), kind
    (``"model"`` or ``"instance"``), units, description and literal default (if known)."""

    name: str
    aliases: tuple[str, ...]
    type: str
    kind: str
    units: str
    description: str
    default: float | None


class EvalOutput:
    """Result of :meth:`Model.eval` (arrays with the batch shape in front).

    ``residual_resist`` (…, n) A, ``residual_react`` (…, n) C, ``jacobian_resist`` (…, n, n) S,
    ``jacobian_react`` (…, n, n) F, ``lim_rhs_resist``/``lim_rhs_react`` (…, n): what OSDI's
    ``load_limit_rhs_*`` load, ``J·(v − v_lim)`` of the branches ``$limit`` limited (A resp. C; a
    simulator adds it to the residual: ``J·Δx = −(residual + lim_rhs)``), ``states`` (…, s): the
    ``$limit`` states for the next iteration.
    """

    def __init__(self, d: dict[str, Any]):
        self.scales = {k[6:]: v for k, v in d.items() if k.startswith("scale_")}
        self.residual_resist = d["residual_resist"]
        self.residual_react = d["residual_react"]
        self.jacobian_resist = d["jacobian_resist"]
        self.jacobian_react = d["jacobian_react"]
        self.lim_rhs_resist = d["lim_rhs_resist"]
        self.lim_rhs_react = d["lim_rhs_react"]
        self.states = d["states"]

    def as_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d.pop("scales")
        return d


class Model:
    """A Verilog-A module compiled to JAX. Create with :func:`va2jax.compile_va`.

    Attributes: ``name``, ``nodes`` (names, OSDI order), ``node_kinds``, ``num_terminals``,
    ``terminals``, ``params`` (name → :class:`ModelParam`), ``num_states``, ``source`` (the
    generated Python code), ``source_path`` (where it is cached).
    """

    def __init__(self, ir: ModuleIR, gen: GeneratedModule, source_path: Path, *,
                 used_eval_values: set[str] | None = None, cache_key: str | None = None):
        self.ir = ir
        self._used_eval = used_eval_values
        #: key of the generated code in the cache (None: not cached); names compiled executables
        self._cache_key = cache_key
        self.gen = gen
        self.name = ir.name
        self.nodes = tuple(n.name for n in ir.nodes)
        self.node_kinds = tuple(n.kind for n in ir.nodes)
        self.num_terminals = ir.num_terminals
        self.terminals = self.nodes[: ir.num_terminals]
        self.num_states = ir.num_states
        self.source = gen.source
        self.source_path = source_path
        self.params: dict[str, ModelParam] = {}
        self._lookup: dict[str, str] = {}
        for p in ir.params:
            mp = ModelParam(p.name, p.aliases, p.type, "instance" if p.is_instance else "model",
                            p.units, p.description, p.default)
            self.params[p.name] = mp
            for nm in (p.name, *p.aliases):
                self._lookup.setdefault(nm.lower(), p.name)
        # $mfactor is an implicit instance parameter in OSDI ("m")
        for nm in ("m", "$mfactor", "mfactor"):
            self._lookup.setdefault(nm, "$mfactor")
        self._module = self._import(source_path)
        self._np = self._import_numpy(source_path)
        self._grad: dict[str, Any] | None = None
        self._output_vars = gen.eval_output_vars
        self._const_outputs = gen.eval_output_consts
        self._with_scales = False  # validation asks for Σ|terms| of collapsed sums
        self._eval_jit: dict = {}
        self._selected_inputs: dict = {}  # (only, which, dynamic) → eval inputs (_batch_inputs)
        self._build_tables()

    # ---------------------------------------------------------------------------------------
    def _import(self, path: Path):
        """The generated module (JAX); its code object is cached next to it (see ``_exe_cache``)."""
        name = "va2jax_generated_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
        mod = types.ModuleType(name)
        mod.__file__ = str(path)
        code = load_code(self.source, str(path), path.with_name("jax") if self._cache_key else None)
        exec(code, mod.__dict__)
        return mod

    def _import_numpy(self, path: Path) -> dict[str, Any]:
        """The same generated source executed with NumPy stand-ins (see ``_rt_np``)."""
        from . import _rt_np

        return Model._exec_with(path, _rt_np, _rt_np.jnp, _rt_np.lax, "numpy", bool(self._cache_key),
                                self.source)

    @staticmethod
    def _exec_with(path: Path, rt: Any, jnp: Any, lax: Any, tag: str, cache: bool = False,
                   source: str | None = None) -> dict[str, Any]:
        """Execute the generated source (``source``, else the file at ``path``) with other
        ``rt``/``jnp``/``lax`` namespaces (its code object cached next to ``path`` as
        ``<tag>.*.code`` when ``cache``)."""
        code = path.read_text() if source is None else source
        header = "import jax.numpy as jnp\nfrom jax import lax\n\nfrom va2jax.codegen import _rt as rt\n"
        if header not in code:
            raise Va2JaxError(f"{path}: not a va2jax-generated module (header missing)")
        ns: dict[str, Any] = {"jnp": jnp, "lax": lax, "rt": rt, "__name__": f"va2jax_generated_{tag}"}
        exec(load_code(code.replace(header, ""), str(path), path.with_name(tag) if cache else None), ns)
        return ns

    def _gradient_safe_module(self) -> dict[str, Any]:
        """The generated source executed with the gradient-safe runtime (``_rt_grad``): same
        values, finite reverse-mode derivatives through untaken branches and loops."""
        if self._grad is None:
            from . import _rt_grad

            self._grad = self._exec_with(self.source_path, _rt_grad, _rt_grad.jnp, _rt_grad.lax, "grad",
                                         bool(self._cache_key), self.source)
        return self._grad

    def _build_tables(self) -> None:
        ir = self.ir
        n = len(ir.nodes)
        names = {nd.name: i for i, nd in enumerate(ir.nodes)}
        lower = {nd.name.lower(): i for i, nd in enumerate(ir.nodes)}

        def node(nm: str) -> int:
            if nm in names:
                return names[nm]
            if nm.lower() in lower:
                return lower[nm.lower()]
            return -1

        implicit = [i for i, nd in enumerate(ir.nodes) if nd.kind == "Implicit"]
        # eval inputs: how each is obtained
        self._eval_inputs: list[tuple[str, str, Any]] = []  # (value, how, data)
        used = self._used_eval if self._used_eval is not None else _used_values(ir.eval)
        for p in ir.eval.params:
            if p.kind == "new_state":
                continue
            how: str
            data: Any = None
            if p.kind == "voltage":
                a, b = _pair(p.name)
                ia, ib = node(a), (node(b) if b is not None else -1)
                if ia < 0 or (b is not None and ib < 0):
                    if p.value in used:
                        raise Va2JaxError(f"{ir.source}: cannot map probe {p.name} to unknowns {self.nodes}")
                    how = "zero"
                else:
                    how, data = "volt", (ia, ib)
            elif p.kind == "current":
                a, b = _pair(p.name)
                flow = node(f"flow({a},{b})" if b is not None else f"flow({a})")
                if flow < 0:
                    if p.value in used:
                        raise Va2JaxError(f"{ir.source}: branch current probe {p.name} has no flow unknown")
                    how = "zero"
                else:
                    how, data = "volt", (flow, -1)
            elif p.kind == "implicit_unknown":
                k = int(re.sub(r"\D", "", p.name) or 0)
                how, data = "volt", (implicit[k], -1)
            elif p.kind == "param":
                how, data = "param", p.name
            elif p.kind == "param_given":
                how, data = "given", p.name
            elif p.kind == "temperature":
                how = "temp"
            elif p.kind == "sysfun":
                how = "mfactor"
            elif p.kind == "cache" and p.name.startswith("cache["):
                how, data = "cache", int(re.sub(r"\D", "", p.name))
            elif p.kind == "cache":
                # an eval input beyond the declared function parameters (openvaf-py exports a few,
                # e.g. PSP103's S–SI Jacobian entries); validated against OSDI as zero
                how = "zero"
            elif p.kind == "enable_lim":
                how = "enable_lim"
            elif p.kind == "prev_state":
                how, data = "prev_state", int(re.sub(r"\D", "", p.name))
            elif p.kind == "port_connected":
                how = "true"
            elif p.kind == "enable_integration":
                how = "enable_integration"
            elif p.kind == "hidden_state":
                if p.value in used:
                    raise Va2JaxError(f"{ir.source}: eval input kind {p.kind!r} ({p.name}) is not supported yet")
                how = "zero"
            else:
                if p.value in used:
                    raise Va2JaxError(f"{ir.source}: eval input kind {p.kind!r} ({p.name}) is not supported")
                how = "zero"
            self._eval_inputs.append((p.value, how, data))
        self._n = n
        self._jr = [(k, j.row, j.col) for k, j in enumerate(ir.jacobian)]
        # (a, b or -1, init output deciding it or None = always, negate)
        self._pairs = [(cp.a, -1 if cp.b is None else cp.b,
                        k if (cp.hints or cp.decision is not None) else None,
                        bool(cp.decision[1]) if (cp.decision is not None and not cp.hints) else False)
                       for k, cp in enumerate(ir.collapsible)]

    # ---------------------------------------------------------------------------------------
    def canonical_param(self, name: str) -> str:
        """Canonical parameter name for ``name`` (case-insensitive, aliases allowed)."""
        key = name.lower()
        if key not in self._lookup:
            raise Va2JaxError(f"module {self.name}: unknown parameter {name!r}"
                              + suggest(name, list(self._lookup)))
        return self._lookup[key]

    @property
    def is_split(self) -> bool:
        """Whether the generated eval is split into parts compiled separately (large models)."""
        return hasattr(self._module, "EVAL_PARTS")

    def resolved_params(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``params`` by canonical lower-case name plus the defaults OpenVAF's model setup gives
        the others (see :meth:`_resolve_params`)."""
        return self._resolve_params(params or {})[0]

    def request_scales(self, on: bool = True) -> None:
        """Make eval also return ``scales`` (Σ|terms| of each collapsed sum, for validation
        tolerances); off by default."""
        self._with_scales = bool(on)

    def _resolve_params(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], set[str]]:
        """User values by canonical lower-case name, plus the values of parameters OpenVAF's
        *model* setup would default (openvaf-py does not export that function).

        A literal default from the front end is always used. A model parameter whose default is
        an expression is read back from the OSDI library's ``setup_model`` with the same model
        parameters (exact OpenVAF semantics; compiled once and cached); an instance parameter's
        expression default is left to init when init has its ``given`` flag (OpenVAF's
        setup_instance, which init contains, selects it). Returns (values, given).
        """
        vals: dict[str, Any] = {}
        for k, v in params.items():
            vals[self.canonical_param(k).lower()] = v
        given = set(vals)
        init_given = {p.name.lower() for p in self.ir.init.params if p.kind == "param_given"}
        needed = {p.name.lower() for p in self.ir.init.params if p.kind == "param"}
        needed |= {str(data).lower() for _v, how, data in self._eval_inputs if how == "param"}
        pinfo = {p.name.lower(): p for p in self.ir.params}
        missing = []
        for key in sorted(needed - given):
            p = pinfo.get(key)
            if p is not None and p.default is not None:
                # also when init reads the given flag: a $param_given() in the model's own code
                # is no default selection, and the generated init takes the literal default
                # from this input (see codegen._generate.generate)
                vals[key] = p.default
            elif key not in init_given or (p is not None and not p.is_instance):
                # model parameters are defaulted by OSDI's setup_model, which openvaf-py's init
                # does not contain: init reads them as given (bsimimg EOT1P = EOT1, PHIG2)
                missing.append(key)
        if missing:
            ref = self._osdi_defaults({k: v for k, v in vals.items()
                                       if k in pinfo and not pinfo[k].is_instance and k in given})
            for key in missing:
                if key in ref:
                    vals[key] = ref[key]
        return vals, given

    def _declared_bounds(self) -> dict[str, Any]:
        """Parameter name (lower case) → (default expression, ``from``/``exclude`` clauses) in the
        Verilog-A source (read once; openvaf-py does not export OpenVAF's bound checks, see :mod:`va2jax.mir._bounds`)."""
        if "_bounds" not in self.__dict__:
            from ..mir import read_bounds

            try:
                self._bounds = read_bounds(self.ir.source).get(self.name.lower(), {})
            except (OSError, RecursionError):  # pragma: no cover - source gone: nothing to check
                self._bounds = {}
        return self._bounds

    def _check_bounds(self, params: Mapping[str, Any], batched: bool) -> None:
        """Raise :class:`Va2JaxError` for a given parameter value outside its declared bounds,
        as OpenVAF's setup_model/setup_instance refuse it (value NaN lies in no range). Bounds
        that name other parameters see their given values, else their literal defaults."""
        from ..mir import violations

        from ..mir import evaluate_bound as evaluate

        decl = self._declared_bounds()
        if not any(b for _d, b in decl.values()):
            return
        given = {self.canonical_param(k).lower(): v for k, v in params.items()}
        if "_bound_defaults" not in self.__dict__:  # defaults, evaluated once (source order)
            dflt: dict[str, Any] = {p.name.lower(): p.default for p in self.ir.params
                                    if p.default is not None}
            for key, (default, _b) in decl.items():
                if key not in dflt:
                    v = evaluate(default, dflt)
                    if v is not None:
                        dflt[key] = v
            # OpenVAF checks defaults too (a bound may name a given parameter: bsimcmg's FPITCH
            # from [TFIN:inf)); only literal defaults are checked, others may depend on givens
            literal = {k for k, (d, b) in decl.items() if b and evaluate(d, {}) is not None}
            self._bound_defaults = (dflt, literal)
        dflt, literal = self._bound_defaults
        inst = {p.name.lower() for p in self.ir.params if p.is_instance}
        scope = {**dflt, **given}
        # OSDI's setup_model checks model parameters seeing model-level values only (an instance
        # parameter given per instance is not one: hisim2's PARL2 from (-inf:L) with L given)
        model_scope = {**dflt, **{k: v for k, v in given.items() if k not in inst}}
        names = {p.name.lower(): p.name for p in self.ir.params}
        for key in sorted(set(given) | {k for k in literal if k in dflt}):
            bounds = decl.get(key, ("", ()))[1]
            if not bounds:
                continue
            sc = scope if key in inst else model_scope
            arr = np.asarray(sc[key])
            bad, text = violations(arr, bounds, sc)
            if np.any(bad):
                idx = int(np.argmax(np.ravel(bad)))
                shown = np.ravel(arr)[idx] if arr.ndim else arr[()]
                shown = shown.item() if hasattr(shown, "item") else shown
                what = "" if key in given else " (its default)"
                raise Va2JaxError(f"module {self.name}: parameter {names.get(key, key)} = {shown!r}"
                                  f"{what} is out of bounds ({text})"
                                  + (f" (instance {idx})" if batched and np.ndim(bad) else ""))

    def _osdi_defaults(self, model_params: dict[str, Any]) -> dict[str, Any]:
        key = tuple(sorted((k, repr(v)) for k, v in model_params.items()))
        cache = self.__dict__.setdefault("_osdi_default_cache", {})
        if key in cache:
            return cache[key]
        from ..osdi import compile_va_to_osdi, load_library

        mod = load_library(compile_va_to_osdi(self.ir.source)).module(self.ir.osdi_name or self.name)
        scalar = {k: (np.asarray(v).reshape(-1)[0].item() if not isinstance(v, str) else v)
                  for k, v in model_params.items()}
        m = mod.model(scalar)
        res: dict[str, Any] = {}
        for p in mod.params:
            if p.kind == "model" and p.length == 0:
                try:
                    res[p.name.lower()] = m.get(p.name)
                except Exception:  # pragma: no cover - unreadable parameter
                    pass
        cache[key] = res
        return res

    def _init_inputs(self, vals: Mapping[str, Any], given: set[str], temperature: Any, shape: tuple[int, ...]):
        strings = dict(self.gen.strings)
        inp: dict[str, Any] = {}
        ptypes = {p.name.lower(): p.type for p in self.ir.params}
        for p in self.ir.init.params:
            key = p.name.lower()
            if p.kind == "param":
                ty = ptypes.get(key, REAL)
                if key in vals:
                    inp[p.value] = _convert(self.name, p.name, vals[key], ty, shape, strings)
                else:
                    inp[p.value] = np.zeros(shape, np.int32 if ty in (INT, STR) else np.float64)
            elif p.kind == "param_given":
                inp[p.value] = np.full(shape, key in given, np.bool_)
            elif p.kind == "temperature":
                inp[p.value] = np.broadcast_to(np.asarray(temperature, np.float64), shape)
            elif p.kind == "sysfun":
                inp[p.value] = np.broadcast_to(np.asarray(vals.get("$mfactor", 1.0), np.float64), shape)
            elif p.kind == "port_connected":
                inp[p.value] = np.ones(shape, np.bool_)
            else:
                raise Va2JaxError(f"module {self.name}: init input kind {p.kind!r} ({p.name}) is not supported")
        return inp

    def _mfactor_of(self, params: Mapping[str, Any]) -> Any:
        """The instance's $mfactor among ``params`` ("m" names it only when the module has no
        parameter of its own called m; OSDI then lists $mfactor without that alias)."""
        for k, v in params.items():
            if self._lookup.get(k.lower()) == "$mfactor":
                return v
        return 1.0

    def _is_given(self, params: Mapping[str, Any], name: str) -> bool:
        canon = self._lookup.get(name.lower(), name)
        return any(self._lookup.get(k.lower()) == canon for k in params)

    def setup(self, params: Mapping[str, Any] | None = None, *, temperature: Any = 300.15,
              sim_params: Mapping[str, float] | None = None, backend: str = "numpy") -> dict[str, Any]:
        """Run the module's setup (OSDI ``setup_model`` + ``setup_instance``) for a batch of instances.

        ``params`` maps parameter names (any alias, case-insensitive) to scalars or arrays; all
        arrays broadcast to one batch shape. ``temperature`` in K. Returns a state pytree for
        :meth:`eval`. Raises :class:`~va2jax.Va2JaxError` naming the parameter when a value is out
        of its declared bounds (as OSDI's setup does). ``backend``: ``"numpy"`` runs the generated
        init eagerly with NumPy, ``"native"`` the LLVM-compiled init (same outputs).
        """
        _jax()  # float64 on
        import jax.numpy as jnp

        params = dict(params or {})
        shapes = [np.shape(v) for v in params.values() if not isinstance(v, str)] + [np.shape(temperature)]
        try:
            shape = np.broadcast_shapes(*shapes)
        except ValueError as exc:
            raise Va2JaxError(f"module {self.name}: parameter arrays do not broadcast: {exc}") from None
        if len(shape) > 1:
            raise Va2JaxError(f"module {self.name}: parameters must be scalars or 1-D arrays")
        bshape = shape if shape else (1,)
        try:
            tarr = np.asarray(temperature, np.float64)
        except (TypeError, ValueError):
            raise Va2JaxError(f"module {self.name}: temperature must be a number in K, got "
                              f"{temperature!r}") from None
        bad_t = ~(np.isfinite(tarr) & (tarr > 0))
        if bad_t.any():  # as the OSDI path (va2jax.osdi) refuses it
            raise Va2JaxError(f"module {self.name}: temperature must be a finite number of kelvin "
                              f"above 0, got {float(tarr.flat[int(np.argmax(bad_t))])!r}")
        self._check_bounds(params, bool(shape))
        vals, given_set = self._resolve_params(params)
        inp = self._init_inputs(vals, given_set, temperature, bshape)
        sp = {k: jnp.float64(v) for k, v in DEFAULT_SIM_PARAMS.items()}
        for k, v in (sim_params or {}).items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise Va2JaxError(f"simulator parameter {k!r} must be a number, got {v!r}")
            sp[k] = jnp.float64(v)
        # setup runs eagerly with NumPy (same generated code): no XLA compile for a one-off
        if backend == "native":
            from .native._kernel import init_rows

            out = init_rows(self, inp, sp, bshape[0])
        elif backend != "numpy":
            raise Va2JaxError(f"unknown setup backend {backend!r} (numpy or native)")
        else:
            with np.errstate(all="ignore"):
                out = self._np["init"](inp, {k: np.float64(v) for k, v in sp.items()})
        out = {k: np.broadcast_to(np.asarray(v), bshape) for k, v in out.items()}
        # bound checks
        for f in self.gen.flags:
            fired = np.asarray(out[f.output])
            if fired.any():
                idx = int(np.argmax(fired))
                if f.kind == "exit":
                    raise Va2JaxError(f"module {self.name}: $finish/$fatal during setup (instance {idx})")
                desc = ", ".join(f"{p}={_show(params, p, idx)}" for p in f.params) or "a parameter"
                raise Va2JaxError(f"module {self.name}: parameter out of bounds: {desc}"
                                  + (f" (instance {idx})" if shape else ""))
        labels = self._collapse_labels(out, bshape[0])
        # parameters eval reads but init does not output
        extra: dict[str, Any] = {}
        ptypes = {p.name.lower(): p.type for p in self.ir.params}
        for _value, how, data in self._eval_inputs:
            if how == "param" and f"param:{data}" not in out:
                key = data.lower()
                ty = ptypes.get(key, REAL)
                v = vals.get(key, 0.0)
                extra[data] = _convert(self.name, data, v, ty, bshape, dict(self.gen.strings))
        # eval's $temperature is the setup temperature even when init does not read it (asmhemt
        # uses $temperature only in eval: Tdev = $temperature + Temp(rth))
        temp = np.broadcast_to(np.asarray(temperature, np.float64), bshape).copy()
        state = {"init": out, "temperature": temp, "labels": labels,
                 "mfactor": np.broadcast_to(np.asarray(self._mfactor_of(params), np.float64), bshape),
                 "given": {p.name: np.full(bshape, self._is_given(params, p.name), np.bool_)
                           for p in self.ir.eval.params if p.kind == "param_given"},
                 "sp": sp, "batched": bool(shape), "extra": extra}
        return state

    def _collapse_labels(self, out: dict[str, Any], nb: int) -> np.ndarray:
        """Per instance, each node's representative (lowest index of its set) or -1 (ground)."""
        n = self._n
        labels = np.tile(np.arange(n, dtype=np.int64), (nb, 1))
        for a, b, k, neg in self._pairs:
            if k is None:
                dec = np.ones(nb, bool)
            else:
                dec = np.asarray(out.get(f"collapse{k}", False)).astype(bool)
                dec = np.broadcast_to(dec, (nb,))
                if neg:
                    dec = ~dec
            for i in np.nonzero(dec)[0]:
                la = labels[i, a]
                lb = labels[i, b] if b >= 0 else -1
                if la == lb:
                    continue
                lo, hi = (min(la, lb), max(la, lb)) if lb >= 0 and la >= 0 else (-1, la if lb < 0 else lb)
                row = labels[i]
                row[row == hi] = lo
        return labels

    @staticmethod
    def _padder(size: int):
        """Pad a batch (leading axis) to ``size`` by repeating its last instance."""
        def pad(x):
            x = np.asarray(x)
            if x.shape[0] == size:
                return x
            return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)], axis=0)
        return pad

    def _run_batched(self, inp: dict[str, Any], sp: dict[str, Any], nb: int):
        """Eval of a small model: pad the batch to a power of two (so new sizes rarely
        recompile), one jit-compiled batch-native function, unpad."""
        jax = _jax()
        size = 1 << max(0, (nb - 1).bit_length())
        fn = self._eval_jit.get(size)
        if fn is None:
            fn = self._eval_jit[size] = CachedJit(self._eval_jax_batch, self._exe_key("eval", size),
                                                  _options_for(size))
        # padding walks every leaf of the state (µs each): only where there is something to pad
        out = fn(inp if size == nb else jax.tree_util.tree_map(self._padder(size), inp), sp)
        return {k: np.asarray(v)[:nb] for k, v in out.items()}

    def _run_parts(self, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        """Large models: each generated part is jit+vmap-compiled on its own (see PART_SIZE)."""
        size = 1 << max(0, (nb - 1).bit_length())
        pad = self._padder(size)
        static = self._static_inputs(inp, nb, size)
        res = self._parts_padded({"V": pad(inp["V"]), "labels": pad(inp["labels"])}, sp, size, static)
        return {k: np.asarray(v)[:nb] for k, v in res.items()}

    def _static_inputs(self, inp: dict[str, Any], nb: int, size: int,
                       dynamic: frozenset[str] | None = None) -> dict[str, np.ndarray]:
        """The eval inputs of a split eval that do not change between calls (kinds not in
        ``dynamic``), made with NumPy — only those a piece reads, each padded to ``size`` —
        instead of padding the whole setup state (PSP103: ≈ 1,500 arrays) and handing it to
        ``pre``. ``inp``: the setup state and flags of ``nb`` instances (leading axis 1 or nb)."""
        pad = self._padder(size)
        ein, _ = self._batch_inputs(inp, nb, np, self._part_needs, "static", dynamic)
        out = {}
        for k, v in ein.items():
            v = np.asarray(v)
            out[k] = pad(v if v.shape[:1] == (nb,) else np.broadcast_to(v, (nb,) + v.shape[1:]))
        return out

    def _parts_padded(self, pin: dict[str, Any], sp: dict[str, Any], size: int,
                      static: dict[str, Any] | None = None,
                      dynamic: frozenset[str] | None = None) -> dict[str, Any]:
        """Eval of a split model on inputs already padded to ``size``: inputs (``pre``), the parts
        in order, outputs (``post``), each a compiled piece; results keep the padding.

        ``static``: the eval inputs that do not depend on the voltages, made once by
        :meth:`evaluator` (then ``pin`` holds only ``V`` and ``labels`` and ``pre`` computes only
        the voltage inputs). Only inputs some piece reads are made: PSP103's eval has ≈ 2,900
        inputs (1,630 of them unused zeros), and every array a compiled call returns costs µs.
        ``dynamic``: the input kinds ``pin`` provides per call (see :meth:`_batch_inputs`)."""
        jax = _jax()
        which = "all" if static is None else "volt"
        dynamic = _VOLT_DYNAMIC if dynamic is None else dynamic
        key = ("pre", size, which, dynamic)
        pre = self._eval_jit.get(key)
        if pre is None:
            needs = self._part_needs
            tag = which if dynamic == _VOLT_DYNAMIC else f"{which}-lim"
            pre = self._eval_jit[key] = CachedJit(
                lambda i: self._batch_inputs(i, size, jax.numpy, needs, which, dynamic),
                self._exe_key(f"pre-{tag}", size))
        rest = self._eval_jit.get(("parts", size))
        fresh = rest is None or not pre.ready()
        if rest is None:  # parts and post are shared by both kinds of pre
            opts = _options_for(size)
            parts = [CachedJit(p, self._exe_key(f"part{k}", size), opts)
                     for k, p in enumerate(self._module.EVAL_PARTS)]
            post = CachedJit(lambda outs, lab: self._batch_assemble(outs, lab, size, jax.numpy),
                             self._exe_key("post", size))
            # constant outputs do not depend on the inputs: made once per bucket, not per call
            # (an eager JAX op costs ~0.1 ms at small batch)
            consts = {key: jax.numpy.full((size,), self._const_outputs[var])
                      for key, var in self._output_vars.items() if var in self._const_outputs}
            rest = self._eval_jit[("parts", size)] = (parts, post, consts)
        fns = (pre, *rest)
        if fresh and PARALLEL_COMPILE > 1:
            self._prepare_parts(fns, pin, sp, static)
        return self._chain(fns, pin, sp, lambda piece, *args: piece(*args), static)

    @functools.cached_property
    def _part_needs(self) -> frozenset[str]:
        """Eval inputs that a part or an output of a split eval reads."""
        needs = set(self._output_vars.values())
        for inp_names, _env in self._module.EVAL_PART_INPUTS:
            needs.update(inp_names)
        return frozenset(needs)

    def _chain(self, fns, pin, sp, call, static=None):
        """Data flow of a split eval: ``pre`` → parts (each fed the values it reads) → ``post``.
        ``call(piece, *args)`` runs one piece — or, given shapes, only prepares it."""
        pre, parts, post, consts = fns
        ein, lab = call(pre, pin)
        if static is not None:
            ein = {**static, **ein}
        env: dict[str, Any] = {}
        for part, (inp_names, env_names) in zip(parts, self._module.EVAL_PART_INPUTS):
            env.update(call(part, {k: ein[k] for k in inp_names}, {k: env[k] for k in env_names}, sp))
        # output keys (rr0, jr3, …) → values held in env, eval's inputs, or constants
        outs = {key: consts[key] if key in consts else (env[var] if var in env else ein[var])
                for key, var in self._output_vars.items()}
        return call(post, outs, lab)

    def _prepare_parts(self, fns, pin, sp, static=None) -> None:
        """Compile the pieces of a split eval in parallel: each is lowered in turn (the next one's
        input shapes come from this one's outputs, nothing runs) and XLA-compiled on a thread
        pool of :data:`PARALLEL_COMPILE` workers while the next is lowered; pieces already in the
        executable cache are only loaded."""
        from concurrent.futures import ThreadPoolExecutor

        jax = _jax()
        pending = []

        def shapes(tree):
            return jax.tree_util.tree_map(
                lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, "weak_type", False)), tree)

        def prepare(piece, *args):
            out, fut = piece.prepare(args, pool)
            if fut is not None:
                pending.append(fut)
            return shapes(out)

        with ThreadPoolExecutor(PARALLEL_COMPILE) as pool:
            try:
                self._chain(fns, pin, sp, prepare, static)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
            for fut in pending:
                fut.result()  # a compilation's own error surfaces here

    def _exe_key(self, what: str, size: int) -> str | None:
        """Name of a compiled piece of eval in the executable cache (None: do not cache)."""
        if self._cache_key is None:
            return None
        return f"{self._cache_key}:{what}:{size}:scales={self._with_scales}"

    def function(self, names: list[str], fixed: Mapping[str, Any] | None = None, *,
                 analysis: str | int = "dc", sim_params: Mapping[str, float] | None = None,
                 backend: str | None = None):
        """A pure, differentiable JAX function of some parameters, the temperature and the voltages.

        Returns ``f(values, temperature, V) -> dict`` for ONE instance, where ``values`` maps each
        name in ``names`` to a scalar, ``temperature`` is in K and ``V`` holds the ``n`` node
        voltages. Setup (OpenVAF's init) runs inside ``f`` in JAX, so ``jax.grad``/``jax.jacfwd``
        give derivatives with respect to parameters and temperature, not only voltages. Other
        parameters take ``fixed`` values or their defaults; node collapsing is decided once from
        the values at which ``f`` is built (``fixed`` plus each name's default).

        ``f`` runs the generated code with the gradient-safe runtime (``_rt_grad``): the same
        values, finite derivatives through untaken branches, and loops as a bounded ``lax.scan``
        so that reverse mode works too (docs/codegen.md, "Gradients").

        ``backend`` (default as :meth:`eval`: native on a CPU): ``"native"`` computes the values
        with the native kernels (XLA FFI) under a ``jax.custom_jvp`` whose voltage tangents of the
        residuals are ``J·dV`` from the kernel's Jacobian and whose other tangents come from the
        JAX function above; ``"jax"`` returns the JAX function itself.
        """
        jax = _jax()
        import jax.numpy as jnp

        canon = [self.canonical_param(nm) for nm in names]
        fixed = dict(fixed or {})
        vals, given = self._resolve_params({**{c: 0.0 for c in []}, **fixed})
        probe = self.setup({**fixed}, sim_params=sim_params)
        labels = jnp.asarray(probe["labels"][0])
        flags = _ANALYSIS[analysis] if isinstance(analysis, str) else int(analysis)
        sp = probe["sp"]
        ptypes = {p.name.lower(): p.type for p in self.ir.params}
        wanted = {c.lower(): nm for c, nm in zip(canon, names)}
        strings = dict(self.gen.strings)
        grad_module = self._gradient_safe_module()

        def mfactor(values: Mapping[str, Any]):
            # "m" is $mfactor only when the module has no parameter of its own called m
            if "$mfactor" in wanted:
                return jnp.asarray(values[wanted["$mfactor"]], jnp.float64)
            return jnp.asarray(vals.get("$mfactor", 1.0), jnp.float64)

        def init_inputs(values: Mapping[str, Any], temperature: Any) -> dict[str, Any]:
            inp: dict[str, Any] = {}
            for p in self.ir.init.params:
                key = p.name.lower()
                if p.kind == "param":
                    if key in wanted:
                        inp[p.value] = jnp.asarray(values[wanted[key]], jnp.float64)
                    elif key in vals:
                        inp[p.value] = jnp.asarray(_convert(self.name, p.name, vals[key], ptypes.get(key, REAL), (), strings))
                    else:
                        inp[p.value] = jnp.float64(0.0)
                elif p.kind == "param_given":
                    inp[p.value] = jnp.bool_(key in given or key in wanted)
                elif p.kind == "temperature":
                    inp[p.value] = jnp.asarray(temperature, jnp.float64)
                elif p.kind == "sysfun":
                    inp[p.value] = mfactor(values)
                else:
                    inp[p.value] = jnp.bool_(True)
            return inp

        def extra_inputs(init: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
            extra = {}
            for _v, how, data in self._eval_inputs:
                if how == "param" and f"param:{data}" not in init:
                    key = data.lower()
                    extra[data] = (jnp.asarray(values[wanted[key]], jnp.float64) if key in wanted
                                   else jnp.asarray(vals.get(key, 0.0)))
            return extra

        def f(values: Mapping[str, Any], temperature: Any, V: Any) -> dict[str, Any]:
            init = grad_module["init"](init_inputs(values, temperature), sp)
            extra = extra_inputs(init, values)
            ev = {"V": jnp.asarray(V, jnp.float64), "labels": labels, "init": init,
                  "given": {k: jnp.bool_(k.lower() in given or k.lower() in wanted) for k in probe["given"]},
                  "extra": extra, "temperature": jnp.asarray(temperature, jnp.float64),
                  "mfactor": mfactor(values),
                  "analysis": jnp.int32(flags), "enable_lim": jnp.bool_(False),
                  "prev_state": jnp.zeros((self.num_states,))}
            one = jax.tree_util.tree_map(lambda x: jnp.reshape(jnp.asarray(x), (1,) + jnp.shape(x)), ev)
            res = self._eval_jax_batch(one, sp, grad_module)
            return {k: v[0] for k, v in res.items()}

        from .native._backend import choose_backend

        if choose_backend(backend) == "native":  # values from the kernel, f for the tangents
            from .native._backend import function as native_function

            return native_function(self, f, init_inputs, extra_inputs, mfactor, probe, given | set(wanted), flags)
        return f

    def evaluator(self, state: dict[str, Any], *, analysis: str | int = "dc", enable_lim: bool = False,
                  limiting: bool = False, backend: str | None = None):
        """A compiled evaluator with the setup state kept on the device: ``f(V) -> dict``.

        ``V`` is (N, n) node voltages for the N instances of ``state`` (V; A for flow unknowns).
        Returns JAX arrays (``residual_resist`` …) without copying to NumPy — the fast path for
        repeated evaluation (Newton loops, benchmarks). ``V`` may be a JAX array already on the
        device (e.g. a GPU): it is used there, not copied through the host. Padding and
        compilation as :meth:`eval`.

        ``limiting=True``: ``f(V, prev_state, enable)`` instead, with the ``$limit`` states of the
        previous Newton iteration ``prev_state`` (N, :attr:`num_states`) and OSDI's
        ``enable_lim`` flag ``enable`` given per call (``enable_lim`` is then ignored); the
        result also holds ``lim_rhs_resist``/``lim_rhs_react`` and the new ``states``.

        ``backend``: as :meth:`eval` (``"numpy"`` is not offered here). The native evaluator packs
        the state once into kernel rows; each call is one jitted program around one XLA FFI call
        of the kernel, and ``f`` may itself be called inside ``jax.jit``/``lax.while_loop``.
        """
        jax = _jax()
        import jax.numpy as jnp
        from .native._backend import choose_backend

        nb = state["labels"].shape[0]
        size = 1 << max(0, (nb - 1).bit_length())
        flags = _ANALYSIS[analysis] if isinstance(analysis, str) else int(analysis)
        backend = choose_backend(backend)
        if backend == "native":
            from .native._backend import evaluator

            return evaluator(self, state, flags, enable_lim, limiting)
        if backend != "jax":
            raise Va2JaxError(f"module {self.name}: the evaluator runs on the jax or native backend, not {backend!r}")
        pad = self._padder(size)
        dynamic = _LIMIT_DYNAMIC if limiting else _VOLT_DYNAMIC

        static = {"labels": state["labels"], "init": state["init"], "given": state["given"],
                  "extra": state["extra"], "temperature": state["temperature"], "mfactor": state["mfactor"],
                  "analysis": np.full(nb, flags, np.int32), "enable_lim": np.full(nb, bool(enable_lim)),
                  "prev_state": np.zeros((nb, self.num_states))}
        sp = state["sp"]
        # padding lanes dropped in one compiled call (not one eager slice per output)
        trim = (lambda res: res) if nb == size else jax.jit(
            lambda res: {k: v[:nb] for k, v in res.items()})

        def padded(x):
            """(nb, …) → (size, …) float64, last row repeated. Device arrays are padded on the
            device; NumPy goes to the compiled call as it is (it copies it over itself, for less
            than an eager ``jnp.asarray`` costs, ≈ 0.1 ms)."""
            if isinstance(x, jax.Array):
                x = x.astype(jnp.float64)
                return x if nb == size else jnp.concatenate([x, jnp.repeat(x[-1:], size - nb, axis=0)])
            return pad(np.asarray(x, np.float64))

        def per_call(V, prev_state, enable):
            pin = {"V": padded(V)}
            if limiting:
                pin["prev_state"] = padded(prev_state)
                pin["enable_lim"] = np.full(size, bool(enable))
            return pin

        if hasattr(self._module, "EVAL_PARTS"):
            # inputs that do not change between calls: made once here (NumPy: no compilation)
            ein_static = {k: jnp.asarray(v) for k, v in self._static_inputs(static, nb, size, dynamic).items()}
            labels = jnp.asarray(pad(np.broadcast_to(state["labels"], (nb,) + np.shape(state["labels"])[1:])))

            def run(V, prev_state=None, enable=False):
                pin = {**per_call(V, prev_state, enable), "labels": labels}
                return trim(self._parts_padded(pin, sp, size, ein_static, dynamic))
        else:
            # the whole state, padded, on the device
            const = jax.tree_util.tree_map(
                lambda x: jnp.asarray(pad(np.broadcast_to(x, (nb,) + np.shape(x)[1:]))), static)
            g = jax.jit(lambda st, pin: self._eval_jax_batch({**st, **pin}, sp),
                        compiler_options=_compiler_options(size, target_platform()))

            def run(V, prev_state=None, enable=False):
                return trim(g(const, per_call(V, prev_state, enable)))

        zeros = np.zeros((nb, self._n))
        wider: dict[int, Any] = {}  # one-instance state evaluated at m operating points: m → f

        def rows(V) -> int:
            shp = np.shape(V)
            if len(shp) != 2 or shp[1] != self._n:
                raise Va2JaxError(f"module {self.name}: evaluator expects (N, {self._n}) node "
                                  f"voltages {self.nodes}, got shape {shp}")
            if shp[0] != nb and nb != 1:
                raise Va2JaxError(f"module {self.name}: {shp[0]} operating points for {nb} "
                                  "instances")
            return shp[0]

        def broadcast(m: int):
            """The evaluator of the one-instance state repeated ``m`` times (as :meth:`eval`)."""
            if m not in wider:
                wider[m] = self.evaluator(self._tile_state(state, m), analysis=analysis,
                                          enable_lim=enable_lim, limiting=limiting, backend="jax")
            return wider[m]

        if limiting:
            def f(V, prev_state, enable):
                m = rows(V)
                return run(V, prev_state, enable) if m == nb else broadcast(m)(V, prev_state, enable)

            f(zeros, np.zeros((nb, self.num_states)), False)  # compile (or load) now
        else:
            def f(V):
                m = rows(V)
                return run(V) if m == nb else broadcast(m)(V)

            f(zeros)
        return f

    @staticmethod
    def _tile_state(state: dict[str, Any], nb: int) -> dict[str, Any]:
        """A setup state of one instance repeated ``nb`` times along the instance axis."""
        jax = _jax()
        out = dict(state)
        for k in ("labels", "init", "given", "temperature", "mfactor", "extra"):
            out[k] = jax.tree_util.tree_map(
                lambda x: np.broadcast_to(np.asarray(x)[:1], (nb,) + np.shape(x)[1:]), state[k])
        out["batched"] = True
        return out

    def eval_traceable(self, state: dict[str, Any], V: Any, *, analysis: str | int = "dc",
                       prev_state: Any = None, enable_lim: Any = False,
                       enable_integration: Any = None, gradient_safe: bool = False) -> dict[str, Any]:
        """Like :meth:`eval` but a pure JAX function of ``V`` (N, n) for use inside ``jax.jit``
        (e.g. a simulator's Newton loop): no host round-trips, no padding. ``state`` must come from
        :meth:`setup` with N instances. Returns a dict of arrays (``residual_resist``, …).
        ``gradient_safe``: trace the gradient-safe runtime (same values; reverse-mode derivatives
        stay finite through untaken branches, see docs/codegen.md) at the cost of extra selects."""
        _jax()  # float64 on
        import jax.numpy as jnp

        nb = state["labels"].shape[0]
        flags = _ANALYSIS[analysis] if isinstance(analysis, str) else analysis
        ps = jnp.zeros((nb, self.num_states)) if prev_state is None else jnp.asarray(prev_state)
        inp = {"V": jnp.asarray(V), "labels": jnp.asarray(state["labels"]),
               "init": {k: jnp.asarray(v) for k, v in state["init"].items()},
               "given": {k: jnp.asarray(v) for k, v in state["given"].items()},
               "extra": {k: jnp.asarray(v) for k, v in state["extra"].items()},
               "temperature": jnp.asarray(state["temperature"]), "mfactor": jnp.asarray(state["mfactor"]),
               "analysis": jnp.full((nb,), flags, jnp.int32),
               "enable_lim": jnp.broadcast_to(jnp.asarray(enable_lim), (nb,)), "prev_state": ps}
        if enable_integration is not None:
            inp["enable_integration"] = jnp.broadcast_to(jnp.asarray(enable_integration, bool), (nb,))
        return self._eval_jax_batch(inp, state["sp"], self._gradient_safe_module() if gradient_safe else None)

    def _batch_inputs(self, inp: dict[str, Any], nb: int, xp, only: Any = None,
                      which: str = "all", dynamic: frozenset[str] = None) -> tuple[dict[str, Any], Any]:
        """Batch of voltages and setup results → the generated eval's inputs (arrays (N,)).

        ``xp`` is ``numpy`` or ``jax.numpy``; returns (inputs, node labels with ground → n).
        ``only``: the input names wanted (default all); ``which``: ``"volt"`` for the inputs that
        change from call to call (kinds in ``dynamic``, default the node voltages: ``inp`` then
        needs just ``V``, ``labels`` and, for the limiting kinds, ``prev_state``/``enable_lim``),
        ``"static"`` for all others (no ``V`` needed), ``"all"``.
        """
        dynamic = _VOLT_DYNAMIC if dynamic is None else dynamic
        n = self._n
        labels = xp.asarray(inp["labels"])
        lab = xp.where(labels < 0, n, labels)
        if which != "static":
            V = xp.asarray(inp["V"], xp.float64)
            vext = xp.concatenate([V, xp.zeros((nb, 1))], axis=1)
            vused = xp.take_along_axis(vext, lab, axis=1)
        init = inp.get("init", {})
        ein: dict[str, Any] = {} if which == "volt" else {"analysis": inp["analysis"]}
        sel = self._selected_inputs.get((only, which, dynamic))
        if sel is None:  # PSP103: 2,868 eval inputs, ≈ 500 of them read
            sel = self._selected_inputs[(only, which, dynamic)] = [
                (value, how, data) for value, how, data in self._eval_inputs
                if (only is None or value in only) and (which == "all" or (how in dynamic) == (which == "volt"))]
        for value, how, data in sel:
            if how == "volt":
                a, b = data
                ein[value] = vused[:, a] - vused[:, b] if b >= 0 else vused[:, a]
            elif how == "param":
                ein[value] = init[f"param:{data}"] if f"param:{data}" in init else inp["extra"][data]
            elif how == "given":
                ein[value] = inp["given"][data]
            elif how == "temp":
                ein[value] = inp["temperature"]
            elif how == "mfactor":
                ein[value] = inp["mfactor"]
            elif how == "cache":
                ein[value] = init[f"cache{data}"]
            elif how == "enable_lim":
                ein[value] = inp["enable_lim"]
            elif how == "prev_state":
                ein[value] = inp["prev_state"][:, data]
            elif how == "enable_integration":
                ein[value] = _enable_integration(inp, nb, xp)
            elif how == "true":
                ein[value] = xp.ones(nb, bool)
            else:
                ein[value] = xp.zeros(nb)
        return ein, lab

    def _batch_assemble(self, out: dict[str, Any], lab, nb: int, xp) -> dict[str, Any]:
        """Generated eval outputs (arrays (N,) or scalars) → dense, collapsed (N, n[, n]) arrays.

        Contributions of collapsed nodes are added at their representative, in Jacobian-entry
        order (the order OSDI's load functions add them in); ground (index n) is dropped.
        """
        n = self._n
        rows = xp.arange(nb)

        def full(v):
            return xp.broadcast_to(xp.asarray(v, xp.float64), (nb,))

        def add(arr, idx, v):
            if xp is np:
                np.add.at(arr, idx, v)
                return arr
            return arr.at[idx].add(v)

        def vec(prefix, f=lambda x: x):
            r = xp.zeros((nb, n + 1))
            for i in range(n):
                if f"{prefix}{i}" in out:
                    r = add(r, (rows, lab[:, i]), f(full(out[f"{prefix}{i}"])))
            return r[:, :n]

        def mat(prefix, f=lambda x: x):
            m = xp.zeros((nb, n + 1, n + 1))
            for k, i, j in self._jr:
                if f"{prefix}{k}" in out:
                    m = add(m, (rows, lab[:, i], lab[:, j]), f(full(out[f"{prefix}{k}"])))
            return m[:, :n, :n]

        states = xp.stack([full(out.get(f"ns{k}", 0.0)) for k in range(self.num_states)], axis=1) \
            if self.num_states else xp.zeros((nb, 0))
        res = {"residual_resist": vec("rr"), "residual_react": vec("rq"),
               "jacobian_resist": mat("jr"), "jacobian_react": mat("jq"),
               # OSDI's load_limit_rhs_* load the negated MIR value: J·(v − v_lim) of the limited
               # branches, added to the residual by the simulator
               "lim_rhs_resist": vec("lr", lambda x: -x), "lim_rhs_react": vec("lq", lambda x: -x),
               "states": states}
        if self._with_scales:
            res.update(scale_residual_resist=vec("rr", xp.abs), scale_residual_react=vec("rq", xp.abs),
                       scale_jacobian_resist=mat("jr", xp.abs), scale_jacobian_react=mat("jq", xp.abs))
        return res

    def _eval_numpy(self, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        """The generated eval run eagerly with NumPy over the batch (no compilation)."""
        ein, lab = self._batch_inputs(inp, nb, np)
        with np.errstate(all="ignore"):
            out = self._np["eval"](ein, {k: np.float64(v) for k, v in sp.items()})
        return self._batch_assemble(out, lab, nb, np)

    def _eval_jax_batch(self, inp: dict[str, Any], sp: dict[str, Any], module: Any = None) -> dict[str, Any]:
        """Batch-native JAX eval (traceable): the generated code works on (N,) arrays directly,
        which traces several times faster than ``vmap`` over one instance. ``module``: a namespace
        with the generated ``eval`` (default: the normal JAX module)."""
        import jax.numpy as jnp

        nb = inp["V"].shape[0]
        ein, lab = self._batch_inputs(inp, nb, jnp)
        ev = self._module.eval if module is None else module["eval"]
        return self._batch_assemble(ev(ein, sp), lab, nb, jnp)

    def eval(self, state: dict[str, Any], voltages: Any, *, analysis: str | int = "dc",
             prev_state: Any = None, enable_lim: bool = False, enable_integration: bool | None = None,
             backend: str | None = None) -> EvalOutput:
        """Evaluate residuals and Jacobians at node voltages ``voltages`` (n,) or (N, n) in V (A for
        flow unknowns), descriptor order. ``analysis`` is a name (``dc``, ``tran``, ``ac``, …) or OSDI
        ANALYSIS_* bits. ``backend`` (default: ``VA2JAX_BACKEND``, else native on a CPU, jax on
        an accelerator): ``"jax"`` runs jit+vmap-compiled code (fast after compiling);
        ``backend="numpy"`` runs the same generated code eagerly with NumPy (no compile);
        ``backend="native"`` the model compiled to machine code by LLVM (:mod:`.native`).
        ``enable_integration`` (OSDI's flag for ``idt`` states): ``None`` follows OSDI's eval with
        the reactive Jacobian computed, i.e. True unless ``analysis`` has the ``ic`` bit; pass
        False for a DC operating point without reactive parts (``idt(x, ic)`` then equals ic).
        Returns an :class:`EvalOutput` with the batch shape of ``state``."""
        _jax()  # float64 on
        try:
            V = np.asarray(voltages, np.float64)
        except (TypeError, ValueError):
            raise Va2JaxError(f"module {self.name}: node voltages must be numbers, got "
                              f"{type(voltages).__name__}") from None
        nb = state["labels"].shape[0]
        if V.ndim not in (1, 2) or V.shape[-1] != self._n:
            raise Va2JaxError(f"module {self.name}: expected {self._n} node voltages {self.nodes} "
                              f"as shape ({self._n},) or (N, {self._n}), got shape {V.shape}")
        batched = bool(state["batched"]) or V.ndim > 1
        V2 = V if V.ndim > 1 else V[None, :]
        if nb == 1 and V2.shape[0] > 1:  # one instance evaluated at many operating points
            nb = V2.shape[0]
            state = self._tile_state(state, nb)
        try:
            V = np.broadcast_to(V2, (nb, self._n))
        except ValueError:
            raise Va2JaxError(f"module {self.name}: {V2.shape[0]} operating points for {nb} instances") from None
        flags = _ANALYSIS.get(analysis, None) if isinstance(analysis, str) else int(analysis)
        if flags is None:
            raise Va2JaxError(f"unknown analysis {analysis!r}; one of {sorted(_ANALYSIS)}")
        ps = np.zeros((nb, self.num_states)) if prev_state is None else np.broadcast_to(
            np.asarray(prev_state, np.float64), (nb, self.num_states))
        inp = {"V": V, "labels": state["labels"], "init": state["init"], "given": state["given"],
               "extra": state["extra"],
               "temperature": state["temperature"], "mfactor": state["mfactor"],
               "analysis": np.full(nb, flags, np.int32), "enable_lim": np.full(nb, bool(enable_lim)),
               "prev_state": ps}
        if enable_integration is not None:
            inp["enable_integration"] = np.full(nb, bool(enable_integration))
        flat = inp
        from .native._backend import choose_backend

        backend = choose_backend(backend)
        if backend == "numpy":
            out = self._eval_numpy(flat, state["sp"], nb)
        elif backend == "native":
            from .native._backend import eval_numpy

            out = eval_numpy(self, flat, state["sp"], nb)
        elif backend != "jax":
            raise Va2JaxError(f"unknown backend {backend!r} (jax, numpy or native)")
        elif hasattr(self._module, "EVAL_PARTS"):
            out = self._run_parts(flat, state["sp"], nb)
        else:
            out = self._run_batched(flat, state["sp"], nb)
        if not batched:
            out = {k: v[0] for k, v in out.items()}
        return EvalOutput(out)


def _enable_integration(inp: Mapping[str, Any], nb: int, xp) -> Any:
    """OSDI's ``enable_integration`` eval input, (N,) bool: whether ``idt`` states integrate.

    OpenVAF lowers ``idt(x, ic)`` to an implicit unknown y with resistive residual −x and
    reactive residual y (so dy/dt = x) when integration is enabled, else y − ic and 0. OSDI's eval
    sets it to ``CALC_REACT_JACOBIAN and not ANALYSIS_IC``; eval always computes the reactive
    Jacobian, so it is ``not ANALYSIS_IC`` unless the caller overrides it (``inp`` key
    ``enable_integration``, e.g. False for a DC operating point as SPICE simulators do).
    """
    if inp.get("enable_integration") is not None:
        return xp.broadcast_to(xp.asarray(inp["enable_integration"], bool), (nb,))
    return (xp.asarray(inp["analysis"]) & _ANALYSIS["ic"]) == 0


def _show(params, name, idx):
    for k, v in params.items():
        if k.lower() == name.lower():
            a = np.asarray(v)
            return a.reshape(-1)[idx] if a.ndim else v
    return "(default)"


def _pair(name: str) -> tuple[str, str | None]:
    inner = name[name.index("(") + 1: name.rindex(")")]
    parts = [s.strip() for s in inner.split(",")]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _used_values(fn) -> set[str]:
    used: set[str] = set()
    for ins in fn.instructions():
        used.update(ins.operands)
        used.update(v for _, v in ins.phi_operands)
    return used


def _convert(mod: str, pname: str, value: Any, ty: str, shape, strings: dict[str, int]):
    if ty == STR:
        if not isinstance(value, str):
            raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a string, got {value!r}")
        sid = strings.setdefault(value, len(strings) + 1000)
        return np.full(shape, sid, np.int32)
    if isinstance(value, str):
        raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a number, got the string {value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise Va2JaxError(f"module {mod}: parameter {pname!r} expects a number, got {value!r}")
    if ty == INT:
        if arr.dtype.kind == "f" and np.any(arr != np.round(arr)):
            raise Va2JaxError(f"module {mod}: integer parameter {pname!r} got non-integer {value!r}")
        return np.broadcast_to(arr.astype(np.int32), shape)
    return np.broadcast_to(arr.astype(np.float64), shape)


# -------------------------------------------------------------------------------------------------
def _own_code_digest() -> str:
    """Hash of va2jax's front-end and generator sources, so a changed generator never reuses stale code."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for sub in ("mir", "codegen"):
        for f in sorted((root / sub).glob("*.py")):
            h.update(f.read_bytes())
    h.update((root / "simparams.py").read_bytes())
    return h.hexdigest()[:16]


def _versions() -> str:
    from importlib.metadata import version

    from ._generate import OPTIMIZE, PART_SIZE

    parts = [f"gen{GENERATOR_VERSION}", _own_code_digest(), f"part{PART_SIZE}", f"opt{int(OPTIMIZE)}"]
    for pkg in ("openvaf-py", "jax"):
        try:
            parts.append(f"{pkg}={version(pkg)}")
        except Exception:  # pragma: no cover
            parts.append(f"{pkg}=?")
    return ",".join(parts)


def compile_va(path: str | os.PathLike[str], module: str | None = None, *, include_dirs=(),
               defines: Mapping[str, Any] | None = None, use_cache: bool = True) -> Model:
    """Compile a Verilog-A file to a JAX :class:`Model` (the file's first module, or ``module``).

    ``include_dirs`` are searched for `` `include``d files after the source's folder; ``defines``
    maps macro names to values (`` `define NAME VALUE``).

    The generated code is cached under ``$VA2JAX_CACHE/codegen`` keyed by the source's path and
    every file it may include (:func:`._code_cache.source_key`), va2jax's front-end and generator
    code, openvaf-py and jax versions; each entry is one atomically written file with a SHA-256
    that is checked on load (a damaged entry is rebuilt, with a warning).
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise Va2JaxError(f"{path}: no such Verilog-A file")
    incs = [str(Path(d).resolve()) for d in include_dirs]
    defs = {str(k): str(v) for k, v in (defines or {}).items()}
    key = hashlib.sha256(repr((str(p), _code_cache.source_key(p, [Path(d) for d in incs]), _versions(),
                               module or "", incs, sorted(defs.items()))).encode()).hexdigest()[:24]
    folder = cache_dir() / "codegen" / key
    src = folder / _code_cache.SOURCE
    if use_cache:
        entry = _code_cache.load_entry(folder)
        if entry is not None:
            ir, gen, used = entry
            m = Model(ir, gen, src, used_eval_values=used, cache_key=key)
            m._origin = (str(p), incs, defs, module)  # the native backend may reload the full IR
            return m
    from ..mir import load_modules

    mods = load_modules(p, incs, defs)
    if module is not None:
        sel = [m for m in mods if module.lower() in (m.name.lower(), (m.osdi_name or m.name).lower())]
        if not sel:
            raise Va2JaxError(f"{path}: no module {module!r}" + suggest(module, [m.name for m in mods]))
        ir = sel[0]
    else:
        ir = mods[0]
    gen = generate(ir)
    used = _used_values(ir.eval)
    try:
        _code_cache.store_entry(folder, _slim(ir), gen, used)
    except OSError as exc:  # read-only or unusable cache: run uncached
        import warnings

        warnings.warn(f"cannot write the code cache {folder} ({exc.strerror or exc}); "
                      "running without it", _code_cache.CacheWarning, stacklevel=2)
        key = None
    m = Model(ir, gen, src, used_eval_values=used, cache_key=key)
    m._origin = (str(p), incs, defs, module)
    return m


def _slim(ir: ModuleIR) -> ModuleIR:
    """``ir`` without the instructions of init and eval (a :class:`Model` needs only their inputs):
    the cached copy loads several times faster."""
    def strip(fn):
        return dataclasses.replace(fn, blocks={}, constants={}, types={})
    return dataclasses.replace(ir, eval=strip(ir.eval), init=strip(ir.init))
