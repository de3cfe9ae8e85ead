"""Analyses: Newton–Raphson, DC operating point, DC sweep, transient, AC.

Newton iteration (jitted once per circuit, every analysis reuses the same compiled function)::

    F(x) = f(x) − b + a0·q(x) + h + gshunt·x_v
    J(x) = ∂f/∂x + a0·∂q/∂x + gshunt·I_v
    x ← x + clip(−J⁻¹F, ±dvmax on node voltages)

``a0`` and ``h`` encode the integration formula for ``dq/dt`` (both 0 for DC). Convergence:
``|Δx_i| ≤ reltol·max(|x_i|, |x_i'|) + (vntol | abstol)`` for every unknown, with no clipping.

Transient integration of ``dq/dt`` at ``t_{k+1}`` (step ``h = t_{k+1} − t_k``)::

    BE     q' = (q_{k+1} − q_k)/h
    trap   q' = 2(q_{k+1} − q_k)/h − q'_k
    gear2  q' = [(1+2ω)/(1+ω)·q_{k+1} − (1+ω)·q_k + ω²/(1+ω)·q_{k−1}]/h,   ω = h/h_prev

Step control: local truncation error from divided differences of the solution
(``BE: h²x''/2``, ``trap: h³x'''/12``, ``gear2: 2h³x'''/9``), normalised by
``lteratio·(reltol·|x| + vntol)``; a step is rejected when the ratio exceeds 1 or Newton fails
(then ``h ← h/8``). Steps land on source breakpoints; the step after a breakpoint uses BE.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import Va2JaxError
from .mna import System


def loop_compiler_options() -> dict[str, str]:
    """XLA options for the simulator's compiled Newton and time loops.

    va2jax turns XLA's operator fusion off process-wide (it makes compile time of large model code
    super-linear, see docs/performance.md). The simulator's loops are small — large models are
    evaluated by their own compiled evaluator through a callback (``sim/adapters.py``) — so fusion
    is switched back on for them: fewer, larger kernels per Newton iteration. With va2jax's ISA cap
    in force (``codegen._model.fusion_is_exact``) fused code rounds like unfused code; without it
    (JAX started before va2jax, a user's own ``--xla_cpu_max_isa``) an inlined model's ``a*b + c``
    may be contracted into one rounding — waveforms are compared with peers at the mV level, so the
    loops stay fused either way. ``VA2JAX_SIM_FUSION=0`` keeps the process default.
    """
    import os

    from ..codegen._model import FUSION_ON

    if os.environ.get("VA2JAX_SIM_FUSION", "1") == "0":
        return {}
    return dict(FUSION_ON)

jax.config.update("jax_enable_x64", True)


class ConvergenceError(Va2JaxError):
    """Newton failed (message names the time, iteration count and worst node)."""


@dataclass
class Options:
    """Simulator options (VACASK names; SPICE ``.options`` are mapped onto them)."""

    reltol: float = 1e-3
    vntol: float = 1e-6
    abstol: float = 1e-12
    chgtol: float = 1e-14
    gshunt: float = 0.0
    op_itl: int = 100
    tran_itl: int = 20
    dvmax: float = 2.0
    tran_method: str = "trap"
    tran_lteratio: float = 3.5
    temp: float = 27.0
    solver: str = "dense"  # Newton's linear solver: dense (LAPACK LU) or klu (sparse, klujax)
    limiting: int = 1  # models' own junction limiting ($limit) in Newton: 1 on, 0 off

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Options":
        o = cls()
        alias = {"itl1": "op_itl", "itl4": "tran_itl", "method": "tran_method", "trtol": "tran_lteratio",
                 "nr_itl": "op_itl"}
        for k, v in d.items():
            key = alias.get(k.lower(), k.lower())
            if hasattr(o, key):
                cur = getattr(o, key)
                try:
                    setattr(o, key, type(cur)(v.lower() if isinstance(v, str) else v))
                except (TypeError, ValueError):
                    raise Va2JaxError(f"option {k}: bad value {v!r}") from None
        if o.tran_method in ("trapezoidal",):
            o.tran_method = "trap"
        if o.tran_method in ("gear", "bdf2"):
            o.tran_method = "gear2"
        if o.tran_method not in ("be", "euler", "trap", "gear2"):
            raise Va2JaxError(f"option tran_method: unknown method {o.tran_method!r} (be, trap, gear2)")
        if o.tran_method == "euler":
            o.tran_method = "be"
        if o.solver not in ("dense", "klu"):
            raise Va2JaxError(f"option solver: unknown linear solver {o.solver!r} (dense, klu)")
        if o.solver == "klu":
            try:
                import klujax  # noqa: F401
            except ImportError:
                raise Va2JaxError("option solver=klu needs the klujax package (pip install klujax)") from None
        return o


@dataclass
class Stats:
    points: int = 0
    rejected: int = 0
    newton_iterations: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0


@dataclass
class Result:
    """One analysis result: ``data[:, i]`` is the value of ``names[i]`` at each point."""

    name: str
    kind: str  # op | dc | tran | ac
    scale_name: str | None  # "time", "frequency", sweep name, or None (op)
    scale: np.ndarray | None
    names: list[str]
    data: np.ndarray  # (npoints, n) float or complex
    stats: Stats = field(default_factory=Stats)

    def __getitem__(self, key: str) -> np.ndarray:
        if key == self.scale_name and self.scale is not None:
            return self.scale
        try:
            return self.data[:, self.names.index(key)]
        except ValueError:
            from ..errors import suggest

            raise Va2JaxError(f"result {self.name} has no signal {key!r}"
                              + suggest(key, self.names)) from None


def is_singular_error(e: Exception) -> bool:
    """Whether a runtime error is KLU's report of a singular matrix (klujax raises
    ``klu_factor/z_factor failed (singular matrix?)``)."""
    msg = str(e)
    return "klu" in msg and "singular" in msg


def make_newton(system: System, opts: Options, values: System | None = None) -> Callable:
    """The pure (traceable) Newton solve of ``system``:
    ``newton(x0, b, a0, hist, gshunt, maxiter, dvmax) -> (x, iterations, converged, singular, q, F)``.

    ``values``: the system whose element values are assembled (default ``system``; :mod:`.batch`
    passes one with traced values — the masks and tolerances still come from ``system``).

    Model limiting (``options limiting=1``, the default): models with ``$limit`` states (pnjlim,
    fetlim, …; generated models, inlined or in their own evaluator, and OSDI libraries) limit
    their junction voltages against the previous
    iteration's limited values. The first iteration of each solve is not limited (its states
    become the initial guess's own values, as SPICE's ``vold`` is the last accepted value); the
    states are carried through the iterations and each solves
    ``J·Δx = −(F + lim_f + a0·lim_q)`` with OSDI's limiting RHS (``load_limit_rhs_*``:
    ``J·(x − x_lim)`` of the limited branches, added to the residual as VACASK does).
    Node-voltage clipping at ``dvmax`` stays on top of it.

    Linear solve (``options solver``): ``dense`` assembles dense matrices and solves with LAPACK's
    LU (``jnp.linalg.solve``), O(n³) per iteration, best for small circuits; ``klu`` assembles the
    Jacobian's values directly on the circuit's static pattern (:meth:`System.sparsity`, COO) and
    solves with KLU through ``klujax`` — O(nnz) assembly and fill-reducing factorisation, for large
    circuits. Both equilibrate rows and columns first. On a singular matrix LAPACK returns
    non-finite values; KLU stops with an error, which :meth:`Engine.solve` and the transient map
    to the same "singular" outcome.
    """
    n = system.n
    vsys = values if values is not None else system
    sparse = opts.solver == "klu"
    pattern = system.coo_lookup() if sparse else None
    assemble = vsys.make_assemble_limited(pattern)
    limiting = bool(opts.limiting) and bool(system.stateful_groups())
    gmask = jnp.asarray(system.gmin_mask)
    tolabs = jnp.where(jnp.asarray(system.is_current), opts.abstol, opts.vntol)
    reltol = opts.reltol
    vmask = jnp.asarray(~system.is_current)
    if sparse:
        # the Jacobian as values on the circuit's static pattern (COO), never a dense matrix
        import klujax

        Ai, Aj, lut = pattern
        diag = jnp.asarray(lut[np.arange(n), np.arange(n)])
        Ai, Aj = jnp.asarray(Ai), jnp.asarray(Aj)

        def add_diag(J, d):
            return J.at[diag].add(d)

        def equilibrated_solve(J, r):
            # the dense path's row/column equilibration, on the pattern (same values, same order)
            rs = jax.ops.segment_max(jnp.abs(J), Ai, num_segments=n)
            rs = jnp.where(rs > 0, rs, 1.0)
            Js = J / rs[Ai]
            cs = jax.ops.segment_max(jnp.abs(Js), Aj, num_segments=n)
            cs = jnp.where(cs > 0, cs, 1.0)
            return klujax.solve(Ai, Aj, Js / cs[Aj], r / rs) / cs

        def matvec(M, v):
            return jax.ops.segment_sum(M * v[Aj], Ai, num_segments=n)
    else:
        def add_diag(J, d):
            return J + jnp.diag(d)

        def equilibrated_solve(J, r):
            # equilibrate rows and columns (as KLU does) before the LU solve
            rs = jnp.max(jnp.abs(J), axis=1)
            rs = jnp.where(rs > 0, rs, 1.0)
            Js = J / rs[:, None]
            cs = jnp.max(jnp.abs(Js), axis=0)
            cs = jnp.where(cs > 0, cs, 1.0)
            return jnp.linalg.solve(Js / cs[None, :], r / rs) / cs

        def matvec(M, v):
            return M @ v

    def newton(x0: jax.Array, b: jax.Array, a0: jax.Array, hist: jax.Array, gshunt: jax.Array,
               maxiter: jax.Array, dvmax: jax.Array):
        def resid(x, states, enable):
            f, q, Jf, Jq, lf, lq, new_states = assemble(x, states, enable)
            F = f - b + a0 * q + hist + gshunt * gmask * x
            J = add_diag(Jf + a0 * Jq, gshunt * gmask)
            return F, J, q, Jq, lf + a0 * lq, (new_states if limiting else None)

        def cond(s):
            return (~s[2]) & (s[1] < maxiter) & (~s[3])

        def body(s):
            x, it, _, _, _, _, _, states = s
            # the first iteration is not limited: its states are then the initial guess's own
            # junction values (what limiting against them would return unchanged), the limits
            # of later iterations refer to them — no separate evaluation for the start states
            F, J, q, Jq, L, states = resid(x, states, it > 0)
            dx = equilibrated_solve(J, -(F + L))
            bad = ~jnp.all(jnp.isfinite(dx))
            clipped = jnp.where(vmask, jnp.clip(dx, -dvmax, dvmax), dx)
            xn = x + clipped
            ok = jnp.all(jnp.abs(clipped) <= reltol * jnp.maximum(jnp.abs(x), jnp.abs(xn)) + tolabs)
            ok = ok & jnp.all(clipped == dx) & ~bad
            qn = q + matvec(Jq, clipped)
            return xn, it + 1, ok, bad, qn, F, J, states

        z = jnp.zeros(n)
        states0 = vsys.zero_states() if limiting else None
        J0 = jnp.zeros(Ai.shape if sparse else (n, n))
        init = (x0, jnp.int32(0), jnp.bool_(False), jnp.bool_(False), z, z, J0, states0)
        x, it, conv, bad, q, F, J, _ = jax.lax.while_loop(cond, body, init)
        return x, it, conv, bad, q, F

    return newton


class Engine:
    """Compiled Newton solver for one :class:`System`."""

    def __init__(self, system: System, opts: Options):
        self.sys = system
        self.opts = opts
        n = system.n
        assemble = system.make_assemble()
        newton = make_newton(system, opts)
        self._newton_py = newton
        t0 = time.perf_counter()
        args = (jnp.zeros(n), jnp.zeros(n), jnp.float64(0), jnp.zeros(n), jnp.float64(0),
                jnp.int32(1), jnp.float64(1.0))
        self._newton = jax.jit(newton).lower(*args).compile(compiler_options=loop_compiler_options())
        # device models compiled outside the Newton loop (GeneratedGroup in "separate" mode)
        dev_s = sum(float(getattr(g.group, "compile_s", 0.0)) for g in system.groups)
        self.device_compile_s = dev_s
        self.compile_s = time.perf_counter() - t0 + dev_s
        self._assemble = jax.jit(assemble)
        self.iterations = 0
        self._tran_kernels: dict = {}

    def solve(self, x0: np.ndarray, b: np.ndarray, a0: float = 0.0, hist: np.ndarray | None = None,
              gshunt: float = 0.0, maxiter: int | None = None):
        """One Newton solve. Returns ``(x, iterations, converged, singular, q, F_last)``."""
        n = self.sys.n
        try:
            out = self._newton(np.asarray(x0, float), np.asarray(b, float), np.float64(a0),
                               np.zeros(n) if hist is None else np.asarray(hist, float),
                               np.float64(gshunt), np.int32(maxiter or self.opts.op_itl),
                               np.float64(self.opts.dvmax))
        except jax.errors.JaxRuntimeError as e:
            if not is_singular_error(e):
                raise
            # KLU stops on a singular matrix (LAPACK returns non-finite values): same outcome
            return np.asarray(x0, float), 0, False, True, np.zeros(n), np.zeros(n)
        x, it, conv, bad, q, F = (np.asarray(o) for o in out)
        self.iterations += int(it)
        return x, int(it), bool(conv), bool(bad), q, F

    def jacobians(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        f, q, Jf, Jq = self._assemble(jnp.asarray(x))
        return np.asarray(f), np.asarray(q), np.asarray(Jf), np.asarray(Jq)

    # -- diagnostics -------------------------------------------------------------------------
    def worst(self, F: np.ndarray) -> str:
        if F.size == 0 or not np.all(np.isfinite(F)):
            bad = np.where(~np.isfinite(F))[0]
            return f"non-finite residual at {self.sys.names[int(bad[0])]!r}" if bad.size else ""
        i = int(np.argmax(np.abs(F)))
        unit = "A" if not self.sys.is_current[i] else "V"
        return f"largest residual at {self.sys.names[i]!r} ({abs(F[i]):.3g} {unit})"

    def singular_message(self, x: np.ndarray, b: np.ndarray) -> str:
        _, _, Jf, _ = self.jacobians(np.nan_to_num(x))
        zero_rows = np.where(np.all(Jf == 0, axis=1))[0]
        if zero_rows.size:
            return f"singular matrix: unknown {self.sys.names[int(zero_rows[0])]!r} has no equation"
        try:
            _, s, vh = np.linalg.svd(Jf)
            k = int(np.argmax(np.abs(vh[-1])))
            return f"singular matrix (involving {self.sys.names[k]!r})"
        except np.linalg.LinAlgError:
            return "singular matrix"

    # -- DC ----------------------------------------------------------------------------------
    def op(self, b: np.ndarray, x0: np.ndarray | None = None, what: str = "operating point") -> np.ndarray:
        """DC operating point: plain Newton, then gmin stepping, then source stepping."""
        n = self.sys.n
        x0 = np.zeros(n) if x0 is None else x0
        x, it, conv, bad, _, F = self.solve(x0, b, gshunt=self.opts.gshunt)
        if conv:
            return x
        if bad:
            raise ConvergenceError(f"{what}: {self.singular_message(x, b)}")
        # gmin stepping
        xg = x0
        ok = True
        for g in 10.0 ** np.arange(-2, -13, -1):
            xg, it, conv, bad, _, F = self.solve(xg, b, gshunt=max(g, self.opts.gshunt))
            if not conv:
                ok = False
                break
        if ok:
            x, it, conv, bad, _, F = self.solve(xg, b, gshunt=self.opts.gshunt)
            if conv:
                return x
        # source stepping
        xs = np.zeros(n)
        lam, dlam = 0.0, 0.1
        while lam < 1.0:
            nl = min(1.0, lam + dlam)
            xt, it, conv, bad, _, F = self.solve(xs, b * nl, gshunt=self.opts.gshunt)
            if conv:
                xs, lam = xt, nl
                dlam = min(dlam * 2, 0.5)
            else:
                dlam /= 4
                if dlam < 1e-6:
                    break
        if lam >= 1.0:
            return xs
        raise ConvergenceError(f"{what}: Newton did not converge after {it} iterations "
                               f"(gmin and source stepping failed); {self.worst(F)}")


def run_op(eng: Engine, name: str) -> Result:
    t0 = time.perf_counter()
    b = eng.sys.source_vector(None, dc=True)
    x = eng.op(b)
    st = Stats(points=1, newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "op", None, None, list(eng.sys.names), x[None, :], st)


def run_dc_sweep(eng: Engine, name: str, source: str, values: np.ndarray) -> Result:
    """Sweep the ``dc`` value of independent source ``source`` over ``values``."""
    src = [s for s in eng.sys.sources if s.name.lower() == source.lower()]
    if not src:
        from ..errors import suggest

        raise Va2JaxError(f"analysis {name}: sweep of unknown source {source!r}"
                          + suggest(source, [s.name for s in eng.sys.sources]))
    s = src[0]
    old = s.wave.dc
    t0 = time.perf_counter()
    out = []
    x = None
    try:
        for v in values:
            s.wave.dc = float(v)
            b = eng.sys.source_vector(None, dc=True)
            x = eng.op(b, x, what=f"dc sweep {name} at {source}={v:g}")
            out.append(x)
    finally:
        s.wave.dc = old
    st = Stats(points=len(values), newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "dc", source, np.asarray(values, float), list(eng.sys.names), np.array(out), st)


def run_ac(eng: Engine, name: str, freqs: np.ndarray) -> Result:
    """Small-signal AC: ``(Jf + jωJq)·X = U`` around the DC operating point."""
    t0 = time.perf_counter()
    b = eng.sys.source_vector(None, dc=True)
    x = eng.op(b)
    _, _, Jf, Jq = eng.jacobians(x)
    u = eng.sys.ac_vector()
    out = np.empty((len(freqs), eng.sys.n), complex)
    for k, f in enumerate(freqs):
        A = Jf + 2j * np.pi * f * Jq
        try:
            out[k] = np.linalg.solve(A, u)
        except np.linalg.LinAlgError:
            raise ConvergenceError(f"ac {name}: singular matrix at f={f:g} Hz") from None
    st = Stats(points=len(freqs), newton_iterations=eng.iterations, run_s=time.perf_counter() - t0)
    return Result(name, "ac", "frequency", np.asarray(freqs, float), list(eng.sys.names), out, st)


from .tran import run_tran  # noqa: E402,F401  (re-exported)
