"""The JAX backend: the generated code traced with ``jax.numpy`` and compiled by XLA — per padded
batch size (:func:`run_batched`; split models through ``_parts``), as a device-resident
evaluator (:func:`make_evaluator`), traced inside a caller's ``jit`` (:func:`eval_traceable`),
or as a differentiable function of parameters (:func:`param_function`).

Functions taking ``self`` are :class:`~va2jax.codegen.Model` methods (bound there).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..errors import Va2JaxError
from ..mir import INT, REAL, STR
from ._backend import Backend
from ._exe_cache import CachedJit, target_platform
from ._exec import import_gradient_safe
from ._inputs import batch_assemble, batch_inputs
from ._params import convert, resolve_params
from ._parts import bucket, exe_key, padder, parts_padded, run_parts, static_inputs
from ._rt_ops import ANALYSIS_BITS
from ._state import LIMIT_DYNAMIC, PER_INSTANCE, VOLT_DYNAMIC, EvalInput, SetupState, eval_inputs, tile_state
from ._xla import _compiler_options, _jax, _options_for


class JaxBackend(Backend):
    """XLA-compiled eval: fast after compiling (and loading compiled pieces from the cache)."""

    name = "jax"

    def eval(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        if model.is_split:
            return run_parts(model, inputs, sp, nb)
        return run_batched(model, inputs, sp, nb)


def gradient_safe_module(self) -> dict[str, Any]:
    """The model's code with the gradient-safe runtime (``_rt_grad``), made once per model."""
    if self._grad is None:
        self._grad = import_gradient_safe(self.source, self.source_path, bool(self._cache_key))
    return self._grad


def run_batched(self, inp: dict[str, Any], sp: dict[str, Any], nb: int):
    """Eval of a small model: pad the batch to a power of two (so new sizes rarely
    recompile), one jit-compiled batch-native function, unpad."""
    jax = _jax()
    size = bucket(nb)
    fn = self._eval_jit.get(size)
    if fn is None:
        fn = self._eval_jit[size] = CachedJit(self._eval_jax_batch, exe_key(self, "eval", size),
                                              _options_for(size))
    # padding walks every leaf of the state (µs each): only where there is something to pad
    out = fn(inp if size == nb else jax.tree_util.tree_map(padder(size), inp), sp)
    return {k: np.asarray(v)[:nb] for k, v in out.items()}


def eval_jax_batch(self, inp: dict[str, Any], sp: dict[str, Any], module: Any = None) -> dict[str, Any]:
    """Batch-native JAX eval (traceable): the generated code works on (N,) arrays directly,
    which traces several times faster than ``vmap`` over one instance. ``module``: a namespace
    with the generated ``eval`` (default: the normal JAX module)."""
    import jax.numpy as jnp

    nb = inp["V"].shape[0]
    ein, lab = batch_inputs(self, inp, nb, jnp)
    ev = self._module.eval if module is None else module["eval"]
    return batch_assemble(self, ev(ein, sp), lab, nb, jnp)


def param_function(self, names: list[str], fixed: Mapping[str, Any] | None = None, *,
             analysis: str | int = "dc", sim_params: Mapping[str, float] | None = None,
             backend: str | None = None, connected: Any = None):
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

    ``backend`` (default as ``Model.eval``: native on a CPU): ``"native"`` computes the values
    with the native kernels (XLA FFI) under a ``jax.custom_jvp`` whose voltage tangents of the
    residuals are ``J·dV`` from the kernel's Jacobian and whose other tangents come from the
    native forward-mode tangent kernels (same derivatives as the JAX function above up to
    rounding; docs/native.md, "Tangent kernels"); ``"jax"`` returns the JAX function itself.

    Under the caller's ``jax.jit`` the program is compiled with the caller's XLA options (XLA's
    defaults unless given: va2jax does not change them, and JAX refuses ``compiler_options`` on a
    nested ``jit``). XLA's fusion makes compile time of large models' derivative code grow
    super-linearly (BSIM4 ``jit(grad(f))`` on the loaded 2-core VM: 4 min unfused, unfinished
    after 15 min fused; docs/performance.md, "XLA options"): ``jax.jit(g, compiler_options=va2jax.codegen.FUSION_OFF)``
    compiles it as va2jax compiles its own model code, and keeps ``a*b + c`` rounded twice.
    """
    jax = _jax()
    import jax.numpy as jnp

    canon = [self.canonical_param(nm) for nm in names]
    fixed = dict(fixed or {})
    vals, given = resolve_params(self, fixed)
    probe = self.setup({**fixed}, sim_params=sim_params, connected=connected)
    # $port_connected flags count as given ones (eval reads them as it reads $param_given)
    given = given | {k.lower() for k, v in probe.given.items()
                     if k.startswith("$port_connected(") and bool(np.asarray(v)[0])}
    labels = jnp.asarray(probe.labels[0])
    flags = ANALYSIS_BITS[analysis] if isinstance(analysis, str) else int(analysis)
    sp = probe.sp
    ptypes = {p.name.lower(): p.type for p in self.ir.params}
    wanted = {c.lower(): nm for c, nm in zip(canon, names)}
    strings = dict(self._strings)
    grad_module = gradient_safe_module(self)
    for c, nm in zip(canon, names):
        if ptypes.get(c.lower()) == STR:
            raise Va2JaxError(f"module {self.name}: string parameter {nm!r} cannot be an argument "
                              "of Model.function (give it in fixed)")

    def param_value(key: str, values: Mapping[str, Any]) -> Any:
        """Parameter ``key`` (lower case) as the generated code reads it: float64 for a real
        parameter, int32 for an integer or string one (like :meth:`Model.setup`); a name in
        ``names`` from ``values`` (an integer one truncated to int32, its derivative 0)."""
        ty = ptypes.get(key, REAL)
        if key in wanted:
            x = jnp.asarray(values[wanted[key]])
            return x.astype(jnp.int32) if ty == INT else x.astype(jnp.float64)
        if key in vals:
            return jnp.asarray(convert(self.name, key, vals[key], ty, (), strings))
        return jnp.int32(0) if ty in (INT, STR) else jnp.float64(0.0)

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
                inp[p.value] = param_value(key, values)
            elif p.kind == "param_given":
                inp[p.value] = jnp.bool_(key in given or key in wanted)
            elif p.kind == "temperature":
                inp[p.value] = jnp.asarray(temperature, jnp.float64)
            elif p.kind == "sysfun":
                inp[p.value] = mfactor(values)
            elif p.kind == "port_connected":
                inp[p.value] = jnp.bool_(f"$port_connected({p.name})".lower() in given)
            else:
                inp[p.value] = jnp.bool_(True)
        return inp

    def extra_inputs(init: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        extra = {}
        for _v, how, data in self._eval_inputs:
            if how is EvalInput.PARAM and f"param:{data}" not in init:
                extra[data] = param_value(data.lower(), values)
        return extra

    def f(values: Mapping[str, Any], temperature: Any, V: Any) -> dict[str, Any]:
        init = grad_module["init"](init_inputs(values, temperature), sp)
        extra = extra_inputs(init, values)
        st = SetupState(init=init, temperature=jnp.asarray(temperature, jnp.float64), labels=labels,
                        mfactor=mfactor(values), sp=sp, batched=False, extra=extra,
                        given={k: jnp.bool_(k.lower() in given or k.lower() in wanted) for k in probe.given})
        one = st._replace(**{k: jax.tree_util.tree_map(
            lambda x: jnp.reshape(jnp.asarray(x), (1,) + jnp.shape(x)), st[k]) for k in PER_INSTANCE})
        V1 = jnp.reshape(jnp.asarray(V, jnp.float64), (1,) + jnp.shape(V))
        one = eval_inputs(one, V1, flags=flags, num_states=self.num_states, xp=jnp)
        res = eval_jax_batch(self, one, sp, grad_module)
        return {k: v[0] for k, v in res.items()}

    from .native._backend import choose_backend

    if choose_backend(backend) == "native":  # values from the kernel, f for the tangents
        from .native._backend import function as native_function

        return native_function(self, f, init_inputs, extra_inputs, mfactor, probe, given | set(wanted), flags)
    return f


def make_evaluator(self, state: SetupState, *, analysis: str | int = "dc", enable_lim: bool = False,
              limiting: bool = False):
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
    """
    jax = _jax()
    import jax.numpy as jnp

    nb = state.labels.shape[0]
    size = bucket(nb)
    flags = ANALYSIS_BITS[analysis] if isinstance(analysis, str) else int(analysis)
    pad = padder(size)
    dynamic = LIMIT_DYNAMIC if limiting else VOLT_DYNAMIC

    static = eval_inputs(state, None, flags=flags, num_states=self.num_states, enable_lim=enable_lim)
    sp = state.sp
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
        ein_static = {k: jnp.asarray(v) for k, v in static_inputs(self, static, nb, size, dynamic).items()}
        labels = jnp.asarray(pad(np.broadcast_to(state.labels, (nb,) + np.shape(state.labels)[1:])))

        def run(V, prev_state=None, enable=False):
            pin = {**per_call(V, prev_state, enable), "labels": labels}
            return trim(parts_padded(self, pin, sp, size, ein_static, dynamic))
    else:
        # the whole state, padded, on the device
        const = jax.tree_util.tree_map(
            lambda x: jnp.asarray(pad(np.broadcast_to(x, (nb,) + np.shape(x)[1:]))), static)
        g = jax.jit(lambda st, pin: eval_jax_batch(self, {**st, **pin}, sp),
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
            wider[m] = make_evaluator(self, tile_state(state, m), analysis=analysis,
                                      enable_lim=enable_lim, limiting=limiting)  # the JAX one
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


def eval_traceable(self, state: SetupState, V: Any, *, analysis: str | int = "dc",
                   prev_state: Any = None, enable_lim: Any = False,
                   enable_integration: Any = None, gradient_safe: bool = False) -> dict[str, Any]:
    """Like :meth:`eval` but a pure JAX function of ``V`` (N, n) for use inside ``jax.jit``
    (e.g. a simulator's Newton loop): no host round-trips, no padding. ``state`` must come from
    :meth:`setup` with N instances. Returns a dict of arrays (``residual_resist``, …).
    ``gradient_safe``: trace the gradient-safe runtime (same values; reverse-mode derivatives
    stay finite through untaken branches, see docs/codegen.md) at the cost of extra selects.
    The caller's ``jit`` compiles it with the caller's XLA options; for a large model pass
    ``compiler_options=va2jax.codegen.FUSION_OFF`` (as :func:`param_function` explains)."""
    _jax()  # float64 on
    import jax.numpy as jnp

    flags = ANALYSIS_BITS[analysis] if isinstance(analysis, str) else analysis
    inp = eval_inputs(state, V, flags=flags, num_states=self.num_states, prev_state=prev_state,
                      enable_lim=enable_lim, enable_integration=enable_integration, xp=jnp)
    return eval_jax_batch(self, inp, state.sp, gradient_safe_module(self) if gradient_safe else None)
