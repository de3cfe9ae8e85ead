"""Derivatives of a transient: forward sensitivities and the discrete adjoint of the accepted steps.

The primal is the simulator's adaptive transient (:meth:`.batch.BatchSweep.tran_function`, the
loop of :mod:`.tran`), run once at the parameter values ``p`` with its result held constant
(``stop_gradient``): it supplies the accepted times ``t_0 = 0 < t_1 < … < t_N`` and the solutions
there. The function's value and derivatives then come from a *replay* of those steps — a
:func:`jax.lax.scan` over ``k = 1 … N`` that re-solves each step's equations

    F_k(x_k, x_{k−1}, …; p) = f(x_k; p) − b(t_k; p) + a0_k·q(x_k; p) + hist_k + g_shunt·x_k = 0

(``f``: resistive currents in A, ``q``: charges in C, ``b``: sources; ``a0_k``, ``hist_k``: the
integration formula of step ``k``, as in :mod:`.tran`: backward Euler, trapezoidal or Gear-2,
``hist_k`` a linear function of the past charges and ``dq/dt``) with ``polish`` full Newton steps
from the recorded solution, and ``x_0`` the operating point at ``b(0; p)`` the same way. Each
solve is a :func:`jax.custom_jvp` with the implicit-function rule

    dx_k = −J_k⁻¹·(∂F_k/∂hist·dhist_k + ∂F_k/∂p·dp),    J_k = ∂f/∂x + a0_k·∂q/∂x + g_shunt

(one equilibrated LU solve with the converged Jacobian), linear in the tangents, so JAX's
transpose of the scan is the discrete adjoint: ``jax.grad`` costs one replay forward and one
backward sweep with ``J_kᵀ`` solves. Compile gradients fused (XLA's default, or
``compiler_options=`` :func:`.engine.loop_compiler_options`): with fusion off (va2jax's former
process-wide default) the backward sweep ran 8× slower (docs/sim.md, "Cost").

Held constant (documented choice): the accepted times ``t_k`` (so ``h_k`` and ``a0_k``), the
order of each step and the breakpoints — the derivative is that of the discrete system on the
accepted grid. Finite differences of the simulator see, in addition, the step controller's
reaction to ``p`` (a different grid at ``p ± δp``), an ``O(LTE)`` effect: on a grid the controller
does not move (a ``maxstep`` bound, ``tran_lteratio`` large) the two agree to ≤ 1.5e-4 on the
Graetz bridge, on an adaptive one finite differences are noisy (docs/sim.md). The order of
each step is not stored by :mod:`.tran`; the replay recomputes it with the kernel's rule from
the accepted times (order 1 for the first three steps and the two after each breakpoint, then
the method's order; a Newton failure,
which drops the kernel to order 1 for a step, is not seen — the replay's value then differs
from the simulator's by that step's truncation error, and its derivative is still the exact
derivative of the replayed discrete system).

Outputs: node voltages / branch currents sampled at given times, linearly interpolated between
the accepted points (the interpolation weights depend on the held times only).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .assembly import assemble_fn
from .batch import OK, BatchSweep
from .engine import dense_equilibrated_solve as _solve


def implicit_solve(resid: Callable, polish: int) -> Callable:
    """``solve(x_guess, theta) -> x``: the root of ``resid(x, theta) -> (F, J)`` by ``polish``
    full Newton steps from ``x_guess`` (no gradient through the guess), differentiated by the
    implicit-function rule ``dx = −J⁻¹·∂F/∂θ·dθ`` (a :func:`jax.custom_jvp`, linear in ``dθ``)."""

    @jax.custom_jvp
    def solve(xg, theta):
        x = jax.lax.stop_gradient(xg)
        for _ in range(polish):
            F, J = resid(x, theta)
            xn = x - _solve(J, F)
            x = jnp.where(jnp.all(jnp.isfinite(xn)), xn, x)
        return x

    @solve.defjvp
    def _jvp(primals, tangents):
        xg, theta = primals
        _, dtheta = tangents
        x = solve(xg, theta)
        _, J = resid(x, theta)
        _, dF = jax.jvp(lambda th: resid(x, th)[0], (theta,), (dtheta,))
        return x, -_solve(J, dF)

    return solve


class TranReplay:
    """The transient outputs of :func:`va2jax.sim.function` (``analysis="tran"``): ``fn(p) ->
    (samples (S, len(cols)), status)`` for the parameter vector ``p`` (module docstring)."""

    def __init__(self, bs: BatchSweep, times: np.ndarray, cols: list[int], stop: float,
                 step: float | None, maxstep: float | None, method: str, max_points: int,
                 polish: int, system_at: Callable | None = None):
        self.bs = bs
        #: the circuit at ``p`` for the replay (differentiable in ``x`` and ``p``); the primal
        #: run (``tran_function``) uses ``bs.system_at``
        system_at = bs.system_at if system_at is None else system_at
        self.system_at = system_at
        self.times = np.asarray(times, float)
        self.cols = np.asarray(cols, int)
        self.method = method
        self.order = 1 if method == "be" else 2
        self.stop = float(stop)
        self.polish = int(polish)
        self._tran = bs.tran_function(stop, step, maxstep, method, max_points, chunk=16)
        bps = np.asarray(bs.system.breakpoints(stop), float)
        self.bps = bps[bps > 0]
        gm = np.asarray(bs.system.gmin_mask, float)
        self.gsh = bs.opts.gshunt * gm

        def resid(x, theta):
            p, hist, a0, tn = theta
            sysm = system_at(p)
            f, q, Jf, Jq = assemble_fn(sysm)(x)
            b = sysm.make_source_fn()(tn)
            F = f - b + a0 * q + hist + self.gsh * x
            return F, Jf + a0 * Jq + jnp.diag(self.gsh)

        self._step = implicit_solve(resid, self.polish)

    def __call__(self, p: jax.Array) -> tuple[jax.Array, jax.Array]:
        times, X, npts, status = self.trajectory(p)
        # linear interpolation at the sample times (weights from the held accepted times)
        s = jnp.asarray(self.times)
        i = jnp.clip(jnp.searchsorted(times, s, side="right"), 1, jnp.maximum(npts - 1, 1))
        t0, t1 = times[i - 1], times[i]
        wgt = jnp.where(t1 > t0, (s - t0) / jnp.where(t1 > t0, t1 - t0, 1.0), 0.0)
        out = X[i - 1] + wgt[:, None] * (X[i] - X[i - 1])
        return out, status

    def trajectory(self, p: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """``(times (L,), X (L, len(cols)), npoints, status)``: the replayed solution at every
        accepted time (held constant, ``inf`` past ``npoints``; rows there repeat the last point)."""
        n = self.bs.system.n
        rec = jax.lax.stop_gradient(self._tran(jax.lax.stop_gradient(p)))
        L = rec["time"].shape[0]
        npts = rec["npoints"]
        idx = jnp.arange(L)
        valid = idx < npts
        times = jnp.where(valid, rec["time"], jnp.inf)
        sysm = self.system_at(p)
        q_of = lambda x, p: assemble_fn(self.system_at(p))(x)[1]  # noqa: E731
        zero = jnp.zeros(n)
        # x_0: the operating point at b(0) (the transient's start), implicit in p
        x0 = self._step(rec["x"][0], (p, zero, jnp.float64(0.0), jnp.float64(0.0)))
        q0 = assemble_fn(sysm)(x0)[1]
        method, order = self.method, self.order
        bps = jnp.asarray(self.bps)
        scale = max(self.stop, 1e-300)

        def body(c, xs):
            x_p, q_p, q_pp, qdot, ordr, nd, t_p, h_p = c
            tn, xr, ok = xs
            # rows past the last accepted point (masked out below) still run the step: one of
            # the last step's size, not 1 s — at h = 1 s the capacitors' a0·C vanish and the
            # Jacobian of a circuit with floating capacitor nodes (the diode multiplier) is
            # singular; its inf/NaN, times the zero cotangent the mask sends back, made every
            # reverse-mode derivative NaN (0·NaN), while forward mode was unaffected
            h = jnp.where(ok, tn - t_p, jnp.where(h_p > 0, h_p, 1.0))
            tn = jnp.where(ok, tn, t_p + h)
            xr = jnp.where(ok, xr, x_p)
            hit = jnp.any(jnp.abs(tn - bps) <= 1e-9 * scale)
            be = (ordr < 2) | (order == 1)
            have_pred = nd >= jnp.where(be, 2, 3)
            a0_be, hist_be = 1.0 / h, -q_p / h
            if method == "trap":
                a0_2, hist_2 = 2.0 / h, -2.0 * q_p / h - qdot
            elif method == "gear2":
                w = h / jnp.where(h_p > 0, h_p, h)
                a0_2 = (1 + 2 * w) / ((1 + w) * h)
                hist_2 = (-(1 + w) * q_p + w * w / (1 + w) * q_pp) / h
            else:
                a0_2, hist_2 = a0_be, hist_be
            a0 = jnp.where(be, a0_be, a0_2)
            hist = jnp.where(be, hist_be, hist_2)
            x = self._step(xr, (p, hist, a0, tn))
            q = q_of(x, p)
            qd = a0 * q + hist
            ordr_n = jnp.where(hit, 1, jnp.where(have_pred, jnp.minimum(ordr + 1, order), ordr))
            nd_n = jnp.where(hit, 1, nd + 1)
            keep = lambda new, old: jnp.where(ok, new, old)  # noqa: E731
            c2 = (keep(x, x_p), keep(q, q_p), keep(q_p, q_pp), keep(qd, qdot),
                  keep(ordr_n, ordr), keep(nd_n, nd), keep(tn, t_p), keep(h, h_p))
            return c2, keep(x, x_p)

        c0 = (x0, q0, q0, zero, jnp.int32(1), jnp.int32(0), jnp.float64(0.0), jnp.float64(0.0))
        xs = (rec["time"][1:], rec["x"][1:], valid[1:])
        _, X = jax.lax.scan(body, c0, xs)
        X = jnp.concatenate([x0[None, :], X], axis=0)[:, self.cols]
        status = jnp.where(rec["status"] == OK, OK, rec["status"]).astype(jnp.int32)
        return times, X, npts, status

