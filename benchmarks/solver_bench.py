"""Newton's linear solver: dense LU vs sparse KLU (``options solver="klu"``) on RC ladders.

Prints, per ladder size, the ms per accepted time step of a pulse-driven RC ladder with each solver
(same netlist, same machine, one process), the compile times and the largest node-voltage
difference between the two runs on the dense run's time grid. Run::

    python benchmarks/solver_bench.py [--sizes 25,100,400]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def ladder(n: int, solver: str) -> str:
    """An n-section RC ladder (1 kΩ, 1 nF per section) driven by a 1 V pulse train."""
    lines = [f"RC ladder, {n} sections", 'load "resistor.osdi"', 'load "capacitor.osdi"',
             "model r resistor", "model c capacitor", "model vsource vsource",
             'vs (n0 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=0 rise=1u fall=1u width=50u period=100u']
    for k in range(n):
        lines.append(f"r{k} (n{k} n{k + 1}) r r=1k")
        lines.append(f"c{k} (n{k + 1} 0) c c=1n")
    lines += ["control", f'  options tran_method="trap" solver="{solver}"',
              "  analysis tran1 tran step=0.5u stop=200u maxstep=2u", "endc", ""]
    return "\n".join(lines)


def run(n: int, solver: str):
    from va2jax.sim import simulate

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"ladder{n}.sim"
        p.write_text(ladder(n, solver))
        t0 = time.perf_counter()
        res = simulate(p)
        wall = time.perf_counter() - t0
    tr = res["tran1"]
    return tr, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="25,100,400")
    args = ap.parse_args()
    from rich.console import Console
    from rich.table import Table

    table = Table(title="RC ladder transient: dense LU vs KLU (ms per accepted step; compile separately)")
    for col in ("sections", "unknowns", "points", "dense ms/step", "klu ms/step", "dense/klu",
                "dense compile s", "klu compile s", "max |Δv| (V)"):
        table.add_column(col, justify="right")
    for n in (int(s) for s in args.sizes.split(",")):
        (a, wa), (b, wb) = run(n, "dense"), run(n, "klu")
        ma = a.stats.run_s / max(len(a.scale) - 1, 1) * 1e3
        mb = b.stats.run_s / max(len(b.scale) - 1, 1) * 1e3
        diff = max(float(np.max(np.abs(a.data[:, i] - np.interp(a.scale, b.scale, b.data[:, i]))))
                   for i in range(a.data.shape[1]) if not a.names[i].endswith(")"))
        table.add_row(str(n), str(a.data.shape[1]), f"{len(a.scale)}/{len(b.scale)}", f"{ma:.3f}",
                      f"{mb:.3f}", f"{ma / mb:.2f}×", f"{wa - a.stats.run_s:.1f}",
                      f"{wb - b.stats.run_s:.1f}", f"{diff:.1e}")
    Console(width=170).print(table)


if __name__ == "__main__":
    main()
