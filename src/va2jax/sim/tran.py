"""Transient analysis: the whole time-stepping loop as one jitted :func:`jax.lax.while_loop`.

Integration of ``dq/dt`` at ``t_new = t + h`` (``dq/dt ≈ a0·q_new + hist``)::

    BE     a0 = 1/h,                  hist = −q_k/h
    trap   a0 = 2/h,                  hist = −2·q_k/h − q'_k
    gear2  a0 = (1+2ω)/((1+ω)·h),     hist = (−(1+ω)·q_k + ω²/(1+ω)·q_{k−1})/h,   ω = h/h_prev

Step control as VACASK's (option names and defaults there; docs/sim.md "Transient"): order
``p`` = 1 after the start and each breakpoint, raised to 2 (trap, gear2) by each point accepted on
an LTE estimate. Local truncation error by Milne's device on the unknowns::

    LTE_i = e_I/(e_I − e_P)·(x_i − x_pred,i)
    e_I = 1 (BE), 1/2 (trap), (1+ω)²/(ω(1+2ω)) (gear2)        (error coefficients × (p+1)!)
    e_P = −Π_j (t_new − t_j)/h,  x_pred: extrapolation through the last p+1 points

(trap: the points pass VACASK's ringing filter first). ``r = max_i |LTE_i|/(lteratio·
max(reltol·max_past|x_i|, vntol | abstol))``, ``h_new = min(2h, h·r^(−1/(p+1)))``; the point is
rejected when ``h > tran_redofactor·h_new`` and retried with ``h_new``; a Newton failure retries
with ``h·tran_ft``. Every step is at most ``hmax = min(maxstep, (stop − start)/50, tran_fbr·(next
breakpoint − last breakpoint))`` (the first step excepted: ``tran_fs·min(step, maxstep if given,
tran_fbr·first breakpoint)``); a step past the next breakpoint is cut to land on it, one ending
short of it by less than ``h/10`` is halved (VACASK's ``lib/coretran.cpp``).

SPICE netlists use ngspice's step control instead (``options tran_control="ngspice"``,
:mod:`._tran_ngspice`): the same formulas, ngspice's choice of steps, XLA loop only.

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


def _predict(tn, t1, t2, t3, y1, y2, y3, order2):
    """Polynomial extrapolation to ``tn`` through the last two (order 1) or three (order 2) points
    ``(t1, y1)`` (latest), ``(t2, y2)``, ``(t3, y3)``, and its error coefficient
    ``e_P = −(tn − t1)(tn − t2)[(tn − t3)]/h^(p+1)`` (``h = tn − t1``): ``y(tn) − P(tn) ≈
    −e_P·h^(p+1)·y^(p+1)/(p+1)!``."""
    h = tn - t1
    p1 = y1 + (y1 - y2) * (h / (t1 - t2))
    l1 = (tn - t2) * (tn - t3) / ((t1 - t2) * (t1 - t3))
    l2 = (tn - t1) * (tn - t3) / ((t2 - t1) * (t2 - t3))
    l3 = (tn - t1) * (tn - t2) / ((t3 - t1) * (t3 - t2))
    p2 = l1 * y1 + l2 * y2 + l3 * y3
    e1 = -(tn - t2) / h
    return jnp.where(order2, p2, p1), jnp.where(order2, e1 * (tn - t3) / h, e1)

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
    fh: Any  #: (3, n) the accepted solutions as the predictor sees them (trap: ringing-filtered)
    xmax: Any  #: (n,) largest |x_i| over the accepted points (tolerance reference)
    rmax: Any  #: (n,) largest residual reference (see :func:`.engine.make_newton`) over them
    nd: Any  #: () int32 accepted points since the last discontinuity (breakpoint)
    ordr: Any  #: () int32 integration order of the next step (1 or 2)
    trh: Any  #: () int32 consecutive trapezoidal solves (ringing filter needs 3)
    hmin: Any  #: () smallest step (s)
    maxstep: Any  #: () largest step (s)
    stop: Any  #: () end time (s)
    bps: Any  #: (B,) breakpoints, padded with +inf (s)
    step: Any  #: () nominal step (s; sets the first step only)
    lastit: Any  #: () int32 Newton iterations of the last attempt (diagnostics)
    lastbad: Any  #: () bool: the last attempt's linear solve was singular (diagnostics)
    ng: Any = None  #: ngspice's step control only: its extra state (sim/_tran_ngspice.py)
    #: (3, K) the reactive slots' charges at the last three accepted points (``"device"``
    #: residual reference, sim/_resref.py: each instance's own charge per node; K = 0 otherwise)
    eqh: Any = None
    eqdot: Any = None  #: (K,) their dq/dt at the last accepted point (trap history)


#: doubles of output rows per call of the native step kernel (:func:`_native_run`): 1 MiB, at
#: most 16384 rows
NATIVE_CHUNK_DOUBLES = 1 << 17


#: How the loop packs :class:`TranState` (see ``TranKernel``): its int32 scalars, in this order (the
#: native step kernel's counters are the same, checked in :func:`_native_run`), those of them that
#: are flags, and its vectors with their row counts.
I_FIELDS = ("nh", "after_bp", "bpi", "k", "rej", "iters", "done", "fail", "nd", "ordr", "trh",
            "lastit", "lastbad")
BOOLS = frozenset({"after_bp", "done", "fail", "lastbad"})
V_FIELDS = (("xh", 3), ("qh", 3), ("fh", 3), ("qdot", 1), ("xmax", 1), ("rmax", 1), ("flast", 1))


class TranKernel:
    """The transient loop of one circuit and integration method (jitted, compiled on first use).

    ``newton``: the circuit's traceable Newton solve (:func:`.engine.make_newton`); ``sysm``: the
    circuit (its sources give ``b(t)``, its structure the step control); ``o``: the options."""

    def __init__(self, newton: Callable, sysm: "System", o: "Options", method: str, chunk: int = 512,
                 native: bool = False, control: str = "vacask", host_solve: bool = False):
        n = sysm.n
        self.control = control
        self.n = n
        self.chunk = chunk
        self.compiled = False
        self.native = False
        self.tran_fs, self.tran_fbr = o.tran_fs, o.tran_fbr
        b_of_t = sysm.make_source_fn()
        has_lte = sysm.has_charges()  # (no dense C on the sparse path)
        order = 1 if method == "be" else 2
        reltol, lteratio, redo, ft = o.reltol, o.tran_lteratio, o.tran_redofactor, o.tran_ft
        fbr = o.tran_fbr
        xabs = np.where(sysm.is_current, o.abstol, o.vntol)  # a constant (no eager XLA program)
        itl, gshunt, dvmax = o.tran_itl, o.gshunt, o.dvmax
        # the accepted point: VACASK's — the converged iteration's input and its charges — where
        # the convergence test is VACASK's (nr_residualcheck=0: the update test alone). With the
        # residual test on, va2jax's residual reference (summed terms and linearised stamps, not
        # VACASK's largest single device contribution) is looser on MOSFET circuits and stops one
        # iteration earlier; x + Δx stands in for VACASK's next iterate there (c6288 at 0.5 ns:
        # 31.8 mV from VACASK on the common grid, 92.4 mV with the input; docs/sim.md "Newton")
        keep_input = not o.nr_residualcheck
        # VACASK's residual reference ("device", sim/_resref.py) makes the test VACASK's with the
        # residual check on too: its accepted point applies there as well
        device_ref = getattr(newton, "resref", "sum") == "device" and control == "vacask"
        keep_input = keep_input or device_ref
        self.device_ref = device_ref
        self._slot_charges = jax.jit(newton.slot_charges) if device_ref else None

        def attempt(s: TranState) -> tuple[jax.Array, TranState]:
            """One step attempt: the output row ``(t_new, x_new)`` and the next state (its
            ``out_t``/``out_x`` untouched)."""
            t, h, xh, th, qh, qdot, nh, after_bp = s.t, s.h, s.xh, s.th, s.qh, s.qdot, s.nh, s.after_bp
            k = s.k
            hmin, maxstep, stop, bps = s.hmin, s.maxstep, s.stop, s.bps
            nb = bps.shape[0]
            # "compare_all": one fused comparison (the default binary search is a nested loop)
            bpi = jnp.searchsorted(bps, t * (1 + 1e-12) + 1e-300, side="right", method="compare_all")
            next_bp = jnp.where(bpi < nb, bps[jnp.minimum(bpi, nb - 1)], stop)
            next_bp = jnp.minimum(next_bp, stop)
            # largest step (VACASK's hmax): maxstep and tran_fbr × the breakpoint interval that
            # holds t (from the last breakpoint reached to the next one)
            prev_bp = jnp.where(bpi > 0, bps[jnp.maximum(bpi - 1, 0)], 0.0)
            # (not the first attempt: VACASK bounds the first step when it chooses it, by
            # ``maxstep`` only where the analysis gives one — initial_state)
            hmax = jnp.where(s.iters == 0, jnp.inf, maxstep)
            h = jnp.minimum(h, jnp.minimum(hmax, fbr * (next_bp - prev_bp)))
            # a step past the next breakpoint is cut to land on it (exactly: t_new = the
            # breakpoint); one ending short of it by less than h/10 is halved (VACASK), so that
            # the step after it is not tiny
            hit = t + h > next_bp
            h = jnp.where(hit, next_bp - t, jnp.where(next_bp - (t + h) < 0.1 * h, 0.5 * h, h))
            tn = jnp.where(hit, next_bp, t + h)
            ordr, nd = s.ordr, s.nd
            be = (ordr < 2) | (order == 1)
            # vector ÷ scalar written as a product with the reciprocal: what XLA's simplifier
            # makes of ``q / h`` in some programs and not in others (a vmapped lane would round
            # differently from its single run); the explicit form is the same in all of them
            inv_h = 1.0 / h
            if method == "gear2":
                hp = th[2] - th[1]
                w = h / jnp.where(hp > 0, hp, h)

            def history(q3, qdot_k):
                """``hist`` of ``dq/dt ≈ a0·q_new + hist`` for charges whose last three accepted
                values are ``q3`` (oldest first) and whose derivative at the last one is ``qdot_k``
                (the module docstring's formulas)."""
                qk = q3[2]
                h_be = -qk * inv_h
                if method == "trap":
                    h_2 = -2.0 * qk * inv_h - qdot_k
                elif method == "gear2":
                    h_2 = (-(1 + w) * qk + w * w / (1 + w) * q3[1]) * inv_h
                else:
                    h_2 = h_be
                return jnp.where(be, h_be, h_2)

            if method == "trap":
                a0_2 = 2.0 / h
            elif method == "gear2":
                a0_2 = (1 + 2 * w) / ((1 + w) * h)
            else:
                a0_2 = inv_h
            a0 = jnp.where(be, inv_h, a0_2)
            hist = history(qh, qdot)
            if device_ref:  # the same formula on each reactive slot's own history
                ehist = history(s.eqh, s.eqdot)
            # predictor (VACASK): the trapezoidal rule's predictor sees the filtered history
            ph = jnp.where(be, xh, s.fh)
            xpred, e_p = _predict(tn, th[2], th[1], th[0], ph[2], ph[1], ph[0], ~be)
            have_pred = nd >= jnp.where(be, 2, 3)
            xp = xpred if o.tran_predictor else xh[2]
            b = b_of_t(tn)
            if device_ref:
                xn, it, conv, bad, qn, F, fref, eqn = newton(xp, b, a0, hist, gshunt, itl, dvmax, s.xmax,
                                                             s.rmax, keep_input=keep_input, ehist=ehist)
            else:
                xn, it, conv, bad, qn, F, fref = newton(xp, b, a0, hist, gshunt, itl, dvmax, s.xmax,
                                                        s.rmax, keep_input=keep_input)
            # trapezoidal ringing filter (VACASK tran_trapltefilter): x minus half the width of
            # the envelope of the last three points at the middle one
            trap2 = (method == "trap") & ~be
            k13 = (xh[2] - xh[0]) * (1.0 / (th[2] - th[0]))
            xf = jnp.where(trap2 & (s.trh >= 3), xn - (xh[1] - xh[0] - k13 * (th[1] - th[0])) / 2, xn)
            trh = jnp.where(conv, jnp.where(trap2, jnp.minimum(s.trh + 1, 10), 0), s.trh)
            # local truncation error: Milne's estimate from corrector − predictor on the unknowns,
            # LTE = e_I/(e_I − e_P)·(x − x_pred), e_I the integrator's error coefficient
            if method == "gear2":
                hp = th[2] - th[1]
                w = h / jnp.where(hp > 0, hp, h)
                e_i2 = (1 + w) ** 2 / (w * (1 + 2 * w))
            else:
                e_i2 = 0.5
            e_i = jnp.where(be, 1.0, e_i2)
            tol = jnp.maximum(reltol * s.xmax, xabs) * lteratio
            ratio = jnp.max(jnp.abs(e_i / (e_i - e_p) * (xf - xpred)) / tol) if has_lte else 0.0
            kk = jnp.where(be, 1.0, 2.0)
            h_lte = jnp.where(ratio > 0, jnp.minimum(
                2 * h, h * jnp.where(ratio > 0, ratio, 1.0) ** (-1.0 / (kk + 1))), 2 * h)
            h_lte = jnp.where(have_pred, h_lte, h)
            lte_ok = ~have_pred | (redo <= 0) | (h <= redo * h_lte)
            accept = conv & (lte_ok | (h <= 10 * hmin))
            h_rej = jnp.where(conv, h_lte, h * ft)
            fail_now = (~conv) & (h * ft < hmin)
            qdot_new = a0 * qn + hist
            h_acc = jnp.maximum(h_lte, 10 * hmin)
            ordr_n = jnp.where(accept, jnp.where(hit, 1, jnp.where(have_pred, jnp.minimum(
                ordr + 1, order), ordr)), jnp.where(conv, ordr, 1))
            xh_n = jnp.where(accept, jnp.stack([xh[1], xh[2], xn]), xh)
            th_n = jnp.where(accept, jnp.stack([th[1], th[2], tn]), th)
            qh_n = jnp.where(accept, jnp.stack([qh[1], qh[2], qn]), qh)
            eqh_n, eqdot_n = s.eqh, s.eqdot
            if device_ref:
                eqh_n = jnp.where(accept, jnp.stack([s.eqh[1], s.eqh[2], eqn]), s.eqh)
                eqdot_n = jnp.where(accept, a0 * eqn + ehist, s.eqdot)
            # the output row (tn, xn) is written by the loop body (``run``), accepted or not
            return jnp.concatenate([tn[None], xn]), s._replace(
                t=jnp.where(accept, tn, t), h=jnp.where(accept, h_acc, h_rej), xh=xh_n, th=th_n,
                qh=qh_n, qdot=jnp.where(accept, qdot_new, qdot), nh=jnp.where(accept, nh + 1, nh),
                after_bp=jnp.where(accept, hit, after_bp), bpi=bpi.astype(jnp.int32),
                k=jnp.where(accept, k + 1, k),
                rej=s.rej + jnp.where(accept, 0, 1), iters=s.iters + it, lastit=it, lastbad=bad,
                done=accept & (tn >= stop * (1 - 1e-12)), fail=fail_now,
                flast=jnp.where(accept, s.flast, F),
                fh=jnp.where(accept, jnp.stack([s.fh[1], s.fh[2], xf]), s.fh),
                xmax=jnp.where(accept, jnp.maximum(s.xmax, jnp.abs(xn)), s.xmax),
                rmax=jnp.where(accept, jnp.maximum(s.rmax, fref), s.rmax),
                nd=jnp.where(accept, jnp.where(hit, 1, nd + 1), nd), ordr=ordr_n, trh=trh,
                eqh=eqh_n, eqdot=eqdot_n)

        # The loop carries the state packed into four arrays (f64 scalars, int32 scalars, the
        # (13, n) vectors, the output rows): XLA's CPU runtime launches one kernel per array it
        # updates and copies each loop-carried buffer it cannot update in place, so a field per
        # array cost 52 operations per step with Newton stubbed (benchmarks/step_ops.py, rc), the
        # packed state 33.
        # The arithmetic of ``attempt`` is unchanged (bit-identical results).
        ik = I_FIELDS.index("k")

        def pack(s: TranState):
            fs = jnp.concatenate([jnp.stack([s.t, s.h]), s.th])
            ints = jnp.stack([jnp.asarray(getattr(s, f)).astype(jnp.int32) for f in I_FIELDS])
            vs = jnp.concatenate([jnp.reshape(getattr(s, f), (m, n)) for f, m in V_FIELDS])
            if device_ref:  # the per-slot charge history: its own (4, K) array
                return fs, ints, (vs, jnp.concatenate([s.eqh, s.eqdot[None]]))
            return fs, ints, vs

        def unpack(fs, ints, vs, s: TranState) -> TranState:
            d: dict[str, Any] = {"t": fs[0], "h": fs[1], "th": fs[2:5]}
            if device_ref:
                vs, ev = vs
                d["eqh"], d["eqdot"] = ev[:3], ev[3]
            for i, f in enumerate(I_FIELDS):
                d[f] = ints[i] != 0 if f in BOOLS else ints[i]
            r = 0
            for f, m in V_FIELDS:
                d[f] = vs[r: r + m] if m > 1 else vs[r]
                r += m
            return s._replace(**d)

        def run(state: TranState) -> TranState:
            const = state._replace(out_t=None, out_x=None)
            out = jnp.concatenate([state.out_t[:, None], state.out_x], axis=1)

            def cond(c):
                ints = c[1]
                return (ints[I_FIELDS.index("done")] == 0) & (ints[I_FIELDS.index("fail")] == 0) & (
                    ints[ik] < chunk)

            def body(c):
                fs, ints, vs, out = c
                row, s = attempt(unpack(fs, ints, vs, const))
                # the attempt's row at the chunk's next free place: kept when accepted (``k``
                # moves on), overwritten by the next attempt otherwise
                out = jax.lax.dynamic_update_slice(out, row[None, :], (ints[ik], jnp.int32(0)))
                return (*pack(s), out)

            fs, ints, vs, out = jax.lax.while_loop(cond, body, (*pack(state), out))
            return unpack(fs, ints, vs, state)._replace(out_t=out[:, 0], out_x=out[:, 1:])

        self._attempt = attempt
        self._run = jax.jit(run)
        if control == "ngspice":
            # ngspice's step control (sim/_tran_ngspice.py): the XLA loop only — the native step
            # kernel implements VACASK's control, so this variant stays off it
            from . import _tran_ngspice

            self._attempt, self._m = _tran_ngspice.make_step(sysm, o, method, host_solve)
            self._sysm = sysm
            self._limiting = bool(o.limiting) and bool(sysm.stateful_groups())
            self._run = jax.jit(_tran_ngspice.make_run(self._attempt, chunk))
            native = False
        if native:
            # one FFI call per chunk: each call costs some 0.3 ms besides the steps (the program's
            # dispatch, its ≈ 40 small operations packing the state, the rows copied out; graetz,
            # loaded VM: 5.2 µs per step with 512 rows, 4.1 with 4096, 3.8 with 16384)
            nchunk = max(chunk, min(16384, 1 << int(np.log2(NATIVE_CHUNK_DOUBLES // (n + 1)))))
            run_native = _native_run(newton, sysm, o, method, nchunk, device=device_ref,
                                     keep_input=keep_input)
            if run_native is not None:
                self._run = jax.jit(run_native)
                self.native = True
                self.chunk = nchunk

    def initial_state(self, x0: np.ndarray, q0: np.ndarray, stop: float, step: float,
                      maxstep: float, bps: np.ndarray, eq0: np.ndarray | None = None,
                      maxstep_given: float | None = None) -> TranState:
        """The state at the start (``x0``, charges ``q0``; ``eq0``: the reactive slots' charges of
        the ``"device"`` residual reference, computed from ``x0`` when not given). ``maxstep``:
        the largest step (VACASK's ``hmax``); ``maxstep_given``: the analysis's own ``maxstep``
        parameter (None: not given), the only one of those bounds VACASK's first step obeys."""
        if self.control == "ngspice":
            from ._tran_ngspice import initial_ng
            from .assembly import zero_states

            lim = zero_states(self._sysm) if self._limiting else ()
            h0, ng = initial_ng(self._m, stop, step, maxstep, lim)
            return self._vacask_state(x0, q0, stop, step, maxstep, bps, maxstep_given)._replace(
                h=np.float64(h0), hmin=np.float64(1e-11 * maxstep), ng=ng)
        st = self._vacask_state(x0, q0, stop, step, maxstep, bps, maxstep_given)
        if not self.device_ref:
            return st._replace(eqh=np.zeros((3, 0)), eqdot=np.zeros(0))
        eq = jnp.asarray(self._slot_charges(x0) if eq0 is None else eq0)  # may be traced (batch)
        return st._replace(eqh=jnp.stack([eq, eq, eq]), eqdot=jnp.zeros_like(eq))

    def _vacask_state(self, x0: np.ndarray, q0: np.ndarray, stop: float, step: float,
                      maxstep: float, bps: np.ndarray, maxstep_given: float | None = None) -> TranState:
        n, chunk = self.n, self.chunk
        size = 1 << max(4, int(np.ceil(np.log2(len(bps) + 1))))
        bpp = np.full(size, np.inf)
        bpp[: len(bps)] = bps
        # VACASK's first step (lib/coretran.cpp): tran_fs · min(step, the analysis's maxstep if
        # given, tran_fbr · the gap to the first breakpoint after 0 (or stop)); tran_fbr = 0.2501
        # is VACASK's default. Not the default bound (stop − start)/tran_minpts of later steps,
        # and the first attempt is not cut to it (``attempt``). (VACASK also bounds it by
        # tran_ffmax/(2·f_max) of sine sources and by the devices' bound step: not applied here.)
        first_bp = next((float(b) for b in bps if 0 < b < stop), stop)
        given = maxstep_given if maxstep_given and maxstep_given > 0 else np.inf
        h0 = self.tran_fs * min(step, given, self.tran_fbr * first_bp)
        hmin = 1e-14 * max(stop, 1e-9)
        f = np.float64
        return TranState(
            t=f(0.0), h=f(h0), xh=np.stack([x0, x0, x0]), th=np.array([-2.0, -1.0, 0.0]) * h0,
            qh=np.stack([q0, q0, q0]), qdot=np.zeros(n), nh=np.int32(1), after_bp=np.bool_(True),
            bpi=np.int32(0), k=np.int32(0), out_t=np.zeros(chunk), out_x=np.zeros((chunk, n)),
            rej=np.int32(0), iters=np.int32(0), done=np.bool_(False), fail=np.bool_(False),
            flast=np.zeros(n), fh=np.stack([x0, x0, x0]), xmax=np.zeros(n), rmax=np.zeros(n), nd=np.int32(0),
            ordr=np.int32(1), trh=np.int32(0), hmin=f(hmin), maxstep=f(maxstep), stop=f(stop), bps=bpp,
            step=f(step), lastit=np.int32(0), lastbad=np.bool_(False))


def _native_run(newton: Callable, sysm: "System", o: "Options", method: str,
                chunk: int, device: bool = False, keep_input: bool | None = None) -> Callable | None:
    """``run(state) -> state`` of :class:`TranKernel` as one FFI call of the native step kernel
    (:func:`va2jax.codegen.native.make_native_step`: the same attempts, operation by operation), or
    None where the XLA loop stays: ``VA2JAX_SIM_NATIVE_STEP=0``, off the CPU, no native Newton
    kernel with constant ``G``/``C`` (:func:`.engine.native_newton`), or a source waveform without
    a native form. ``device``: VACASK's per-element residual reference (the kernel carries the
    reactive slots' history ``eqh``, ``eqdot`` as the XLA loop's state does); ``keep_input``: the
    Newton solves' (default: ``not nr_residualcheck``)."""
    from .. import _config

    if not _config.get("SIM_NATIVE_STEP") or getattr(newton, "native", None) is None or (
            jax.default_backend() != "cpu"):
        return None
    from ..codegen.native import NATIVE_STEP_COUNTERS, NATIVE_STEP_VECTORS, make_native_step

    n = sysm.n
    step = make_native_step(
        newton, n, method, sysm.sources, chunk, is_current=np.asarray(sysm.is_current, bool),
        reltol=o.reltol, vntol=o.vntol, abstol=o.abstol, lteratio=o.tran_lteratio,
        redo=o.tran_redofactor, ft=o.tran_ft, itl=int(o.tran_itl), gshunt=float(o.gshunt),
        dvmax=float(o.dvmax), predictor=bool(o.tran_predictor), has_lte=bool(sysm.has_charges()),
        fbr=float(o.tran_fbr), keep_input=not o.nr_residualcheck if keep_input is None else keep_input,
        device=device)
    if step is None:
        return None
    if (NATIVE_STEP_COUNTERS, NATIVE_STEP_VECTORS) != (I_FIELDS, V_FIELDS):  # pragma: no cover
        raise AssertionError("the native step kernel packs TranState differently from TranKernel")

    def run(state: TranState) -> TranState:
        f64 = jnp.float64
        fs = jnp.stack([jnp.asarray(v, f64) for v in (state.t, state.h, state.th[0], state.th[1],
                                                     state.th[2], state.hmin, state.maxstep,
                                                     state.stop, state.step, float(state.bps.shape[0]))])
        ints = jnp.stack([jnp.asarray(getattr(state, k)).astype(f64) for k in NATIVE_STEP_COUNTERS])
        vs = jnp.concatenate([jnp.reshape(jnp.asarray(getattr(state, k), f64), (m * n,))
                              for k, m in NATIVE_STEP_VECTORS] + (
            [jnp.ravel(jnp.asarray(state.eqh, f64)), jnp.asarray(state.eqdot, f64)] if device else []))
        fo, io, vo, rows = step(fs, ints, vs, state.bps)
        d: dict[str, Any] = {"t": fo[0], "h": fo[1], "th": fo[2:5]}
        for j, k in enumerate(NATIVE_STEP_COUNTERS):
            d[k] = io[j] != 0 if k in BOOLS else io[j].astype(jnp.int32)
        r = 0
        for k, m in NATIVE_STEP_VECTORS:
            d[k] = jnp.reshape(vo[r: r + m * n], (m, n)) if m > 1 else vo[r: r + n]
            r += m * n
        if device:  # the reactive slots' charge history (3, K) and flows (K)
            K = (vo.shape[0] - r) // 4
            d["eqh"], d["eqdot"] = jnp.reshape(vo[r: r + 3 * K], (3, K)), vo[r + 3 * K:]
        return state._replace(**d, out_t=rows[:, 0], out_x=rows[:, 1:])

    return run


def run_tran(eng: "Engine", name: str, stop: float, step: float | None = None,
             maxstep: float | None = None, start: float = 0.0, method: str | None = None,
             uic: bool = False, progress: Callable[[float], None] | None = None,
             x0: np.ndarray | None = None) -> "Result":
    """Transient analysis from the DC operating point (or from ``x = 0`` with ``uic``, or from
    ``x0`` when given: VACASK's initial conditions, ``sim/_nodeset.py``).

    ``stop``, ``step``, ``maxstep``, ``start`` in seconds; ``maxstep`` defaults to ``stop/50``.
    Every accepted time point is returned.
    """
    o = eng.opts
    sysm = eng.sys
    method = method or o.tran_method
    ngspice = o.tran_control == "ngspice"
    step = step if step and step > 0 else stop / 1000
    given = maxstep if maxstep and maxstep > 0 else None  # bounds VACASK's first step (initial_state)
    if ngspice:  # ngspice's tmax: as given, else min(tstep, (tstop − tstart)/50)
        maxstep = maxstep if maxstep and maxstep > 0 else min(step, (stop - start) / 50)
    else:  # VACASK's hmax: (stop − start)/tran_minpts (tran_minpts = 50), and maxstep if smaller
        maxstep = min(maxstep, (stop - start) / 50) if maxstep and maxstep > 0 else (stop - start) / 50
    bps = sysm.breakpoints(stop)
    if 0 < start < stop and not ngspice:  # VACASK: the recording start is a breakpoint too
        bps = np.union1d(bps, [start])
    if ngspice and uic and 0 < step < stop:  # ngspice: a breakpoint at tstep after a uic start
        bps = np.union1d(bps, [step])
    t_c = time.perf_counter()
    key = (method, "ngspice") if ngspice else method
    kern = eng._tran_kernels.get(key)
    if kern is None:
        kern = eng._tran_kernels[key] = TranKernel(eng.newton, sysm, o, method, native=True,
                                                   control=o.tran_control)
    if not kern.compiled:
        z = np.zeros(sysm.n)
        kern._run = kern._run.lower(kern.initial_state(z, z, stop, step, maxstep, bps,
                                                       maxstep_given=given)).compile(
            compiler_options=loop_compiler_options())
        kern.compiled = True
        eng.compile_s += time.perf_counter() - t_c
    eng.compile_assembly()  # the initial charges below: compiled outside the timed run
    t0w = time.perf_counter()
    it0 = eng.iterations
    b0 = sysm.source_vector(0.0)
    if x0 is not None:
        x = np.asarray(x0, float)
    else:
        x = np.zeros(sysm.n) if uic else eng.op(b0, what=f"transient {name}: initial operating point")
    _, q, _, _ = eng.jacobians(x)
    state = kern.initial_state(x, q, stop, step, maxstep, bps, maxstep_given=given)
    ts = [np.array([0.0])]
    xs = [x[None, :]]
    run, host = kern._run, False

    def result(st: TranState) -> Result:
        """The points accepted so far (all of them once ``stop`` is reached)."""
        times, data = np.concatenate(ts), np.concatenate(xs)
        stats = Stats(points=len(times), rejected=int(st.rej),
                      newton_iterations=eng.iterations - it0 + int(st.iters),
                      run_s=time.perf_counter() - t0w)
        keep = times >= start
        return Result(name, "tran", "time", times[keep], list(sysm.names), data[keep], stats)

    while True:
        try:
            # waited for here: the error of an asynchronously dispatched run is raised by the
            # first read of its result
            new = jax.block_until_ready(run(state))
        except TypeError:  # breakpoint table grew past the compiled size: recompile
            kern._run = jax.jit(kern._run)  # pragma: no cover
            raise
        except jax.errors.JaxRuntimeError as e:  # KLU (option solver=klu) stops on a singular matrix
            if not is_singular_error(e) or host:
                raise
            # this chunk again with the sparse solve in a host callback (SuperLU; NaN where the
            # matrix is singular), as the operating point's second try: a singular step then
            # fails as a non-converging one does (time, iterations, unknowns named below) and the
            # points before it are kept
            run, host = _host_kernel(eng, o, method), True
            continue
        state = new
        k = int(state.k)
        ts.append(np.asarray(state.out_t)[:k])
        xs.append(np.asarray(state.out_x)[:k])
        if progress is not None:
            progress(float(state.t))
        if bool(state.fail):
            F = np.asarray(state.flast)
            h = float(state.h) / o.tran_ft
            tfail = float(state.t) + h
            if bool(state.lastbad):  # a singular matrix (BE after a failure: a0 = 1/h)
                sm = eng.singular_message(np.asarray(state.xh)[2], b0, 1.0 / h)
                why = (f"{sm} in Newton iteration {int(state.lastit)} of the step from "
                       f"t={float(state.t):.6g} s (cut down to {h:.3g} s)")
            else:
                why = (f"Newton did not converge at t={tfail:.6g} s after {int(state.lastit)} "
                       f"iterations (time step too small); {eng.worst(F)}")
            npts = len(np.concatenate(ts))
            err = ConvergenceError(f"transient {name}: {why}; {npts} point{'s' * (npts != 1)} "
                                   f"up to t={float(state.t):.6g} s kept")
            err.partial = result(state)
            eng.iterations += int(state.iters)
            raise err
        if bool(state.done):
            break
        state = state._replace(k=np.int32(0))
    res = result(state)
    eng.iterations += int(state.iters)
    return res


def _host_kernel(eng: "Engine", o: "Options", method: str) -> Callable:
    """The transient loop with Newton's sparse solve in a host callback (NaN on a singular
    matrix instead of KLU's error), jitted on first use."""
    from .engine import make_newton

    key = ("host", method, o.tran_control)
    if key not in eng._tran_kernels:
        t0 = time.perf_counter()
        k = TranKernel(make_newton(eng.sys, o, host_solve=True), eng.sys, o, method,
                       control=o.tran_control, host_solve=True)
        eng._tran_kernels[key] = k._run
        eng.compile_s += time.perf_counter() - t0
    return eng._tran_kernels[key]


