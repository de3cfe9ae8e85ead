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

import functools
import numbers
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import Va2JaxError, suggest
from ..mir import REAL, ModuleIR
from ..simparams import DEFAULT_SIM_PARAMS
from ._backend import Backend
from ._backend_jax import JaxBackend, eval_jax_batch, eval_traceable, make_evaluator, param_function
from ._backend_native import NativeBackend
from ._backend_numpy import NumpyBackend
from ._exec import import_jax, import_numpy
from ._generate import GeneratedModule, InitFlag, init_flags, string_ids
from ._inputs import batch_assemble, batch_inputs, input_table, used_values
from ._params import (
    ModelParam,
    check_bounds,
    connected_ports,
    convert,
    init_inputs,
    is_given,
    mfactor_of,
    resolve_params,
    show,
)
from ._rt_ops import ANALYSIS_BITS
from ._state import EvalInput, EvalOutput, SetupState, as_state, eval_inputs, tile_state
from ._xla import FUSION_ON, _jax, fusion_is_exact  # noqa: F401 (re-exported)

__all__ = ["EvalOutput", "Model", "ModelParam", "SetupState"]

#: The backends by the name users pass as ``backend=``; setup runs with those that implement init.
BACKENDS: dict[str, Backend] = {"numpy": NumpyBackend(), "jax": JaxBackend(), "native": NativeBackend()}
SETUP_BACKENDS = ("numpy", "native")


class Model:
    """A Verilog-A module compiled to JAX. Create with :func:`va2jax.compile_va`.

    Attributes: ``name``, ``nodes`` (names, OSDI order), ``node_kinds``, ``num_terminals``,
    ``terminals``, ``params`` (name → :class:`ModelParam`), ``num_states``, ``source`` (the
    generated Python code), ``source_path`` (where it is cached).
    """

    def __init__(self, ir: ModuleIR, gen: GeneratedModule | None, source_path: Path, *,
                 used_eval_values: set[str] | None = None, cache_key: str | None = None,
                 flags: list[InitFlag] | None = None, strings: dict[str, int] | None = None):
        self.ir = ir
        self._used_eval = used_eval_values
        #: key of the generated code in the cache (None: not cached); names compiled executables
        self._cache_key = cache_key
        if gen is not None:
            self.__dict__["gen"] = gen  # else generated when first asked for (see ``gen``)
        if flags is None:
            flags = gen.flags if gen is not None else init_flags(ir)
        if strings is None:
            strings = gen.strings if gen is not None else string_ids(ir)
        #: init's bound-check flags and the string ids (what setup needs without the generated code)
        self._flags = flags
        self._strings = dict(strings)
        self.name = ir.name
        self.nodes = tuple(n.name for n in ir.nodes)
        self.node_kinds = tuple(n.kind for n in ir.nodes)
        self.num_terminals = ir.num_terminals
        self.terminals = self.nodes[: ir.num_terminals]
        self.num_states = ir.num_states
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
        self._grad: dict[str, Any] | None = None
        self._with_scales = False  # validation asks for Σ|terms| of collapsed sums
        self._eval_jit: dict = {}
        self._selected_inputs: dict = {}  # (only, which, dynamic) → eval inputs (_batch_inputs)
        used = used_eval_values if used_eval_values is not None else used_values(ir.eval)
        self._eval_inputs = input_table(ir, used)  # (value, EvalInput, data) per eval input
        self._n = len(ir.nodes)
        self._jr = [(k, j.row, j.col) for k, j in enumerate(ir.jacobian)]
        # (a, b or -1, init output deciding it or None = always, negate)
        self._pairs = [(cp.a, -1 if cp.b is None else cp.b,
                        k if (cp.hints or cp.decision is not None) else None,
                        bool(cp.decision[1]) if (cp.decision is not None and not cp.hints) else False)
                       for k, cp in enumerate(ir.collapsible)]

    # -- the generated Python module: made (and executed) only when a path that runs it is taken
    # (the NumPy and JAX backends, gradients, ``va2jax compile``); the native backend needs none
    # of it, so ``Model.eval``/``setup`` on the native backend import neither it nor JAX
    @functools.cached_property
    def gen(self) -> GeneratedModule:
        """The generated module (:func:`._generate.generate`), generated on first use and then
        stored in the code cache with the model's entry."""
        from ._lazy import generate_for

        return generate_for(self)

    @functools.cached_property
    def source(self) -> str:
        """The generated Python/JAX source."""
        return self.gen.source

    @functools.cached_property
    def _module(self):
        return import_jax(self.source, self.source_path, bool(self._cache_key))

    @functools.cached_property
    def _np(self) -> dict[str, Any]:
        return import_numpy(self.source, self.source_path, bool(self._cache_key))

    @property
    def _output_vars(self) -> dict[str, str]:
        return self.gen.eval_output_vars

    @property
    def _const_outputs(self) -> dict[str, float]:
        return self.gen.eval_output_consts

    # methods that live in the backend, parameter and input modules
    _batch_inputs = batch_inputs
    _batch_assemble = batch_assemble
    _eval_jax_batch = eval_jax_batch
    _resolve_params = resolve_params
    _init_inputs = init_inputs

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
        the others (see ``_params.resolve_params``)."""
        return resolve_params(self, params or {})[0]

    def request_scales(self, on: bool = True) -> None:
        """Make eval also return ``scales`` (Σ|terms| of each collapsed sum, for validation
        tolerances); off by default."""
        self._with_scales = bool(on)

    def setup(self, params: Mapping[str, Any] | None = None, *, temperature: Any = 300.15,
              sim_params: Mapping[str, float] | None = None, backend: str | None = None,
              connected: Any = None) -> SetupState:
        """Run the module's setup (OSDI ``setup_model`` + ``setup_instance``) for a batch of instances.

        ``params`` maps parameter names (any alias, case-insensitive) to scalars or arrays; all
        arrays broadcast to one batch shape. ``temperature`` in K. Returns a state pytree for
        :meth:`eval`. Raises :class:`~va2jax.Va2JaxError` naming the parameter when a value is out
        of its declared bounds (as OSDI's setup does). ``backend``: ``"numpy"`` runs the generated
        init eagerly with NumPy, ``"native"`` the LLVM-compiled init (same outputs); default:
        native where :meth:`eval` defaults to native (a CPU; ``VA2JAX_BACKEND``), else NumPy.
        ``connected``: how many of the module's terminals the instance connects (OSDI
        ``setup_instance``'s ``connected_terminals``; scalar or per instance; default all): the
        first ``connected`` terminals are connected, as ``$port_connected`` then reports.
        """
        params = dict(params or {})
        shapes = [np.shape(v) for v in params.values() if not isinstance(v, str)] + [np.shape(temperature)]
        if connected is not None:
            shapes.append(np.shape(connected))
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
        check_bounds(self, params, bool(shape))
        vals, given_set = resolve_params(self, params)
        ports = connected_ports(self, connected, bshape)
        inp = init_inputs(self, vals, given_set, temperature, bshape, connected)
        sp = {k: np.float64(v) for k, v in DEFAULT_SIM_PARAMS.items()}
        for k, v in (sim_params or {}).items():
            if isinstance(v, bool) or not isinstance(v, numbers.Real):
                raise Va2JaxError(f"simulator parameter {k!r} must be a number, got {v!r}")
            sp[k] = np.float64(v)
        # setup runs eagerly (NumPy or the native kernel): no XLA compile for a one-off
        if backend is None:
            from .native._backend import choose_backend

            backend = "native" if choose_backend(None) == "native" else "numpy"
        if backend not in SETUP_BACKENDS:
            raise Va2JaxError(f"unknown setup backend {backend!r} (numpy or native)")
        out = BACKENDS[backend].init(self, inp, sp, bshape[0])
        out = {k: np.broadcast_to(np.asarray(v), bshape) for k, v in out.items()}
        # bound checks
        for f in self._flags:
            fired = np.asarray(out[f.output])
            if fired.any():
                idx = int(np.argmax(fired))
                if f.kind == "exit":
                    raise Va2JaxError(f"module {self.name}: $finish/$fatal during setup (instance {idx})")
                desc = ", ".join(f"{p}={show(params, p, idx)}" for p in f.params) or "a parameter"
                raise Va2JaxError(f"module {self.name}: parameter out of bounds: {desc}"
                                  + (f" (instance {idx})" if shape else ""))
        labels = self._collapse_labels(out, bshape[0])
        # parameters eval reads but init does not output
        extra: dict[str, Any] = {}
        ptypes = {p.name.lower(): p.type for p in self.ir.params}
        for _value, how, data in self._eval_inputs:
            if how is EvalInput.PARAM and f"param:{data}" not in out:
                key = data.lower()
                ty = ptypes.get(key, REAL)
                v = vals.get(key, 0.0)
                extra[data] = convert(self.name, data, v, ty, bshape, dict(self._strings))
        # eval's $temperature is the setup temperature even when init does not read it (asmhemt
        # uses $temperature only in eval: Tdev = $temperature + Temp(rth))
        temp = np.broadcast_to(np.asarray(temperature, np.float64), bshape).copy()
        state = SetupState(
            init=out, temperature=temp, labels=labels, sp=sp, batched=bool(shape), extra=extra,
            mfactor=np.broadcast_to(np.asarray(mfactor_of(self, params), np.float64), bshape),
            given={**{p.name: np.full(bshape, is_given(self, params, p.name), np.bool_)
                      for p in self.ir.eval.params if p.kind == "param_given"}, **ports})
        # read-only: what eval derives from a state's arrays stays valid while they live
        # (the native backend reuses its input rows: native._backend._state_rows)
        for leaf in (state.temperature, state.labels, *state.given.values(), *state.extra.values()):
            if isinstance(leaf, np.ndarray) and leaf.flags.writeable:
                leaf.flags.writeable = False
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

    def function(self, names: list[str], fixed: Mapping[str, Any] | None = None, *,
                 analysis: str | int = "dc", sim_params: Mapping[str, float] | None = None,
                 backend: str | None = None, connected: Any = None):
        """A pure, differentiable JAX function ``f(values, temperature, V) -> dict`` of some
        parameters, the temperature (K) and the node voltages of ONE instance; see
        :func:`._backend_jax.param_function` (``backend``: values from the native kernels under a
        ``custom_jvp``, default on a CPU, or the JAX function itself; ``connected`` as :meth:`setup`)."""
        return param_function(self, names, fixed, analysis=analysis, sim_params=sim_params, backend=backend,
                              connected=connected)

    def evaluator(self, state: SetupState, *, analysis: str | int = "dc", enable_lim: bool = False,
                  limiting: bool = False, backend: str | None = None):
        """A compiled evaluator with the setup state kept on the device: ``f(V) -> dict`` for (N, n)
        voltages ``V`` (``limiting=True``: ``f(V, prev_state, enable)``). ``backend`` as
        :meth:`eval` (not ``"numpy"``): native packs the state once into kernel rows and each call
        is one jitted XLA FFI call (:func:`.native._backend.evaluator`; called eagerly it returns
        NumPy views, inside ``jit``/``while_loop`` JAX arrays); jax: :func:`._backend_jax.make_evaluator`."""
        from .native._backend import choose_backend

        state = as_state(state)
        backend = choose_backend(backend)
        if backend == "native":
            from .native._backend import evaluator

            flags = ANALYSIS_BITS[analysis] if isinstance(analysis, str) else int(analysis)
            return evaluator(self, state, flags, enable_lim, limiting)
        if backend != "jax":
            raise Va2JaxError(f"module {self.name}: the evaluator runs on the jax or native backend, "
                              f"not {backend!r}")
        return make_evaluator(self, state, analysis=analysis, enable_lim=enable_lim, limiting=limiting)

    @staticmethod
    def _tile_state(state: SetupState, nb: int) -> SetupState:
        """A setup state of one instance repeated ``nb`` times along the instance axis."""
        return tile_state(as_state(state), nb)

    def eval_traceable(self, state: SetupState, V: Any, *, analysis: str | int = "dc",
                       prev_state: Any = None, enable_lim: Any = False,
                       enable_integration: Any = None, gradient_safe: bool = False) -> dict[str, Any]:
        """Like :meth:`eval` but a pure JAX function of ``V`` (N, n) for use inside ``jax.jit``
        (no host round-trips, no padding); see :func:`._backend_jax.eval_traceable`."""
        return eval_traceable(self, as_state(state), V, analysis=analysis, prev_state=prev_state,
                              enable_lim=enable_lim, enable_integration=enable_integration,
                              gradient_safe=gradient_safe)

    @property
    def noise_sources(self) -> tuple[str, ...]:
        """Names of the noise sources, in OSDI's ``noise_sources`` order (columns of :meth:`noise`)."""
        return tuple(s.name for s in self.ir.noise_sources)

    def noise(self, voltages: Any, freq: Any, params: Mapping[str, Any] | None = None, *,
              temperature: Any = 300.15, sim_params: Mapping[str, float] | None = None,
              backend: str = "numpy") -> np.ndarray:
        """Noise densities of each source (:attr:`noise_sources`) at node ``voltages`` (n,) or
        (N, n) and frequency ``freq`` (Hz, scalar or (N,)), for an instance with ``params`` at
        ``temperature`` (K): what OSDI's ``load_noise`` returns after an eval with CALC_NOISE —
        A²/Hz for a current source, V²/Hz for a voltage source; white: P·a², flicker:
        P/f^e·a² (a = √$mfactor, 1/√$mfactor for voltage sources). Shape (n_src,) or
        (N, n_src). See :mod:`._noise` (``backend``: numpy, exact vs OSDI -O0, or jax)."""
        from ._noise import model_noise

        return model_noise(self, voltages, freq, params, temperature=temperature,
                           sim_params=sim_params, backend=backend)

    def noise_unsupported(self) -> dict[str, str]:
        """Noise sources :meth:`noise` cannot compute, each with the reason (empty: it computes
        them all); builds the noise variant on first use."""
        from ._noise import unsupported

        return unsupported(self)

    def noise_function(self, names: list[str], fixed: Mapping[str, Any] | None = None, *,
                       sim_params: Mapping[str, float] | None = None):
        """A pure, differentiable JAX function ``f(values, temperature, V, freq) -> (n_src,)`` of
        the noise densities of ONE instance (as :meth:`noise`), with the parameters in ``names``
        given by ``values`` (others ``fixed`` or defaults), like :meth:`function`: ``jax.grad``
        gives their derivatives (setup runs inside ``f``)."""
        from ._noise import noise_function

        return noise_function(self, names, fixed, sim_params=sim_params)

    def eval(self, state: SetupState, voltages: Any, *, analysis: str | int = "dc",
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
        try:
            V = np.asarray(voltages, np.float64)
        except (TypeError, ValueError):
            raise Va2JaxError(f"module {self.name}: node voltages must be numbers, got "
                              f"{type(voltages).__name__}") from None
        state = as_state(state)
        nb = state.labels.shape[0]
        if V.ndim not in (1, 2) or V.shape[-1] != self._n:
            raise Va2JaxError(f"module {self.name}: expected {self._n} node voltages {self.nodes} "
                              f"as shape ({self._n},) or (N, {self._n}), got shape {V.shape}")
        batched = bool(state.batched) or V.ndim > 1
        V2 = V if V.ndim > 1 else V[None, :]
        if nb == 1 and V2.shape[0] > 1:  # one instance evaluated at many operating points
            nb = V2.shape[0]
            state = tile_state(state, nb)
        try:
            V = np.broadcast_to(V2, (nb, self._n))
        except ValueError:
            raise Va2JaxError(f"module {self.name}: {V2.shape[0]} operating points for {nb} instances") from None
        flags = ANALYSIS_BITS.get(analysis, None) if isinstance(analysis, str) else int(analysis)
        if flags is None:
            raise Va2JaxError(f"unknown analysis {analysis!r}; one of {sorted(ANALYSIS_BITS)}")
        inp = eval_inputs(state, V, flags=flags, num_states=self.num_states, prev_state=prev_state,
                          enable_lim=enable_lim, enable_integration=enable_integration)
        from .native._backend import choose_backend

        backend = choose_backend(backend)
        if backend not in BACKENDS:
            raise Va2JaxError(f"unknown backend {backend!r} (jax, numpy or native)")
        if backend == "jax":
            _jax()  # float64 on
        out = BACKENDS[backend].eval(self, inp, state.sp, nb)
        if not batched:
            out = {k: v[0] for k, v in out.items()}
        return EvalOutput(out)
