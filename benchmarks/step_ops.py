"""The transient step's own XLA operations: what a compiled time step runs besides Newton.

``python benchmarks/step_ops.py NETLIST.sim [...]``

For each netlist: the transient kernel (:class:`va2jax.sim.tran.TranKernel`) with its Newton
solve replaced by a stub (the predictor returned as converged after one iteration, as in
``benchmarks/newton_profile.py``), compiled with the simulator's options; printed are the
operations XLA's CPU runtime launches per loop iteration — the instructions of the ``while``
body's entry computation that are not free (parameters, tuples, tuple elements, constants and
bitcasts are not counted), by kind (fusions, copies, dynamic-update-slices, custom calls, …) —
and the stubbed kernel's time per accepted step (best of 3). This is a measuring tool, not a test.
"""
from __future__ import annotations

import argparse
import collections
import re
import time
import warnings

import jax.numpy as jnp
import numpy as np

FREE = {"parameter", "tuple", "get-tuple-element", "constant", "bitcast"}


def body_ops(hlo: str) -> collections.Counter:
    """Counts by opcode of the instructions of the outermost while loop's body computation."""
    comps: dict[str, list[str]] = {}
    cur = None
    for line in hlo.splitlines():
        m = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line)
        if m and not line.startswith(" "):
            cur = m.group(1)
            comps[cur] = []
        elif cur and line.startswith("  "):
            comps[cur].append(line)
    entry = next(c for c in comps if c.startswith("main"))
    whiles = [re.search(r"body=%?([\w.\-]+)", ln) for ln in comps[entry] if " while(" in ln]
    body = whiles[0].group(1)
    cnt: collections.Counter = collections.Counter()
    for ln in comps[body]:
        m = re.search(r"=\s*\S+\s+([\w\-]+)\(", ln)
        if m and m.group(1) not in FREE:
            cnt[m.group(1)] += 1
    return cnt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("netlists", nargs="+")
    a = ap.parse_args()
    from va2jax.sim import Simulation
    from va2jax.sim.engine import loop_compiler_options
    from va2jax.sim.tran import TranKernel

    for net in a.netlists:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sim = Simulation.from_file(net)
        eng, sysm = sim.engine, sim.system
        decl = [d for d in sim.circuit.analyses if d.kind == "tran"][0]
        stop, step = sim._num(decl, "stop"), sim._num(decl, "step")
        maxstep = sim._num(decl, "maxstep", None) or stop / 50
        bps = sysm.breakpoints(stop)
        x0 = eng.op(sysm.source_vector(0.0))
        q0 = eng.jacobians(x0)[1]

        def stub(xp, b, a0, hist, gshunt, itl, dvmax, xref=None, rref=None):
            return xp, jnp.int32(1), jnp.bool_(True), jnp.bool_(False), xp * 1e-9, xp, jnp.abs(xp)

        kern = TranKernel(stub, sysm, eng.opts, sim._str(decl, "method", eng.opts.tran_method))
        st = kern.initial_state(x0, q0, stop, step, maxstep, bps)
        run = kern._run.lower(st).compile(compiler_options=loop_compiler_options())
        ops = body_ops(run.as_text())
        best = None
        for _ in range(3):
            s, pts = st, 0
            t0 = time.perf_counter()
            while True:
                s = run(s)
                pts += int(s.k)
                if bool(s.done) or bool(s.fail):
                    break
                s = s._replace(k=np.int32(0))
            dt = (time.perf_counter() - t0) / pts
            best = dt if best is None else min(best, dt)
        kinds = ", ".join(f"{k} {v}" for k, v in ops.most_common())
        print(f"{net}: {sum(ops.values())} ops per step ({kinds}); stubbed step "
              f"{best * 1e6:.2f} µs ({pts} steps)", flush=True)


if __name__ == "__main__":
    main()
