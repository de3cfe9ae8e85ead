"""Transient analysis: the whole time-stepping loop as one jitted :func:`jax.lax.while_loop`.

Integration of ``dq/dt`` at ``t_new = t + h`` (``dq/dt ≈ a0·q_new + hist``)::

    BE     a0 = 1/h,                  hist = −q_k/h
    trap   a0 = 2/h,                  hist = −2·q_k/h − q'_k
    gear2  a0 = (1+2ω)/((1+ω)·h),     hist = (−(1+ω)·q_k + ω²/(1+ω)·q_{k−1})/h,   ω = h/h_prev

Local truncation error from divided differences (``q[t0..tm] ≈ q⁽ᵐ⁾/m!``)::

    BE     LTE = h²·q[3 pts]          (= h²·q''/2)
    trap   LTE = h³·q[4 pts]/2        (= h³·q'''/12)
    gear2  LTE = 4/3·h³·q[4 pts]      (= 2·h³·q'''/9)

The divided differences are taken of the charges/fluxes q (SPICE practice; node voltages may
carry an ill-defined common mode, charges do not):
ratio = max_i LTE_i / (lteratio·(reltol·|q_i| + chgtol)).
ratio > 1 rejects the step (``h ← h·max(0.2, 0.9·ratio^(−1/(k+1)))``), a Newton failure divides
``h`` by 8; an accepted step grows ``h`` by at most 2. Steps land on the sources' breakpoints, and
the step after a breakpoint uses BE with ``h ≤ min(step, gap to the next breakpoint / 10)``.

Each call of the kernel advances until ``chunk`` points are accepted, the end is reached or Newton
fails; the caller copies the points out and calls again (progress updates happen in between).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from .analysis import Engine, Result

jax.config.update("jax_enable_x64", True)


def _dd2(t0, t1, t2, x0, x1, x2):
    """Second divided difference (≈ half the second derivative)."""
    return ((x2 - x1) / (t2 - t1) - (x1 - x0) / (t1 - t0)) / (t2 - t0)


def _dd3(t0, t1, t2, t3, x0, x1, x2, x3):
    """Third divided difference (≈ a sixth of the third derivative)."""
    return (_dd2(t1, t2, t3, x1, x2, x3) - _dd2(t0, t1, t2, x0, x1, x2)) / (t3 - t0)


_LTE_CONST = {"be": 1.0, "trap": 0.5, "gear2": 4.0 / 3.0}

# state tuple slots
_T, _H, _XH, _TH, _QH, _QDOT, _NH, _AFTER, _BPI, _K, _OUT_T, _OUT_X, _REJ, _ITERS, _DONE, _FAIL, \
    _FLAST, _HMIN, _MAXSTEP, _STOP, _BPS, _STEP = range(22)


class TranKernel:
    """Compiled transient loop for one engine and integration method."""

    def __init__(self, eng: "Engine", method: str, chunk: int = 512):
        self.eng = eng
        sysm = eng.sys
        o = eng.opts
        n = sysm.n
        self.n = n
        self.chunk = chunk
        self.compiled = False
        newton = eng._newton_py
        b_of_t = sysm.make_source_fn()
        has_lte = bool(np.any(sysm.C != 0)) or bool(sysm.groups)
        chgtol = o.chgtol
        order = 1 if method == "be" else 2
        lconst = _LTE_CONST[method]
        reltol, lteratio = o.reltol, o.tran_lteratio
        itl, gshunt, dvmax = o.tran_itl, o.gshunt, o.dvmax

        def attempt(s):
            (t, h, xh, th, qh, qdot, nh, after_bp, bpi, k, out_t, out_x, rej, iters, done, fail,
             Flast, hmin, maxstep, stop, bps, step) = s
            nb = bps.shape[0]
            bpi = jnp.searchsorted(bps, t * (1 + 1e-12) + 1e-300, side="right")
            next_bp = jnp.where(bpi < nb, bps[jnp.minimum(bpi, nb - 1)], stop)
            next_bp = jnp.minimum(next_bp, stop)
            h = jnp.minimum(h, maxstep)
            hit = (t + h >= next_bp * (1 - 1e-9)) | (next_bp - (t + h) < 0.1 * h)
            h = jnp.where(hit, next_bp - t, h)
            tn = t + h
            be = after_bp | (nh < 2) | (order == 1)
            qk = qh[2]
            a0_be, hist_be = 1.0 / h, -qk / h
            if method == "trap":
                a0_2, hist_2 = 2.0 / h, -2.0 * qk / h - qdot
            elif method == "gear2":
                hp = th[2] - th[1]
                w = h / jnp.where(hp > 0, hp, h)
                a0_2 = (1 + 2 * w) / ((1 + w) * h)
                hist_2 = (-(1 + w) * qk + w * w / (1 + w) * qh[1]) / h
            else:
                a0_2, hist_2 = a0_be, hist_be
            a0 = jnp.where(be, a0_be, a0_2)
            hist = jnp.where(be, hist_be, hist_2)
            slope = (xh[2] - xh[1]) / jnp.where(th[2] > th[1], th[2] - th[1], 1.0)
            xp = jnp.where((nh >= 2) & ~after_bp, xh[2] + slope * h, xh[2])
            b = b_of_t(tn)
            xn, it, conv, bad, qn, F = newton(xp, b, a0, hist, gshunt, itl, dvmax)
            # truncation error of the charges (node voltages of a circuit can carry an ill-defined
            # common mode; charges cannot), as in SPICE
            tol = lteratio * (reltol * jnp.maximum(jnp.abs(qn), jnp.abs(qk)) + chgtol)
            if has_lte:
                d2 = _dd2(th[1], th[2], tn, qh[1], qh[2], qn)
                r1 = jnp.max(h * h * jnp.abs(d2) / tol)
                d3 = _dd3(th[0], th[1], th[2], tn, qh[0], qh[1], qh[2], qn)
                r2 = jnp.max(lconst * h ** 3 * jnp.abs(d3) / tol)
                err = jnp.where(be, jnp.where(nh >= 2, r1, 0.0), jnp.where(nh >= 3, r2, r1))
            else:
                err = jnp.float64(0.0)
            kk = jnp.where(be, 1.0, 2.0)
            accept = conv & ((err <= 1.0) | (h <= 10 * hmin))
            fac = jnp.where(err > 0, 0.9 * jnp.where(err > 0, err, 1.0) ** (-1.0 / (kk + 1)), 2.0)
            h_rej = jnp.where(conv, h * jnp.clip(fac, 0.2, 0.9), h / 8)
            fail_now = (~conv) & (h / 8 < hmin)
            qdot_new = a0 * qn + hist
            h_acc = h * jnp.clip(fac, 0.3, 2.0)
            bpi2 = jnp.minimum(bpi + 1, nb - 1)
            gap = jnp.minimum(jnp.where(bpi + 1 < nb, bps[bpi2], stop), stop) - tn
            h_acc = jnp.where(hit, jnp.minimum(h_acc, jnp.minimum(
                jnp.where(gap > 0, 0.1 * gap, h_acc), step)), h_acc)
            h_acc = jnp.maximum(h_acc, 10 * hmin)
            xh_n = jnp.where(accept, jnp.stack([xh[1], xh[2], xn]), xh)
            th_n = jnp.where(accept, jnp.stack([th[1], th[2], tn]), th)
            qh_n = jnp.where(accept, jnp.stack([qh[1], qh[2], qn]), qh)
            out_t = jnp.where(accept, out_t.at[k].set(tn), out_t)
            out_x = jnp.where(accept, out_x.at[k].set(xn), out_x)
            return (jnp.where(accept, tn, t), jnp.where(accept, h_acc, h_rej), xh_n, th_n, qh_n,
                    jnp.where(accept, qdot_new, qdot), jnp.where(accept, nh + 1, nh),
                    jnp.where(accept, hit, after_bp), bpi.astype(jnp.int32),
                    jnp.where(accept, k + 1, k), out_t, out_x,
                    rej + jnp.where(accept, 0, 1), iters + it,
                    accept & (tn >= stop * (1 - 1e-12)), fail_now, jnp.where(accept, Flast, F),
                    hmin, maxstep, stop, bps, step)

        def cond(s):
            return (~s[_DONE]) & (~s[_FAIL]) & (s[_K] < chunk)

        def run(state):
            return jax.lax.while_loop(cond, attempt, state)

        self._attempt = attempt
        self._run = jax.jit(run)

    def initial_state(self, x0: np.ndarray, q0: np.ndarray, stop: float, step: float,
                      maxstep: float, bps: np.ndarray) -> tuple:
        n, chunk = self.n, self.chunk
        size = 1 << max(4, int(np.ceil(np.log2(len(bps) + 1))))
        bpp = np.full(size, np.inf)
        bpp[: len(bps)] = bps
        h0 = min(step, maxstep) * 0.1
        hmin = 1e-14 * max(stop, 1e-9)
        f = np.float64
        return (f(0.0), f(h0), np.stack([x0, x0, x0]), np.array([-2.0, -1.0, 0.0]) * h0,
                np.stack([q0, q0, q0]), np.zeros(n), np.int32(1), np.bool_(True), np.int32(0),
                np.int32(0), np.zeros(chunk), np.zeros((chunk, n)), np.int32(0), np.int32(0),
                np.bool_(False), np.bool_(False), np.zeros(n), f(hmin), f(maxstep), f(stop),
                bpp, f(step))


def run_tran(eng: "Engine", name: str, stop: float, step: float | None = None,
             maxstep: float | None = None, start: float = 0.0, method: str | None = None,
             uic: bool = False, progress: Callable[[float], None] | None = None) -> "Result":
    """Transient analysis from the DC operating point (or from ``x = 0`` with ``uic``).

    ``stop``, ``step``, ``maxstep``, ``start`` in seconds; ``maxstep`` defaults to ``stop/50``.
    Every accepted time point is returned.
    """
    from .analysis import ConvergenceError, Result, Stats, is_singular_error, loop_compiler_options

    o = eng.opts
    sysm = eng.sys
    method = method or o.tran_method
    maxstep = maxstep if maxstep and maxstep > 0 else stop / 50
    step = step if step and step > 0 else stop / 1000
    bps = sysm.breakpoints(stop)
    t_c = time.perf_counter()
    kern = eng._tran_kernels.get(method)
    if kern is None:
        kern = eng._tran_kernels[method] = TranKernel(eng, method)
    if not kern.compiled:
        z = np.zeros(sysm.n)
        kern._run = kern._run.lower(kern.initial_state(z, z, stop, step, maxstep, bps)).compile(
            compiler_options=loop_compiler_options())
        kern.compiled = True
        eng.compile_s += time.perf_counter() - t_c
    t0w = time.perf_counter()
    it0 = eng.iterations
    b0 = sysm.source_vector(0.0)
    x = np.zeros(sysm.n) if uic else eng.op(b0, what=f"transient {name}: initial operating point")
    _, q, _, _ = eng.jacobians(x)
    state = kern.initial_state(x, q, stop, step, maxstep, bps)
    ts = [np.array([0.0])]
    xs = [x[None, :]]
    iters = 0
    while True:
        try:
            state = kern._run(state)
        except TypeError:  # breakpoint table grew past the compiled size: recompile
            kern._run = jax.jit(kern._run)  # pragma: no cover
            raise
        except jax.errors.JaxRuntimeError as e:  # KLU (option solver=klu) stops on a singular matrix
            if not is_singular_error(e):
                raise
            raise ConvergenceError(f"transient {name}: singular matrix after t={float(state[_T]):.6g} s "
                                   "(option solver=klu)") from None
        k = int(state[_K])
        ts.append(np.asarray(state[_OUT_T])[:k])
        xs.append(np.asarray(state[_OUT_X])[:k])
        if progress is not None:
            progress(float(state[_T]))
        if bool(state[_FAIL]):
            F = np.asarray(state[_FLAST])
            tfail = float(state[_T]) + float(state[_H]) * 8
            raise ConvergenceError(
                f"transient {name}: Newton did not converge at t={tfail:.6g} s after "
                f"{o.tran_itl} iterations (time step too small); {eng.worst(F)}")
        if bool(state[_DONE]):
            break
        state = state[:_K] + (np.int32(0),) + state[_K + 1:]
    iters = int(state[_ITERS])
    eng.iterations += iters
    times = np.concatenate(ts)
    data = np.concatenate(xs)
    st = Stats(points=len(times), rejected=int(state[_REJ]),
               newton_iterations=eng.iterations - it0, run_s=time.perf_counter() - t0w)
    keep = times >= start
    return Result(name, "tran", "time", times[keep], list(sysm.names), data[keep], st)
