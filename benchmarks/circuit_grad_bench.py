"""Cost of a circuit gradient: one DC operating point vs its gradient w.r.t. K parameters.

Circuit: a diode–resistor ladder of ``K/2`` sections (``r{i}`` in series, a SPICE diode
``d{i}`` from each tap to ground, driven by 5 V); parameters: every resistance and every
diode's ``area`` (K in all). Objective: the sum of the tap voltages. It times, after
compilation, the median of ``--repeat`` calls of

* ``op``: ``f(values)`` — the operating point (Newton, gmin/source stepping as needed, polish);
* ``grad``: ``jax.grad`` of the objective — the operating point plus the implicit rule's
  transposed solve and one VJP of the residual in the K parameters (:mod:`va2jax.sim.differentiable`);
* ``jacfwd``: forward mode, K tangent solves (for comparison).

``--tran``: instead, the transient of the Graetz bridge (tests/sim/test_tran_adjoint.py: 10 ms,
``maxstep`` 0.1 ms, ``reltol`` 1e-6, ≈ 960 accepted points) with 5 parameters (R, C, diode IS and
N, source amplitude); objective: the sum of ``outp`` at 2, 5 and 9 ms. Rows: ``sim`` — the
simulator's adaptive transient alone (``BatchSweep.tran_function``, the forward simulation);
``value`` — ``f(values)``, the transient plus the replay of its accepted steps
(:mod:`va2jax.sim._tran_adjoint`); ``grad`` — ``jax.grad``: transient, replay and the discrete
adjoint sweep. ``--fused``: each row compiled with
:func:`va2jax.sim.engine.loop_compiler_options` (XLA fusion on, as the simulator's own loops);
without it, with :data:`va2jax.codegen.FUSION_OFF` (fusion off, va2jax's former process-wide
default).

Run: ``python benchmarks/circuit_grad_bench.py [--k 100] [--repeat 20] [--tran]``. Wall-clock times on a
shared machine are noisy; the ratio is what to read.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def netlist(sections: int) -> str:
    lines = ["diode-resistor ladder", 'load "resistor.osdi"', 'load "spice/diode.osdi"',
             "model r resistor", "model vsource vsource",
             "model dmod sp_diode ( is=1e-14 n=1.05 rs=1 )", "v1 (n0 0) vsource dc=5"]
    for i in range(1, sections + 1):
        lines.append(f"r{i} (n{i - 1} n{i}) r r={100 + i}")
        lines.append(f"d{i} (n{i} 0) dmod area=1")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--tran", action="store_true")
    ap.add_argument("--fused", action="store_true",
                    help="--tran: compile each row with the simulator loops' XLA options (fusion on)")
    a = ap.parse_args()
    if a.tran:
        return tran(a.repeat, a.fused)
    import jax
    import jax.numpy as jnp

    from va2jax.sim import function

    sections = a.k // 2
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "ladder.sim"
        p.write_text(netlist(sections))
        keys = [f"r{i}" for i in range(1, sections + 1)] + [f"d{i}.area" for i in range(1, sections + 1)]
        taps = [f"n{i}" for i in range(1, sections + 1)]
        f = function(p, keys, "op", taps)
    v = dict(f.nominal)

    def objective(v):
        out = f(v)
        return sum(out[t] for t in taps)

    runs = {"op": jax.jit(lambda v: jnp.stack([f(v)[t] for t in taps])),
            "grad": jax.jit(jax.grad(objective)),
            "jacfwd": jax.jit(jax.jacfwd(objective))}
    times = {}
    for name, fn in runs.items():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(v))
        comp = time.perf_counter() - t0
        ts = []
        for _ in range(a.repeat):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(v))
            ts.append(time.perf_counter() - t0)
        times[name] = statistics.median(ts)
        print(f"{name:7s} compile+first {comp:7.2f} s   median {times[name] * 1e3:8.3f} ms")
    print(f"K = {len(keys)} parameters, n = {sections * 2 + 1}+ unknowns: "
          f"grad / op = {times['grad'] / times['op']:.2f}, jacfwd / op = {times['jacfwd'] / times['op']:.2f}")


def _time(fn, v, repeat: int) -> tuple[float, float]:
    import jax

    t0 = time.perf_counter()
    jax.block_until_ready(fn(v))
    comp = time.perf_counter() - t0
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(v))
        ts.append(time.perf_counter() - t0)
    return comp, statistics.median(ts)


def tran(repeat: int, fused: bool) -> None:
    import jax
    import jax.numpy as jnp

    from va2jax.codegen import FUSION_OFF
    from va2jax.sim import function
    from va2jax.sim.engine import loop_compiler_options

    here = Path(__file__).resolve().parent.parent / "tests" / "sim" / "test_tran_adjoint.py"
    src = here.read_text()
    text = src[src.index('GRAETZ = """') + 11:]
    text = text[:text.index('"""')]
    keys = ["rl", "cl", "dpwr.is", "vs.ampl", "dpwr.n"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "graetz.sim"
        p.write_text(text)
        f = function(p, keys, "tran", ["outp"], times=[2e-3, 5e-3, 9e-3], stop=10e-3,
                     maxstep=1e-4, max_points=1100, options={"reltol": 1e-6})
    v = dict(f.nominal)
    pv = jnp.asarray([v[k] for k in keys])
    sim = jax.jit(f._replay._tran)
    npts = int(sim(pv)["npoints"])
    runs = {"sim": (sim, pv), "value": (jax.jit(lambda v: f(v)["outp"]), v),
            "grad": (jax.jit(jax.grad(lambda v: jnp.sum(f(v)["outp"]))), v)}
    opts = loop_compiler_options() if fused else dict(FUSION_OFF)
    times = {}
    for name, (fn, arg) in runs.items():
        t0 = time.perf_counter()
        exe = fn.lower(arg).compile(compiler_options=opts) if opts else fn
        comp, times[name] = _time(exe, arg, repeat)
        comp += time.perf_counter() - t0
        print(f"{name:6s} compile+first {comp:7.2f} s   median {times[name] * 1e3:9.2f} ms")
    print(f"graetz 10 ms, {npts} accepted points, K = {len(keys)}: grad / sim = "
          f"{times['grad'] / times['sim']:.2f}, value / sim = {times['value'] / times['sim']:.2f}")


if __name__ == "__main__":
    main()
