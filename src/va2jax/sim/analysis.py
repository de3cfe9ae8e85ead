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

jax.config.update("jax_enable_x64", True)


class ConvergenceError(Va2JaxError):
    """Newton failed (message names the time, iteration count and worst node)."""


@dataclass
class Options:
    """Simulator options (VACASK names; SPICE ``.options`` are mapped onto them)."""

    reltol: float = 1e-3
    vntol: float = 1e-6
    abstol: float = 1e-12
    gshunt: float = 0.0
    op_itl: int = 100
    tran_itl: int = 20
    dvmax: float = 2.0
    tran_method: str = "trap"
    tran_lteratio: float = 3.5
    temp: float = 27.0

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


class Engine:
    """Compiled Newton solver for one :class:`System`."""

    def __init__(self, system: System, opts: Options):
        self.sys = system
        self.opts = opts
        n = system.n
        assemble = system.make_assemble()
        gmask = jnp.asarray(system.gmin_mask)
        tolabs = jnp.where(jnp.asarray(system.is_current), opts.abstol, opts.vntol)
        reltol = opts.reltol
        vmask = jnp.asarray(~system.is_current)

        def newton(x0: jax.Array, b: jax.Array, a0: jax.Array, hist: jax.Array, gshunt: jax.Array,
                   maxiter: jax.Array, dvmax: jax.Array):
            def resid(x):
                f, q, Jf, Jq = assemble(x)
                F = f - b + a0 * q + hist + gshunt * gmask * x
                J = Jf + a0 * Jq + jnp.diag(gshunt * gmask)
                return F, J, q, Jq

            def cond(s):
                return (~s[2]) & (s[1] < maxiter) & (~s[3])

            def body(s):
                x, it, _, _, _, _, _ = s
                F, J, q, Jq = resid(x)
                dx = jnp.linalg.solve(J, -F)
                bad = ~jnp.all(jnp.isfinite(dx))
                clipped = jnp.where(vmask, jnp.clip(dx, -dvmax, dvmax), dx)
                xn = x + clipped
                ok = jnp.all(jnp.abs(clipped) <= reltol * jnp.maximum(jnp.abs(x), jnp.abs(xn)) + tolabs)
                ok = ok & jnp.all(clipped == dx) & ~bad
                qn = q + Jq @ clipped
                return xn, it + 1, ok, bad, qn, F, J

            z = jnp.zeros(n)
            init = (x0, jnp.int32(0), jnp.bool_(False), jnp.bool_(False), z, z, jnp.zeros((n, n)))
            x, it, conv, bad, q, F, J = jax.lax.while_loop(cond, body, init)
            return x, it, conv, bad, q, F

        self._newton_py = newton
        t0 = time.perf_counter()
        args = (jnp.zeros(n), jnp.zeros(n), jnp.float64(0), jnp.zeros(n), jnp.float64(0),
                jnp.int32(1), jnp.float64(1.0))
        self._newton = jax.jit(newton).lower(*args).compile()
        self.compile_s = time.perf_counter() - t0
        self._assemble = jax.jit(assemble)
        self.iterations = 0

    def solve(self, x0: np.ndarray, b: np.ndarray, a0: float = 0.0, hist: np.ndarray | None = None,
              gshunt: float = 0.0, maxiter: int | None = None):
        """One Newton solve. Returns ``(x, iterations, converged, singular, q, F_last)``."""
        n = self.sys.n
        out = self._newton(np.asarray(x0, float), np.asarray(b, float), np.float64(a0),
                           np.zeros(n) if hist is None else np.asarray(hist, float),
                           np.float64(gshunt), np.int32(maxiter or self.opts.op_itl),
                           np.float64(self.opts.dvmax))
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


def _divdiff(ts: list[float], xs: list[np.ndarray]) -> np.ndarray:
    """Highest divided difference x[t0..tk] (≈ x⁽ᵏ⁾/k!)."""
    d = [np.asarray(v) for v in xs]
    k = len(ts) - 1
    for lvl in range(1, k + 1):
        d = [(d[i + 1] - d[i]) / (ts[i + lvl] - ts[i]) for i in range(len(d) - 1)]
    return d[0]


def run_tran(eng: Engine, name: str, stop: float, step: float | None = None,
             maxstep: float | None = None, start: float = 0.0, method: str | None = None,
             uic: bool = False, progress: Callable[[float], None] | None = None) -> Result:
    """Transient analysis from the DC operating point (or zero state with ``uic``)."""
    o = eng.opts
    sysm = eng.sys
    method = method or o.tran_method
    order = {"be": 1, "trap": 2, "gear2": 2}[method]
    maxstep = maxstep if maxstep and maxstep > 0 else stop / 50
    step = step if step and step > 0 else stop / 1000
    t0w = time.perf_counter()
    it0 = eng.iterations
    b0 = sysm.source_vector(0.0)
    x = np.zeros(sysm.n) if uic else eng.op(b0, what="transient initial operating point")
    _, q, _, _ = eng.jacobians(x)
    qdot = np.zeros(sysm.n)
    bps = sysm.breakpoints(stop)
    bp_i = 1
    ts: list[float] = [0.0]
    xs: list[np.ndarray] = [x]
    qs: list[np.ndarray] = [q]
    hist_t = [0.0]
    hist_x = [x]
    t = 0.0
    h = min(step, maxstep) * 0.1
    after_bp = True
    rejected = 0
    lte_mask = sysm.lte_mask > 0
    hmin = 1e-14 * max(stop, 1e-9)
    while t < stop * (1 - 1e-12):
        while bp_i < len(bps) and bps[bp_i] <= t * (1 + 1e-12) + 1e-300:
            bp_i += 1
        next_bp = bps[bp_i] if bp_i < len(bps) else stop
        h = min(h, maxstep)
        hit_bp = False
        if t + h >= next_bp * (1 - 1e-9) or next_bp - (t + h) < 0.1 * h:
            h = next_bp - t
            hit_bp = True
        tn = t + h
        use = "be" if (after_bp or len(qs) < 2) else method
        q_k = qs[-1]
        if use == "be":
            a0 = 1.0 / h
            hist = -q_k / h
        elif use == "trap":
            a0 = 2.0 / h
            hist = -2.0 * q_k / h - qdot
        else:
            hp = ts[-1] - ts[-2]
            w = h / hp
            a0 = (1 + 2 * w) / ((1 + w) * h)
            hist = (-(1 + w) * q_k + w * w / (1 + w) * qs[-2]) / h
        # predictor: linear extrapolation
        if len(hist_x) >= 2 and not after_bp:
            xp = hist_x[-1] + (hist_x[-1] - hist_x[-2]) * (h / (hist_t[-1] - hist_t[-2]))
        else:
            xp = hist_x[-1]
        b = sysm.source_vector(tn)
        xn, it, conv, bad, qn, F = eng.solve(xp, b, a0, hist, o.gshunt, o.tran_itl)
        if not conv:
            rejected += 1
            h /= 8
            if h < hmin:
                why = eng.singular_message(xn, b) if bad else eng.worst(F)
                raise ConvergenceError(f"transient {name}: Newton did not converge at t={tn:.6g} s "
                                       f"after {it} iterations (time step {h * 8:.3g} s too small); {why}")
            continue
        # truncation error
        k_use = 1 if use == "be" else 2
        err = 0.0
        if len(hist_x) >= k_use + 1:
            tt = hist_t[-(k_use + 1):] + [tn]
            xx = hist_x[-(k_use + 1):] + [xn]
            dd = _divdiff(tt, xx)
            const = {"be": 1.0, "trap": 0.5, "gear2": 4.0 / 3.0}[use]
            lte = const * h ** (k_use + 1) * np.abs(dd)
            tol = o.tran_lteratio * (o.reltol * np.maximum(np.abs(xn), np.abs(hist_x[-1]))
                                     + np.where(sysm.is_current, o.abstol, o.vntol))
            if np.any(lte_mask):
                err = float(np.max((lte / tol)[lte_mask]))
        if err > 1.0 and h > hmin * 10:
            rejected += 1
            h *= max(0.2, 0.9 * err ** (-1.0 / (k_use + 1)))
            continue
        # accept
        qdot = a0 * qn + hist
        t = tn
        ts.append(t)
        xs.append(xn)
        qs.append(qn)
        hist_t.append(t)
        hist_x.append(xn)
        if len(hist_t) > 4:
            hist_t.pop(0)
            hist_x.pop(0)
        if len(qs) > 3:
            qs.pop(0)
        fac = 2.0 if err == 0 else min(2.0, 0.9 * err ** (-1.0 / (k_use + 1)))
        h_next = h * max(fac, 0.3)
        if hit_bp:
            after_bp = True
            nb = bps[bp_i + 1] if bp_i + 1 < len(bps) else stop
            gap = nb - t
            h_next = min(h_next, 0.1 * gap if gap > 0 else h_next, step)
        else:
            after_bp = False
        h = max(h_next, hmin * 10)
        if progress is not None:
            progress(t)
    times = np.array(ts)
    st = Stats(points=len(xs), rejected=rejected, newton_iterations=eng.iterations - it0,
               run_s=time.perf_counter() - t0w)
    data = np.array(xs)
    keep = times >= start
    return Result(name, "tran", "time", times[keep], list(sysm.names), data[keep], st)
