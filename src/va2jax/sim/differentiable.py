"""Differentiable circuit analyses: a netlist as a pure JAX function of chosen parameters.

:func:`function` turns a netlist and a list of parameter keys (those of :class:`~.batch.BatchSweep`:
``"r1"``, ``"c1.c"``, ``"v1.dc"``, ``"m1.w"``, ``"dmod.is"``, …) into ``f(values) -> outputs``,
a pure function of a dict of parameter values whose outputs are JAX arrays, usable under
:func:`jax.jit`, :func:`jax.grad`, :func:`jax.jacfwd`, :func:`jax.jacrev` and :func:`jax.vmap`.

Operating point: implicit differentiation
-----------------------------------------
The DC operating point ``x*(p)`` (unknowns ``x``: node voltages in V, branch currents in A)
solves ``F(x*, p) = 0`` with ``F(x, p) = f(x; p) − b(p) + g_shunt·x_v`` (``f``: the resistive
currents of the MNA equations, ``b``: the sources' dc values). Differentiating the identity
``F(x*(p), p) = 0`` gives the implicit function theorem::

    J·(dx*/dp) = −∂F/∂p,      J = ∂F/∂x at (x*, p)

so a forward-mode tangent is ``ẋ = −J⁻¹·(∂F/∂p·ṗ)``: one linear solve with the Jacobian at the
converged point, whatever path (plain Newton, gmin or source stepping) found it and however many
iterations it took — the iterations are never differentiated. The rule is a
:func:`jax.custom_jvp` whose tangent is linear in ``ṗ`` (a JVP of ``F`` in ``p`` at fixed
``x*``, then the solve), so JAX transposes it for reverse mode: a gradient costs one operating
point, one transposed solve ``Jᵀ·λ = ∂L/∂x*`` and one VJP of ``F`` in ``p``.

Treated as constant: the Newton start, the tolerances, the continuation path, and the models'
junction limiting (limiting changes the iterates, not the solution). The solution returned is the
simulator's Newton result refined by ``polish`` extra full Newton steps (no limiting, no
clipping; default 3): Newton converges quadratically, so three steps take the result from the
simulator's tolerance (``reltol``, default 10⁻³ of each step) to rounding level, and the
function's value is then a smooth function of ``p`` whose finite differences agree with the
implicit derivative. Where the operating point fails, ``status`` is nonzero and the outputs
are the last iterate (their derivatives are meaningless).

AC
--
The small-signal solution ``X(ω) = (J_f + jω·J_q)⁻¹·U`` (``J_f``, ``J_q``: the Jacobians of the
resistive and reactive parts at ``x*``; ``U``: the sources' ``mag``/``phase``) is differentiated
by JAX directly: through the linear solve (in real arithmetic, :func:`_ac_solve`), through the
Jacobians' dependence on ``p``
(element values, model parameters) and on ``x*`` (second derivatives of the models), with ``x*``
from the implicit operating point above. Outputs ``db(node)`` = ``20·log10|X|`` (dB),
``phase(node)`` = ``arg X`` in degrees, ``mag``, ``real``, ``imag``, or the complex ``X``.

Transient
---------
``analysis="tran"``: the unknowns at given times, with forward sensitivities and the discrete
adjoint of the simulator's accepted time steps (step sizes and orders held constant):
:mod:`._tran_adjoint`.

Parameters of OSDI-library models cannot be traced (the library runs on the host): asking for
one is an error (the circuit's *voltage* sensitivities still include those devices through their
Jacobians — e.g. a resistor's gradient in a circuit of OSDI diodes).

>>> f = function("graetz.sim", ["rl", "dpwr.is"], "op", ["outp"])          # doctest: +SKIP
>>> jax.grad(lambda v: f(v)["outp"])({"rl": 1e3, "dpwr.is": 76.9e-12})      # doctest: +SKIP
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import Va2JaxError, suggest
from .assembly import assemble_fn
from .batch import BatchSweep
from .engine import Options
from .engine import dense_equilibrated_solve as _equilibrated_solve

__all__ = ["function", "CircuitFunction", "crossings"]

_AC_FORMS = ("db", "phase", "mag", "real", "imag")
_OUT_RE = re.compile(r"^\s*(\w+)\s*\(\s*(.+?)\s*\)\s*$")


class CircuitFunction:
    """``f(values) -> {output: array}``: an analysis of a netlist as a pure JAX function.

    ``values``: a dict (any mapping; a pytree of scalars) from the parameter keys given to
    :func:`function` to their values (SI units); keys left out take their netlist (nominal)
    values. Outputs: a dict from the output names to float64 arrays (``op``: scalars;
    ``ac``: shape ``(len(freqs),)``, complex128 for plain node names; ``tran``: shape
    ``(len(times),)``) and ``"status"`` (int32, 0 = the operating point / transient converged;
    :class:`~.batch.LaneStatus` for a transient). Attributes: :attr:`params`, :attr:`nominal` (dict),
    :attr:`outputs`, :attr:`freqs`.
    """

    def __init__(self, bs: BatchSweep, analysis: str, outputs: list[tuple[str, str, int]],
                 freqs: np.ndarray | None, polish: int, tran: Mapping[str, Any] | None = None):
        self._bs = bs
        self.analysis = analysis
        self.params = list(bs.keys)
        self.nominal = {k: float(v) for k, v in zip(bs.keys, bs.nominal)}
        self._outs = outputs
        self.outputs = [o[0] for o in outputs]
        self.freqs = freqs
        self._polish = int(polish)
        self._op_core = self._make_op()
        self._extra: dict[int, Any] = {}
        self.times = None
        if analysis in ("ac", "tran"):
            # AC needs ∂J/∂x of every device, the transient replay ∂q/∂x (the charges at the
            # implicitly differentiated points), also of groups with no traced parameter: each
            # generated model through Model.function, whose tangents (in parameters and
            # voltages) come from the native tangent kernels on a CPU
            # (codegen/native/_tangent.py) and from the JAX function elsewhere
            from .adapters import GeneratedModel
            from .batch import _TracedGroup
            from .devices import JaxFunctionModel

            for gi, g in enumerate(bs.system.groups):
                if isinstance(g.model, JaxFunctionModel):
                    continue
                if not isinstance(g.model, GeneratedModel):
                    if analysis == "tran":
                        continue
                    raise Va2JaxError(f"function: ac derivatives need the second derivatives of "
                                      f"model {g.model.name}, an OSDI library (load its .va file)")
                swept = bs._groups[gi].swept if gi in bs._groups else []
                self._extra[gi] = _TracedGroup(bs, gi, swept)
        if analysis == "tran":
            from ._tran_adjoint import TranReplay

            assert tran is not None
            self.times = np.asarray(tran["times"], float)
            self._replay = TranReplay(bs, self.times, [o[2] for o in outputs], polish=polish,
                                      system_at=self._system,
                                      **{k: v for k, v in tran.items() if k != "times"})

    def _system(self, p: jax.Array):
        """The circuit at parameter values ``p``; for AC and the transient every generated device
        group through its differentiable ``Model.function`` (so that ``∂J/∂x``, ``∂q/∂x`` exist)."""
        from .mna import GroupRef

        sysm = self._bs.system_at(p)
        if not self._extra:
            return sysm
        groups = list(sysm.groups)
        for gi, tg in self._extra.items():
            g = groups[gi]
            groups[gi] = GroupRef(g.model, tg.bound(p), g.idx, g.names)
        return dataclasses.replace(sysm, groups=groups)

    # -- the operating point with its implicit derivative --------------------------------------
    def _residual(self, x: jax.Array, p: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``F(x, p)`` (A; V on voltage-source rows) and ``J = ∂F/∂x`` of the DC equations."""
        bs = self._bs
        sysm = bs.system_at(p)
        f, _, Jf, _ = assemble_fn(sysm)(x)
        gsh = bs.opts.gshunt * jnp.asarray(bs.system.gmin_mask)
        return f - bs._dc_vector(sysm) + gsh * x, Jf + jnp.diag(gsh)

    def _make_op(self):
        op_fn = self._bs.op_function()
        residual = self._residual
        polish = self._polish

        @jax.custom_jvp
        def op_core(p: jax.Array) -> tuple[jax.Array, jax.Array]:
            out = op_fn(p)
            x, status = out["x"], out["status"]
            for _ in range(polish):  # full Newton steps from the converged point
                F, J = residual(x, p)
                xn = x - _equilibrated_solve(J, F)
                x = jnp.where((status == 0) & jnp.all(jnp.isfinite(xn)), xn, x)
            return x, status.astype(jnp.float64)

        @op_core.defjvp
        def op_core_jvp(primals, tangents):
            (p,), (dp,) = primals, tangents
            x, status = op_core(p)
            _, J = residual(x, p)
            _, dF = jax.jvp(lambda q: residual(x, q)[0], (p,), (dp,))
            dx = -_equilibrated_solve(J, dF)
            return (x, status), (dx, jnp.zeros_like(status))

        return op_core

    # -- evaluation -----------------------------------------------------------------------------
    def _vector(self, values: Mapping[str, Any]) -> jax.Array:
        if not isinstance(values, Mapping):
            raise Va2JaxError("function: pass the parameter values as a dict {key: value}")
        low = {k.lower(): i for i, k in enumerate(self.params)}
        cols: list[Any] = [jnp.float64(v) for v in self._bs.nominal]
        for k, v in values.items():
            i = low.get(str(k).lower())
            if i is None:
                raise Va2JaxError(f"function: {k!r} is not one of its parameters"
                                  + suggest(str(k), self.params))
            cols[i] = jnp.asarray(v, jnp.float64).reshape(())
        return jnp.stack(cols)

    def __call__(self, values: Mapping[str, Any]) -> dict[str, jax.Array]:
        p = self._vector(values)
        out: dict[str, jax.Array] = {}
        if self.analysis == "tran":
            ys, st = self._replay(p)
            for j, (name, _, _) in enumerate(self._outs):
                out[name] = ys[:, j]
            out["status"] = st
            return out
        x, status = self._op_core(p)
        if self.analysis == "op":
            for name, _, col in self._outs:
                out[name] = x[col]
        else:
            sysm = self._system(p)
            _, _, Jf, Jq = assemble_fn(sysm)(x)
            X = _ac_solve(Jf, Jq, jnp.asarray(sysm.ac_vector()), self.freqs)
            for name, form, col in self._outs:
                z = X[:, col]
                if form == "db":
                    out[name] = 20.0 * jnp.log10(jnp.abs(z))
                elif form == "phase":
                    out[name] = jnp.degrees(jnp.angle(z))
                elif form == "mag":
                    out[name] = jnp.abs(z)
                elif form == "real":
                    out[name] = jnp.real(z)
                elif form == "imag":
                    out[name] = jnp.imag(z)
                else:
                    out[name] = z
        out["status"] = status.astype(jnp.int32)
        return out


    def waveform(self, values: Mapping[str, Any]) -> dict[str, jax.Array]:
        """``analysis="tran"`` only: the outputs at every accepted time point instead of at
        ``times``. Returns ``{"time": (L,), output: (L,), "npoints": int32, "status": int32}``
        with ``L = max_points + 17`` (the transient's buffer): ``time`` is the simulator's
        accepted times at ``values``, held constant (no derivative; ``inf`` past ``npoints``),
        the outputs are the replayed solutions there (differentiable as the samples; rows
        past ``npoints`` repeat the last point). For measurements at the accepted points, such
        as :func:`crossings`."""
        if self.analysis != "tran":
            raise Va2JaxError("function: waveform() is for analysis 'tran'")
        times, X, npts, st = self._replay.trajectory(self._vector(values))
        out: dict[str, jax.Array] = {"time": times}
        for j, (name, _, _) in enumerate(self._outs):
            out[name] = X[:, j]
        out["npoints"] = jnp.asarray(npts, jnp.int32)
        out["status"] = st
        return out


def crossings(t: jax.Array, y: jax.Array, level: Any, count: int, *, after: float = 0.0,
              rising: bool = True) -> jax.Array:
    """The first ``count`` times (s) after ``after`` at which the waveform ``y`` (sampled at the
    increasing times ``t``; ``inf`` entries ignored) crosses ``level`` upwards (``rising``) or
    downwards, linearly interpolated between the two samples around each crossing::

        t_c = t_i + (level − y_i)·(t_{i+1} − t_i)/(y_{i+1} − y_i)

    Which interval holds a crossing is decided on the values (no derivative); ``t_c`` is
    differentiable in ``y`` and ``level`` (``t`` from :meth:`CircuitFunction.waveform` is
    held constant). Entries past the last crossing found are ``nan``. Fixed-size output, usable
    under :func:`jax.jit` (``count`` static)."""
    t = jnp.asarray(t)
    y = jnp.asarray(y)
    s = y - level
    ok = jnp.isfinite(t[1:]) & (t[:-1] >= after)
    hit = (s[:-1] < 0) & (s[1:] >= 0) if rising else (s[:-1] > 0) & (s[1:] <= 0)
    idx = jnp.nonzero(jax.lax.stop_gradient(hit & ok), size=int(count), fill_value=-1)[0]
    i = jnp.maximum(idx, 0)
    t0, t1, y0, y1 = t[i], t[i + 1], y[i], y[i + 1]
    tc = t0 + (level - y0) * (t1 - t0) / jnp.where(y1 != y0, y1 - y0, 1.0)
    return jnp.where(idx >= 0, tc, jnp.nan)


def _ac_solve(Jf: jax.Array, Jq: jax.Array, u: Any, freqs: np.ndarray) -> jax.Array:
    """``X(ω) = (J_f + jω·J_q)⁻¹·U`` for each frequency (Hz) as the real system of twice the size::

        [ J_f   −ω·J_q ] [Re X]   [Re U]
        [ ω·J_q   J_f  ] [Im X] = [Im U]

    solved by :func:`~.engine.dense_equilibrated_solve` (float64 throughout). The complex form
    (``jnp.linalg.solve`` in complex128) is not used: compiled with XLA's fusion passes disabled
    (what va2jax asks for its model code, :data:`va2jax.codegen.FUSION_OFF`, and what a caller may
    pass), XLA's CPU code for a complex ``dot_general`` whose right operand has two or more free
    dimensions returns wrong values (jax/jaxlib 0.10.2; docs/performance.md) — exactly the dots
    JAX emits for the solve's derivatives under ``vmap`` (``jacfwd``/``jacrev`` of several
    frequencies); the real form is right under any options. Returns complex128
    ``(len(freqs), n)``."""
    n = Jf.shape[0]
    u = jnp.asarray(u)
    rhs = jnp.concatenate([jnp.real(u), jnp.imag(u)]).astype(jnp.float64)
    w = 2.0 * np.pi * np.asarray(freqs, float)

    def one(wk):
        wJ = wk * Jq
        A = jnp.block([[Jf, -wJ], [wJ, Jf]])
        y = _equilibrated_solve(A, rhs)
        return jax.lax.complex(y[:n], y[n:])

    return jax.vmap(one)(jnp.asarray(w))


def function(netlist: "str | Path | Any", params: Sequence[str], analysis: str = "op",
             outputs: Sequence[str] | None = None, *, freqs: Any = None,
             options: Mapping[str, Any] | None = None, polish: int = 3,
             prefer: str | None = None, times: Any = None, stop: float | None = None,
             step: float | None = None, maxstep: float | None = None, method: str | None = None,
             max_points: int = 1024) -> CircuitFunction:
    """A netlist's analysis as a pure, differentiable JAX function of parameters ``params``.

    ``netlist``: a file (VACASK ``.sim`` or SPICE) or a :class:`~.simulation.Simulation`.
    ``params``: keys as for :class:`~.batch.BatchSweep` (element value ``"r1"``/``"c1.c"``,
    source ``"v1.dc"``, instance parameter ``"m1.w"``, model-card parameter ``"dmod.is"``).
    ``analysis``: ``"op"`` (DC operating point), ``"ac"`` (small signal at ``freqs``, Hz) or
    ``"tran"`` (samples at ``times`` (s), linearly interpolated, of a transient to ``stop`` with
    ``step``/``maxstep``/``method``/``max_points`` as :meth:`~.batch.BatchSweep.tran`;
    derivatives by the discrete adjoint of the accepted steps, :mod:`._tran_adjoint`).
    ``outputs``: unknown names (node ``"out"``, branch current ``"v1:flow(br)"``); for ``ac``
    also ``db(out)``, ``phase(out)`` (degrees), ``mag(out)``, ``real(out)``, ``imag(out)``;
    default: every unknown. ``options``: simulator options overriding the netlist's
    (``reltol``, ``gshunt``, …). ``polish``: full Newton steps applied to the converged
    operating point (see the module docstring). Derivatives: implicit at the operating point
    (module docstring). Bad keys / outputs, or a parameter of an OSDI-library model: a
    :class:`~va2jax.errors.Va2JaxError` naming it.
    """
    from .simulation import Simulation

    a = str(analysis).lower()
    if a not in ("op", "ac", "tran"):
        raise Va2JaxError(f"function: unsupported analysis {analysis!r} (op, ac, tran)")
    keys = [str(k) for k in params]
    if not keys:
        raise Va2JaxError("function: no parameters given")
    sim = netlist if isinstance(netlist, Simulation) else Simulation.from_file(netlist, prefer)
    try:
        bs = BatchSweep(sim, keys)
    except Va2JaxError as exc:
        if any(repr(k).lower() in str(exc).lower() for k in keys):
            raise
        for k in keys:  # name the parameter the error is about
            try:
                BatchSweep(sim, [k])
            except Va2JaxError as one:
                raise Va2JaxError(f"parameter {k!r}: {one}") from None
        raise
    if options:
        bs.opts = Options.from_dict({**dataclasses.asdict(bs.opts), **dict(options)})
    names = list(sim.system.names)
    low = {nm.lower(): i for i, nm in enumerate(names)}
    specs = list(outputs) if outputs is not None else names
    outs: list[tuple[str, str, int]] = []
    for spec in specs:
        m = _OUT_RE.match(str(spec))
        form, node = (m.group(1).lower(), m.group(2)) if m else ("", str(spec).strip())
        if form and form not in _AC_FORMS:
            raise Va2JaxError(f"function: output {spec!r}: unknown form {form!r} "
                              f"({', '.join(_AC_FORMS)})")
        if form and a != "ac":
            raise Va2JaxError(f"function: output {spec!r}: {form}() is an ac output")
        col = low.get(node.lower())
        if col is None:
            raise Va2JaxError(f"function: output {spec!r}: no unknown {node!r}"
                              + suggest(node, names))
        outs.append((str(spec), form, col))
    fr = None
    if a == "ac":
        if freqs is None:
            raise Va2JaxError("function: analysis 'ac' needs freqs (Hz)")
        fr = np.atleast_1d(np.asarray(freqs, float))
        if fr.ndim != 1 or not np.all(np.isfinite(fr)) or np.any(fr < 0):
            raise Va2JaxError("function: freqs must be finite frequencies ≥ 0 (Hz)")
    tran = None
    if a == "tran":
        from .engine import Options as _Opts
        from .netlist import check_tran_times

        if stop is None or times is None:
            raise Va2JaxError("function: analysis 'tran' needs stop (s) and times (s)")
        check_tran_times(stop, step, maxstep, what="function")
        ts = np.atleast_1d(np.asarray(times, float))
        if ts.ndim != 1 or not np.all(np.isfinite(ts)) or np.any(ts < 0) or np.any(ts > stop):
            raise Va2JaxError("function: times must be finite times in [0, stop] (s)")
        meth = _Opts.from_dict({"tran_method": method or bs.opts.tran_method}).tran_method
        tran = {"times": ts, "stop": float(stop), "step": step, "maxstep": maxstep,
                "method": meth, "max_points": int(max_points)}
    return CircuitFunction(bs, a, outs, fr, polish, tran)
