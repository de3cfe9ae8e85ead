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
ratio = max_i LTE_i / (lteratio·(reltol·|q_i| + chgtol)); with ``options tran_lte="both"`` (the
default) also the same estimate on the unknowns ``x`` (``System.lte_mask``) against
``lteratio·max(reltol·|x_i|, vntol | abstol)`` — VACASK's test, which catches a gate's fast edge
whose charges (~1e-16 C, below chgtol) would let it pass in one step.
ratio > 1 rejects the step (``h ← h·max(0.2, 0.9·ratio^(−1/(k+1)))``), a Newton failure divides
``h`` by 8; an accepted step grows ``h`` by at most 2. Steps land on the sources' breakpoints, and
the step after a breakpoint uses BE with ``h ≤ min(step, gap to the next breakpoint / 10)``.

Each call of the kernel advances until ``chunk`` points are accepted, the end is reached or Newton
fails; the caller copies the points out and calls again (progress updates happen in between).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .engine import ConvergenceError, is_singular_error, loop_compiler_options
from .results import Result, Stats

if TYPE_CHECKING:
    from .engine import Engine, Options
    from .mna import System


def _dd2(t0, t1, t2, x0, x1, x2):
    """Second divided difference (≈ half the second derivative)."""
    return ((x2 - x1) / (t2 - t1) - (x1 - x0) / (t1 - t0)) / (t2 - t0)


def _dd3(t0, t1, t2, t3, x0, x1, x2, x3):
    """Third divided difference (≈ a sixth of the third derivative)."""
    return (_dd2(t1, t2, t3, x1, x2, x3) - _dd2(t0, t1, t2, x0, x1, x2)) / (t3 - t0)


_LTE_CONST = {"be": 1.0, "trap": 0.5, "gear2": 4.0 / 3.0}

class TranState(NamedTuple):
    """State of the transient loop (a pytree carried by :func:`jax.lax.while_loop`).

    Histories hold the last three accepted points, oldest first (``xh[2]`` is the latest)."""

    t: Any  #: () time of the last accepted point (s)
    h: Any  #: () next step to try (s)
    xh: Any  #: (3, n) solutions at the last three accepted points
    th: Any  #: (3,) their times (s)
    qh: Any  #: (3, n) their charges / fluxes (C, Wb)
    qdot: Any  #: (n,) dq/dt at the last accepted point (trap history)
    nh: Any  #: () int32 accepted points so far (valid history entries)
    after_bp: Any  #: () bool: the last accepted point is a breakpoint (next step uses BE)
    bpi: Any  #: () int32 index of the next breakpoint
    k: Any  #: () int32 points accepted in this chunk
    out_t: Any  #: (chunk,) accepted times of this chunk (s)
    out_x: Any  #: (chunk, n) accepted solutions of this chunk
    rej: Any  #: () int32 rejected steps
    iters: Any  #: () int32 Newton iterations
    done: Any  #: () bool: ``stop`` reached
    fail: Any  #: () bool: Newton failed with ``h < hmin``
    flast: Any  #: (n,) residual of the last failed Newton solve (diagnostics)
    hmin: Any  #: () smallest step (s)
    maxstep: Any  #: () largest step (s)
    stop: Any  #: () end time (s)
    bps: Any  #: (B,) breakpoints, padded with +inf (s)
    step: Any  #: () nominal step: bound of the step after a breakpoint (s)
    #: (n,) largest |x| of each unknown over the accepted points (with ``|xh[2]|``, the start
    #: included: the reference of the LTE tolerance)
    xmax: Any = None


class TranKernel:
    """The transient loop of one circuit and integration method (jitted, compiled on first use).

    ``newton``: the circuit's traceable Newton solve (:func:`.engine.make_newton`); ``sysm``: the
    circuit (its sources give ``b(t)``, its structure the step control); ``o``: the options."""

    def __init__(self, newton: Callable, sysm: "System", o: "Options", method: str, chunk: int = 512):
        n = sysm.n
        self.n = n
        self.chunk = chunk
        self.compiled = False
        b_of_t = sysm.make_source_fn()
        has_lte = sysm.has_charges()
        lte_x = has_lte and o.tran_lte == "both"
        lmask = jnp.asarray(sysm.lte_mask)
        tolabs = jnp.where(jnp.asarray(sysm.is_current), o.abstol, o.vntol)
        chgtol = o.chgtol
        order = 1 if method == "be" else 2
        lconst = _LTE_CONST[method]
        reltol, lteratio = o.reltol, o.tran_lteratio
        itl, gshunt, dvmax = o.tran_itl, o.gshunt, o.dvmax

        def attempt(s: TranState) -> TranState:
            t, h, xh, th, qh, qdot, nh, after_bp = s.t, s.h, s.xh, s.th, s.qh, s.qdot, s.nh, s.after_bp
            k, out_t, out_x = s.k, s.out_t, s.out_x
            hmin, maxstep, stop, bps, step = s.hmin, s.maxstep, s.stop, s.bps, s.step
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
            if lte_x:
                # and of the unknowns, as VACASK does: tolerance reltol·max|x| over the past
                # (VACASK's default relref "alllocal"; at least vntol / abstol) on the node
                # voltages and internal unknowns (System.lte_mask)
                ref = jnp.maximum(jnp.maximum(jnp.abs(xn), jnp.abs(xh[2])), s.xmax)
                tolx = lteratio * jnp.maximum(reltol * ref, tolabs)
                x2 = _dd2(th[1], th[2], tn, xh[1], xh[2], xn)
                rx1 = jnp.max(lmask * h * h * jnp.abs(x2) / tolx)
                x3 = _dd3(th[0], th[1], th[2], tn, xh[0], xh[1], xh[2], xn)
                rx2 = jnp.max(lmask * lconst * h ** 3 * jnp.abs(x3) / tolx)
                err = jnp.maximum(err, jnp.where(be, jnp.where(nh >= 2, rx1, 0.0),
                                                 jnp.where(nh >= 3, rx2, rx1)))
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
            # one row written in place (a select over the whole buffer copied it every attempt)
            out_t = out_t.at[k].set(jnp.where(accept, tn, out_t[k]))
            out_x = out_x.at[k].set(jnp.where(accept, xn, out_x[k]))
            return s._replace(
                t=jnp.where(accept, tn, t), h=jnp.where(accept, h_acc, h_rej), xh=xh_n, th=th_n,
                qh=qh_n, qdot=jnp.where(accept, qdot_new, qdot), nh=jnp.where(accept, nh + 1, nh),
                after_bp=jnp.where(accept, hit, after_bp), bpi=bpi.astype(jnp.int32),
                k=jnp.where(accept, k + 1, k), out_t=out_t, out_x=out_x,
                rej=s.rej + jnp.where(accept, 0, 1), iters=s.iters + it,
                done=accept & (tn >= stop * (1 - 1e-12)), fail=fail_now,
                flast=jnp.where(accept, s.flast, F),
                xmax=jnp.where(accept, jnp.maximum(s.xmax, jnp.abs(xn)), s.xmax))

        def cond(s: TranState):
            return (~s.done) & (~s.fail) & (s.k < chunk)

        def run(state):
            return jax.lax.while_loop(cond, attempt, state)

        self._attempt = attempt
        self._run = jax.jit(run)

    def initial_state(self, x0: np.ndarray, q0: np.ndarray, stop: float, step: float,
                      maxstep: float, bps: np.ndarray) -> TranState:
        n, chunk = self.n, self.chunk
        size = 1 << max(4, int(np.ceil(np.log2(len(bps) + 1))))
        bpp = np.full(size, np.inf)
        bpp[: len(bps)] = bps
        h0 = min(step, maxstep) * 0.1
        hmin = 1e-14 * max(stop, 1e-9)
        f = np.float64
        return TranState(
            t=f(0.0), h=f(h0), xh=np.stack([x0, x0, x0]), th=np.array([-2.0, -1.0, 0.0]) * h0,
            qh=np.stack([q0, q0, q0]), qdot=np.zeros(n), nh=np.int32(1), after_bp=np.bool_(True),
            bpi=np.int32(0), k=np.int32(0), out_t=np.zeros(chunk), out_x=np.zeros((chunk, n)),
            rej=np.int32(0), iters=np.int32(0), done=np.bool_(False), fail=np.bool_(False),
            flast=np.zeros(n), hmin=f(hmin), maxstep=f(maxstep), stop=f(stop), bps=bpp,
            step=f(step), xmax=np.zeros(n))


def run_tran(eng: "Engine", name: str, stop: float, step: float | None = None,
             maxstep: float | None = None, start: float = 0.0, method: str | None = None,
             uic: bool = False, progress: Callable[[float], None] | None = None) -> "Result":
    """Transient analysis from the DC operating point (or from ``x = 0`` with ``uic``).

    ``stop``, ``step``, ``maxstep``, ``start`` in seconds; ``maxstep`` defaults to ``stop/50``.
    Every accepted time point is returned.
    """
    o = eng.opts
    sysm = eng.sys
    method = method or o.tran_method
    maxstep = maxstep if maxstep and maxstep > 0 else stop / 50
    step = step if step and step > 0 else stop / 1000
    bps = sysm.breakpoints(stop)
    t_c = time.perf_counter()
    kern = eng._tran_kernels.get(method)
    if kern is None:
        kern = eng._tran_kernels[method] = TranKernel(eng.newton, sysm, o, method)
    if not kern.compiled:
        z = np.zeros(sysm.n)
        kern._run = kern._run.lower(kern.initial_state(z, z, stop, step, maxstep, bps)).compile(
            compiler_options=loop_compiler_options())
        kern.compiled = True
        eng.compile_s += time.perf_counter() - t_c
    eng.compile_assembly()  # the initial charges below: compiled outside the timed run
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
            raise ConvergenceError(f"transient {name}: singular matrix after t={float(state.t):.6g} s "
                                   "(option solver=klu)") from None
        k = int(state.k)
        ts.append(np.asarray(state.out_t)[:k])
        xs.append(np.asarray(state.out_x)[:k])
        if progress is not None:
            progress(float(state.t))
        if bool(state.fail):
            F = np.asarray(state.flast)
            tfail = float(state.t) + float(state.h) * 8
            raise ConvergenceError(
                f"transient {name}: Newton did not converge at t={tfail:.6g} s after "
                f"{o.tran_itl} iterations (time step too small); {eng.worst(F)}")
        if bool(state.done):
            break
        state = state._replace(k=np.int32(0))
    iters = int(state.iters)
    eng.iterations += iters
    times = np.concatenate(ts)
    data = np.concatenate(xs)
    st = Stats(points=len(times), rejected=int(state.rej),
               newton_iterations=eng.iterations - it0, run_s=time.perf_counter() - t0w)
    keep = times >= start
    return Result(name, "tran", "time", times[keep], list(sysm.names), data[keep], st)
