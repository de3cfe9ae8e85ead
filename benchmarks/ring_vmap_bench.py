"""The suite's PSP103 ring under ``sweep(..., mode="vmap")`` over supply voltages, beside VACASK.

Issue 16, done-when 4: VACASK's 9-stage PSP103 ring oscillator (``tests/data/vacask_suite/ring/
vacask/runme.sim``, unchanged but for ``stop`` with ``--stop``) swept over ``--lanes`` supply
voltages (``vdd`` dc from ``--vmin`` to ``--vmax``, default 8 lanes 1.0…1.4 V) as one vmapped
batch (:func:`va2jax.sim.sweep`, one compiled program), and VACASK running the same 8 circuits
one after the other (a copy of the netlist per voltage, only ``dc=1.2`` of ``vdd`` and ``stop``
changed), in the same run. Per circuit-step = a lane's accepted time point (8 circuits = 8 steps
per batch step):

    va2jax µs/circuit-step = run time of the batch / Σ_lanes accepted points
    VACASK µs/circuit-step = Σ_runs "Elapsed time" of the analysis / Σ_runs accepted points

and the ratio of the two (issue: ≤ 1.5). Compile time is reported apart. Each lane is checked
against its single run (``mode="sequential"``: the same compiled single-set transient called once
per voltage): accepted times and solutions bit-identical, counted as such, or the largest
difference printed. With ``--cpu K`` it also measures CPU time (the VM is shared: steadier than
wall time), for both simulators as the time of the run less that of a run of a few steps (stop
0.01 ns: start-up, elaboration and the operating point — the batch's per-lane operating point
costs as much as a few hundred time steps, which a short ``--stop`` would otherwise charge to the
steps), divided by the difference of their accepted points: the batch's
``BatchSweep.tran_function`` vmapped and jitted with the simulator's loop options (as
``BatchSweep.tran``), compile excluded, best of ``K`` calls; VACASK best of ``K`` per voltage. Run::

    python benchmarks/ring_vmap_bench.py [--stop 1u] [--lanes 8] [--no-check] [--cpu K]
"""
from __future__ import annotations

import argparse
import re
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sim"))
import suite  # noqa: E402

_VDD = re.compile(r"^(vdd\s+\(vdd\s+0\)\s+vsource\s+dc=)(\S+)", re.M)


def ring_copy(workdir: Path, stop: str, vdd: float | None = None) -> Path:
    """The suite ring copied into ``workdir`` with ``stop`` (and ``vdd``'s dc value) replaced."""
    sim = suite.prepare("ring", workdir, stop=stop)
    if vdd is not None:
        text, n = _VDD.subn(lambda m: m.group(1) + repr(float(vdd)), sim.read_text())
        if n != 1:
            raise SystemExit(f"{sim}: expected one 'vdd (vdd 0) vsource dc=' line")
        sim.write_text(text)
    return sim


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stop", default="1u", help="transient stop (the netlist's: 1u)")
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--vmin", type=float, default=1.0)
    ap.add_argument("--vmax", type=float, default=1.4)
    ap.add_argument("--no-check", action="store_true", help="skip the sequential runs")
    ap.add_argument("--cpu", type=int, default=0, metavar="K", help="also CPU time, best of K")
    args = ap.parse_args()
    from va2jax.sim import BatchSweep

    vdds = np.linspace(args.vmin, args.vmax, args.lanes)
    with tempfile.TemporaryDirectory(prefix="ring-vmap-") as d:
        vc = [suite.run_vacask(ring_copy(Path(d) / f"vacask{i}", args.stop, v))
              for i, v in enumerate(vdds)]
        net = ring_copy(Path(d) / "va2jax", args.stop)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(postprocess|embed)")
            bs = BatchSweep(net, ["vdd"])
        build_s = time.perf_counter() - t0
        decl = next(a for a in bs.circuit.analyses if a.kind == "tran")
        stop = bs.sim._num(decl, "stop")
        step, maxstep = bs.sim._num(decl, "step"), bs.sim._num(decl, "maxstep")
        method = bs.sim._str(decl, "method", bs.opts.tran_method)
        # room for every lane's points: VACASK's largest count and 25 % more
        max_points = int(1.25 * max(r.points for r in vc)) + 64
        kw = dict(step=step, maxstep=maxstep, method=method, max_points=max_points)
        bat = bs.tran({"vdd": vdds}, stop, mode="vmap", **kw)
        seq = None if args.no_check else bs.tran({"vdd": vdds}, stop, mode="sequential", **kw)
    pts = int(np.sum(bat.npoints))
    us_o = 1e6 * bat.run_s / pts
    us_v = 1e6 * sum(r.analysis_s for r in vc) / sum(r.points for r in vc)
    print(f"PSP103 ring, stop={args.stop}, {args.lanes} lanes vdd {args.vmin}…{args.vmax} V")
    print(f"{'vdd V':>6s} | {'points':>7s} {'NR it':>7s} {'rej':>4s} | {'points':>7s} {'NR it':>7s} "
          f"{'rej':>4s} {'run s':>6s} | lane = single run")
    for i, v in enumerate(vdds):
        same = "-"
        if seq is not None:
            tb, xb = bat.lane(i)
            ts, xs = seq.lane(i)
            if tb.shape == ts.shape and np.array_equal(tb, ts) and np.array_equal(xb, xs):
                same = "bit-identical"
            elif tb.shape != ts.shape:
                same = f"points differ ({tb.size} vs {ts.size})"
            else:
                same = (f"max |Δt| {np.max(np.abs(tb - ts)):.3g} s, "
                        f"max |Δx| {np.max(np.abs(xb - xs)):.3g}")
        print(f"{v:6.3f} | {int(bat.npoints[i]):7d} {int(bat.iterations[i]):7d} "
              f"{int(bat.rejected[i]):4d} | {vc[i].points:7d} {vc[i].iterations:7d} "
              f"{vc[i].rejected:4d} {vc[i].analysis_s:6.2f} | {same}")
    print(f"va2jax vmap: build {build_s:.1f} s, compile {bat.compile_s:.1f} s, run {bat.run_s:.2f} s, "
          f"{pts} lane-points, {us_o:.1f} µs/circuit-step")
    print(f"VACASK 8 runs: {sum(r.analysis_s for r in vc):.2f} s, "
          f"{sum(r.points for r in vc)} points, {us_v:.1f} µs/circuit-step")
    if seq is not None:
        print(f"va2jax sequential (same function, one set per call): run {seq.run_s:.2f} s, "
              f"{1e6 * seq.run_s / max(int(np.sum(seq.npoints)), 1):.1f} µs/circuit-step")
    print(f"ratio va2jax vmap / VACASK per circuit-step: {us_o / us_v:.2f}")
    if args.cpu:
        _cpu(args, bs, vdds, stop, kw)


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cpu(args, bs, vdds, stop, kw) -> None:
    """CPU time per circuit-step of the vmapped batch and of VACASK's runs (see the module doc)."""
    import jax
    import jax.numpy as jnp

    from va2jax.sim.engine import loop_compiler_options

    p = jnp.asarray(vdds[:, None])

    def batch(stop_s: float) -> tuple[float, dict]:
        # compiled as BatchSweep.tran(mode="vmap") compiles it (the simulator's loop options)
        fn = jax.jit(jax.vmap(bs.tran_function(stop_s, **kw))).lower(p).compile(
            compiler_options=loop_compiler_options())
        best = None
        for _ in range(args.cpu):
            c0 = time.process_time()
            out = jax.block_until_ready(fn(p))
            c = time.process_time() - c0
            best = c if best is None else min(best, c)
        return best, out

    best, out = batch(stop)
    best0, out0 = batch(0.01e-9)
    best -= best0
    pts = int(np.sum(out["npoints"])) - int(np.sum(out0["npoints"]))
    cpu_v = pts_v = 0.0
    with tempfile.TemporaryDirectory(prefix="ring-vmap-cpu-") as d:
        for i, v in enumerate(vdds):
            b = None
            for _ in range(args.cpu):
                c0 = _child_cpu()
                r0 = suite.run_vacask(ring_copy(Path(d) / f"t{i}", "0.01n", v))
                c1 = _child_cpu()
                r = suite.run_vacask(ring_copy(Path(d) / f"v{i}", args.stop, v))
                c = (_child_cpu() - c1) - (c1 - c0)
                b = c if b is None else min(b, c)
            cpu_v += b
            pts_v += r.points - r0.points
    us_o, us_v = 1e6 * best / pts, 1e6 * cpu_v / pts_v
    print(f"CPU time: va2jax vmap {us_o:.1f} µs/circuit-step ({pts} lane-points, "
          f"{int(np.sum(out['iterations']))} iterations), VACASK {us_v:.1f} µs/circuit-step: "
          f"ratio {us_o / us_v:.2f}")


if __name__ == "__main__":
    main()
