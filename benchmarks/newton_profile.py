"""Where a small circuit's Newton iteration and time step go: variants of the compiled loop.

``python benchmarks/newton_profile.py NETLIST.sim [--reps K]``

Each row times a jitted ``lax.fori_loop`` of ``K`` repetitions of one piece of the engine's
Newton iteration, on the circuit's own system, at the operating point (the loop carries ``x``
so that XLA cannot hoist the piece out of the loop), minus nothing: the empty loop is its own
row. The last rows time the real transient kernel (µs per accepted step, per Newton iteration).
Timings are the best of 5 runs (a 2-core VM shared with other jobs: minima are the stable
figure). This is a measuring tool, not a test.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def best(f, *args, runs: int = 5) -> float:
    jax.block_until_ready(f(*args))
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("netlist")
    ap.add_argument("--reps", type=int, default=20000)
    a = ap.parse_args()

    from va2jax.sim import Simulation
    from va2jax.sim.assembly import limited_assemble_fn, zero_states
    from va2jax.sim.engine import dense_equilibrated_solve, loop_compiler_options

    sim = Simulation.from_file(a.netlist)
    eng = sim.engine
    sysm = eng.sys
    n = sysm.n
    K = a.reps
    b0 = sysm.source_vector(0.0)
    x0 = eng.op(b0)
    opts = loop_compiler_options()
    asm = limited_assemble_fn(sysm)
    limiting = bool(eng.opts.limiting) and bool(sysm.stateful_groups())
    st0 = zero_states(sysm) if limiting else None
    f0, q0, Jf0, Jq0 = eng.jacobians(x0)
    J0 = jnp.asarray(Jf0 + 1e3 * Jq0 + np.eye(n) * 1e-12)

    def loop(body):
        def run(x):
            return jax.lax.fori_loop(0, K, lambda i, c: body(c), x)
        return jax.jit(run).lower(jnp.asarray(x0)).compile(compiler_options=opts)

    eq_solve = dense_equilibrated_solve  # Newton's LAPACK path, the one the engine uses

    rows = {}
    rows["empty loop (x + 0·x)"] = loop(lambda x: x * 1.0000000001)
    rows["assemble, residual f only"] = loop(
        lambda x: x + 1e-30 * asm(x, st0, True)[0])
    def asm_all(x):
        r = asm(x, st0, True)
        return x + 1e-30 * (r[0] + r[1] + r[2][0] + r[3][0] + r[4] + r[5])
    rows["assemble, all outputs used"] = loop(asm_all)
    rows["jnp.linalg.solve (n×n)"] = loop(lambda x: x + 1e-30 * jnp.linalg.solve(J0 + x[0] * 1e-30, x))
    rows["equilibrate + solve"] = loop(lambda x: x + 1e-30 * eq_solve(J0 + x[0] * 1e-30, x))
    from va2jax.codegen.native import DENSE_SOLVE_MAX_N as MAX_N
    from va2jax.codegen.native import dense_solve
    if n <= MAX_N:
        ns = dense_solve(n)
        rows["native equilibrate + LU + solve"] = loop(lambda x: x + 1e-30 * ns(J0 + x[0] * 1e-30, x))
    a0 = jnp.float64(1e3)
    z = jnp.zeros(n)

    def newton1(x):
        xn = eng.newton(x, jnp.asarray(b0), a0, z, jnp.float64(0.0), jnp.int32(1), jnp.float64(2.0))[0]
        return x + 1e-30 * xn
    rows["Newton, 1 iteration (maxiter=1)"] = loop(newton1)
    xj = jnp.asarray(x0)
    print(f"{a.netlist}: n = {n}, groups = {[type(g.group).__name__ for g in sysm.groups]}")
    base = None
    for name, f in rows.items():
        t = best(f, xj) / K * 1e6
        base = t if base is None else base
        print(f"  {name:40s} {t:7.2f} µs")
    tran_rows(sim, a.netlist)


def tran_rows(sim, netlist) -> None:
    """The transient kernel as it is, and with its Newton solve replaced by a stub that returns
    the predictor as converged after one iteration (the step's own overhead)."""
    from va2jax.sim.engine import loop_compiler_options
    from va2jax.sim.tran import TranKernel

    eng = sim.engine
    sysm = eng.sys
    decl = [d for d in sim.circuit.analyses if d.kind == "tran"][0]
    stop = sim._num(decl, "stop")
    step = sim._num(decl, "step")
    maxstep = sim._num(decl, "maxstep", None) or stop / 50
    method = eng.opts.tran_method
    bps = sysm.breakpoints(stop)
    x0 = eng.op(sysm.source_vector(0.0))
    _, q0, _, _ = eng.jacobians(x0)

    def stub(xp, b, a0, hist, gshunt, itl, dvmax, xref=None, rref=None):  # make_newton's signature
        return xp, jnp.int32(1), jnp.bool_(True), jnp.bool_(False), xp * 1e-9, xp, jnp.abs(xp)

    for label, newton in (("tran kernel", eng.newton), ("tran kernel, Newton stubbed", stub)):
        kern = TranKernel(newton, sysm, eng.opts, method)
        st = kern.initial_state(x0, q0, stop, step, maxstep, bps)
        run = kern._run.lower(st).compile(compiler_options=loop_compiler_options())
        best_t, pts, its = None, 0, 0
        for _ in range(3):
            s = st
            t0 = time.perf_counter()
            pts = its = 0
            while True:
                s = run(s)
                pts += int(s.k)
                if bool(s.done) or bool(s.fail):
                    break
                s = s._replace(k=np.int32(0))
            dt = time.perf_counter() - t0
            its = int(s.iters)
            best_t = dt if best_t is None else min(best_t, dt)
        print(f"  {label:40s} {best_t / pts * 1e6:7.2f} µs/step  ({pts} steps, {its} its, "
              f"{best_t / max(its, 1) * 1e6:.2f} µs/it)")


if __name__ == "__main__":
    main()
