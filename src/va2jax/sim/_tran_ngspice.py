"""ngspice's transient step control (``options tran_control="ngspice"``, the SPICE reader's default).

The same integration formulas as :mod:`.tran` (BE, trapezoidal, variable-step Gear-2 on the
node charges), with the step chosen as ngspice-39 chooses it (``dctran.c``, ``cktterr.c``,
``ckttrunc.c``; the facts below were read from its sources, the code is va2jax's own):

* **Charge states.** ngspice estimates the truncation error of each device's charge (flux), not of
  the node voltages: here of each linear capacitor's charge ``q_b = C·(v_p − v_n)`` and of each
  unknown's charge from everything else (devices, inductors), ``q_i − Σ_b ±q_b``. For a
  two-terminal device with an internal node (a diode with ``rs``) the latter is its junction
  charge, as in ngspice; where several devices' charges meet at one node their sum is checked (a
  documented difference: ngspice checks each device's states). Each state's current
  ``i = dq/dt`` comes from the step's own integration formula applied to that state's history.
* **Error estimate** (``CKTterr``) per state, order ``k``, steps ``h_0`` (this step), ``h_1``,
  ``h_2`` (the accepted ones before): the ``(k+1)``-th divided difference ``D`` of the state
  over the last ``k + 2`` points, ``tol = max(abstol + reltol·max(|i_0|, |i_1|),
  reltol·max(|q_0|, |q_1|, chgtol)/h_0)``, ``δ = trtol·tol/max(abstol, c_k·|D|)`` with ``c`` =
  (½, 2/9) for Gear and (½, 1/12) for the trapezoidal rule, and the proposed step
  ``h_new = min(2·h_0, min_states δ^(1/k))`` (``trtol`` = 7, ngspice's default).
* **Accept / reject.** A converged point is accepted when ``h_new > 0.9·h_0`` (the very first
  point always, with its step kept); then, at order 1, order 2 is tried: ``h_new`` is recomputed
  with order 2 and the order stays 2 unless that ``h_new ≤ 1.05·h_0`` — either way the next step
  is the order-2 figure. A rejected point is retried with ``h_new``; a Newton failure with
  ``h/8`` at order 1. Below ``delmin = 1e-11·tmax`` the step is set to ``delmin`` once, then the
  run fails.
* **Breakpoints** (0, the sources' corners, ``stop``). After each accepted point: the step is
  bounded by ``tmax``; at a breakpoint the order drops to 1 and the step is bounded by a tenth
  of ``min(saved step, gap to the next breakpoint)`` (the very first step: a further tenth;
  the first proposal is ``min(stop/100, tstep)/10``, the saved step starts at ``stop/50``), at
  least ``2·delmin``; a step reaching the next breakpoint is cut to land on it and saved
  (breakpoints closer than ``minbreak = 10·delmin`` to the present point are dropped first).
* **``uic``**: ngspice adds a breakpoint at ``tstep`` after a ``uic`` start
  (:func:`.tran.run_tran` adds it); ngspice leaves out the ``t = 0`` row after such a start,
  va2jax writes it.

Newton is :func:`.engine.make_newton` with ``ngspice=True``: ngspice's ``NIiter`` test and its
choice of the returned iterate (see that docstring); ngspice's device bypass and the devices' own
convergence tests (current predictions) are not modelled. The native step kernel implements
VACASK's control only: this control runs in the XLA loop (docs/sim.md, "Transient").
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

if TYPE_CHECKING:
    from .engine import Options
    from .mna import System

#: error coefficients of ``CKTterr`` (order 1, order 2; backward Euler stays at order 1)
_COEFF = {"gear2": (0.5, 0.2222222222), "trap": (0.5, 0.08333333333), "be": (0.5, 0.5)}


def make_step(sysm: "System", o: "Options", method: str, host_solve: bool = False):
    """``(attempt, m)``: ``attempt(state) -> (row, state)`` is one step attempt of ngspice's
    control on :class:`.tran.TranState` (its ``ng`` field holds the extra state, see
    :func:`initial_ng`); ``m`` the number of charge states."""
    from .engine import make_newton

    newton = make_newton(sysm, o, ngspice=True, host_solve=host_solve)
    n = sysm.n
    b_of_t = sysm.make_source_fn()
    cp, cn, cval = (np.asarray(a) for a in sysm.cap_branches)
    nb = len(cval)
    cp_j, cn_j, c_j = jnp.asarray(cp), jnp.asarray(cn), jnp.asarray(cval)
    maxord = 1 if method == "be" else 2
    reltol, abstol, chgtol, trtol = o.reltol, o.abstol, o.chgtol, o.ng_trtol
    # ngspice's NIiter raises the iteration limit to 100 and clips no update
    itl, gshunt = max(int(o.tran_itl), 100), o.gshunt
    coef = _COEFF[method]

    # the capacitors' node charges: a small dense incidence product (XLA's CPU scatter-add
    # costs microseconds per call), a scatter-add for large circuits
    inc = None
    if n * nb <= 1 << 16:
        a = np.zeros((n + 1, nb))
        a[cp, np.arange(nb)] += 1.0
        a[cn, np.arange(nb)] -= 1.0
        inc = jnp.asarray(a[:n])

    def states(x, q):
        """(nb + n,) charge states: capacitor branches, then the rest of each unknown's charge."""
        xe = jnp.concatenate([x, jnp.zeros(1)])
        qb = c_j * (xe[cp_j] - xe[cn_j])
        if inc is not None:
            qc = inc @ qb
        else:
            qc = jnp.zeros(n + 1).at[cp_j].add(qb).at[cn_j].add(-qb)[:n]
        return jnp.concatenate([qb, q - qc])

    def integ(h, be, w, q1, q2, qd1):
        """``(a0, hist)`` of ``dq/dt ≈ a0·q + hist`` (the formulas of :mod:`.tran`)."""
        inv_h = 1.0 / h
        if method == "trap":
            a0_2, hist_2 = 2.0 / h, -2.0 * q1 * inv_h - qd1
        elif method == "gear2":
            a0_2 = (1 + 2 * w) / ((1 + w) * h)
            hist_2 = (-(1 + w) * q1 + w * w / (1 + w) * q2) * inv_h
        else:
            a0_2, hist_2 = inv_h, -q1 * inv_h
        return jnp.where(be, inv_h, a0_2), jnp.where(be, -q1 * inv_h, hist_2)

    def terr(order2, s0, s1, s2, s3, i0, i1, d0, d1, d2):
        """ngspice's ``CKTtrunc``: the smallest step any state allows (before the 2·h bound)."""
        volttol = abstol + reltol * jnp.maximum(jnp.abs(i0), jnp.abs(i1))
        chg = reltol * jnp.maximum(jnp.maximum(jnp.abs(s0), jnp.abs(s1)), chgtol) / d0
        tol = jnp.maximum(volttol, chg)
        f0, f1, f2 = (s0 - s1) / d0, (s1 - s2) / d1, (s2 - s3) / d2
        g0, g1 = (f0 - f1) / (d1 + d0), (f1 - f2) / (d2 + d1)
        dd = jnp.where(order2, (g0 - g1) / ((d2 + d1) + d0), g0)
        factor = jnp.where(order2, coef[1], coef[0])
        de = trtol * tol / jnp.maximum(abstol, factor * jnp.abs(dd))
        de = jnp.where(order2, jnp.sqrt(de), de)
        return jnp.min(de) if de.shape[0] else jnp.inf

    def attempt(s):
        g = s.ng
        t, bps, stop, maxstep, delmin = s.t, s.bps, s.stop, s.maxstep, s.hmin
        minbreak = 10.0 * delmin
        nbp = bps.shape[0]
        first = g["first"]
        # ---- after an accepted point (ngspice's "resume"): breakpoints and the step bound
        d = jnp.minimum(s.h, maxstep)
        # the breakpoint at or after t (ngspice: "at a breakpoint" within 100 ulps, ≈ 2.3e-14·t)
        i0 = jnp.minimum(jnp.searchsorted(bps, t - 2.3e-14 * jnp.abs(t), side="left",
                                          method="compare_all"), nbp - 1)
        bp0 = bps[i0]
        bp1 = bps[jnp.minimum(i0 + 1, nbp - 1)]
        gap = jnp.where(jnp.isfinite(bp1) & (bp1 > bp0), bp1 - bp0, jnp.inf)
        at_bp = (jnp.abs(bp0 - t) <= 2.3e-14 * jnp.abs(t)) | (bp0 - t <= delmin)
        d_at = jnp.minimum(d, 0.1 * jnp.minimum(g["save"], gap))
        d_at = jnp.maximum(jnp.where(first, d_at / 10, d_at), 2.0 * delmin)
        cut = ~at_bp & (t + d >= bp0)
        save = jnp.where(at_bp, g["save"], jnp.where(cut, d, g["save"]))
        d = jnp.where(at_bp, d_at, jnp.where(cut, bp0 - t, d))
        # breakpoints up to t + minbreak are dropped (never the last, stop); then a step past
        # the next one is cut to land on it
        j = jnp.minimum(jnp.searchsorted(bps, t + minbreak, side="right", method="compare_all"),
                        nbp - 1)
        last = jnp.sum(jnp.isfinite(bps)).astype(jnp.int32) - 1
        bpj = bps[jnp.minimum(j, last)]
        force = t + d > bpj
        save = jnp.where(force, d, save)
        d = jnp.where(force, bpj - t, d)
        ordr = jnp.where(at_bp, 1, s.ordr)
        dold = jnp.stack([d, g["dold"][0], g["dold"][1]])
        pend = g["pend"]
        # after a rejection the loop retries with the new step directly
        d = jnp.where(pend, d, s.h)
        save = jnp.where(pend, save, g["save"])
        ordr = jnp.where(pend, ordr, s.ordr)
        dold = jnp.where(pend, dold, g["dold"].at[0].set(s.h))
        # ---- the attempt
        tn = t + d
        be = (ordr < 2) | (maxord == 1)
        xh, th, qh = s.xh, s.th, s.qh
        hp = th[2] - th[1]
        w = d / jnp.where(hp > 0, hp, d)
        a0, hist = integ(d, be, w, qh[2], qh[1], s.qdot)
        b = b_of_t(tn)
        # Newton starts from the linear extrapolation through the last two points (ngspice
        # predicts the devices' junction voltages so: DEVpred; the linear elements' first solve
        # does not depend on the start)
        xp = xh[2] + (xh[2] - xh[1]) * (d / jnp.where(hp > 0, hp, jnp.inf))
        xn, it, conv, bad, qn, F, fref, lim = newton(xp, b, a0, hist, gshunt, itl, jnp.inf,
                                                     s.xmax, s.rmax, g["lim"])
        sh = g["sh"]
        s0 = states(xn, qn)
        a0s, hists = integ(d, be, w, sh[0], sh[1], g["cc"])
        i0s = a0s * s0 + hists
        d1, d2 = dold[1], dold[2]
        nd1 = jnp.minimum(2 * d, terr(~be, s0, sh[0], sh[1], sh[2], i0s, g["cc"], d, d1, d2))
        ok = nd1 > 0.9 * d
        try2 = ok & be & (maxord > 1)
        nd2 = jnp.minimum(2 * d, terr(True, s0, sh[0], sh[1], sh[2], i0s, g["cc"], d, d1, d2))
        accept = conv & (first | ok)
        ord_acc = jnp.where(first, ordr, jnp.where(try2 & ~(nd2 <= 1.05 * d), 2, ordr))
        h_acc = jnp.where(first, d, jnp.where(try2, nd2, nd1))
        h_rej = jnp.where(conv, nd1, d / 8)
        # below delmin: once delmin itself, then failure
        low = h_rej <= delmin
        fail_now = ~accept & low & ~(d > delmin)
        h_rej = jnp.where(low, delmin, h_rej)
        h_new = jnp.where(accept, h_acc, jnp.where(fail_now, d * o.tran_ft, h_rej))
        ord_new = jnp.where(accept, ord_acc, jnp.where(conv, ordr, 1))
        qdot_new = a0 * qn + hist
        ng = dict(
            sh=jnp.where(accept, jnp.stack([s0, sh[0], sh[1]]), sh),
            cc=jnp.where(accept, i0s, g["cc"]), dold=dold, save=save,
            first=first & ~accept, pend=accept,
            lim=jax.tree.map(lambda a, b: jnp.where(accept, a, b), lim, g["lim"]))
        row = jnp.concatenate([tn[None], xn])
        return row, s._replace(
            t=jnp.where(accept, tn, t), h=h_new,
            xh=jnp.where(accept, jnp.stack([xh[1], xh[2], xn]), xh),
            th=jnp.where(accept, jnp.stack([th[1], th[2], tn]), th),
            qh=jnp.where(accept, jnp.stack([qh[1], qh[2], qn]), qh),
            qdot=jnp.where(accept, qdot_new, s.qdot), nh=jnp.where(accept, s.nh + 1, s.nh),
            after_bp=jnp.where(accept, at_bp & pend, s.after_bp), bpi=i0.astype(jnp.int32),
            k=jnp.where(accept, s.k + 1, s.k), rej=s.rej + jnp.where(accept, 0, 1),
            iters=s.iters + it, lastit=it, lastbad=bad,
            done=accept & (stop - tn < minbreak), fail=fail_now,
            flast=jnp.where(accept, s.flast, F),
            xmax=jnp.where(accept, jnp.maximum(s.xmax, jnp.abs(xn)), s.xmax),
            rmax=jnp.where(accept, jnp.maximum(s.rmax, fref), s.rmax),
            nd=jnp.where(accept, s.nd + 1, s.nd), ordr=ord_new.astype(jnp.int32), ng=ng)

    attempt.own_states = newton.own_states
    attempt.states = states
    return attempt, nb + n


def make_run(attempt, chunk: int):
    """``run(state) -> state``: attempts until ``chunk`` points are accepted, ``stop`` is reached
    or Newton fails (the accepted rows in ``out_t``/``out_x``)."""

    def run(state):
        # the $limit states of the last accepted point: carried from its Newton solve, computed
        # here before the first point (the start's own junction values)
        # before the first point the charge-state histories are the start's
        g = state.ng
        own = attempt.own_states(state.xh[2])
        s_op = attempt.states(state.xh[2], state.qh[2])
        state = state._replace(ng=dict(g, lim=jax.tree.map(
            lambda a, b: jnp.where(g["first"], a, b), own, g["lim"]),
            sh=jnp.where(g["first"], jnp.stack([s_op, s_op, s_op]), g["sh"])))
        def cond(s):
            return (~s.done) & (~s.fail) & (s.k < chunk)

        def body(s):
            row, s2 = attempt(s)
            out_t = jax.lax.dynamic_update_slice(s.out_t, row[:1], (s.k,))
            out_x = jax.lax.dynamic_update_slice(s.out_x, row[None, 1:], (s.k, jnp.int32(0)))
            return s2._replace(out_t=out_t, out_x=out_x)

        return jax.lax.while_loop(cond, body, state)

    return run


def initial_ng(m: int, stop: float, step: float, maxstep: float,
               lim: tuple) -> tuple[float, dict[str, Any]]:
    """The first proposed step (``min(stop/100, tstep)/10``, cut further at the start breakpoint)
    and the initial extra state (``delmin`` goes into ``TranState.hmin``); ``lim``: placeholder
    ``$limit`` states (their shapes)."""
    h0 = min(stop / 100, step) / 10
    return h0, dict(sh=np.zeros((3, m)), cc=np.zeros(m), dold=np.full(3, maxstep),
                    save=np.float64(stop / 50), first=np.bool_(True), pend=np.bool_(True),
                    lim=tuple(np.zeros(np.shape(a)) for a in lim))
