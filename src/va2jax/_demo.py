"""``va2jax demo``: compile the bundled diode, load it through the OSDI reference and print I–V."""
from __future__ import annotations

import argparse

import numpy as np

from ._paths import data_dir


def diode_iv(vmin: float = 0.0, vmax: float = 0.8, points: int = 9, rs: float = 0.0,
             temperature: float = 300.15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I–V of the bundled diode via OSDI: returns (V_ac in V, I_a in A, dI/dV in S)."""
    from .osdi import compile_va_to_osdi, load_library

    lib = load_library(compile_va_to_osdi(data_dir() / "diode.va"))
    inst = lib.module().instance({"rs": rs}, temperature=temperature)
    a = inst.module.node_index("a")
    volts = np.linspace(vmin, vmax, points)
    cur, g = np.zeros(points), np.zeros(points)
    for k, v in enumerate(volts):
        x = np.zeros(inst.module.num_nodes)
        x[a] = v
        if rs > 0:  # solve the internal node with a few Newton steps on its KCL row
            ai = inst.module.node_index("ai")
            x[ai] = min(v, 0.6)
            for _ in range(100):
                r = inst.eval(x)
                dx = -r.residual_resist[ai] / r.jacobian_resist[ai, ai]
                x[ai] += float(np.clip(dx, -0.1, 0.1))
                if abs(dx) < 1e-13:
                    break
        r = inst.eval(x)
        cur[k] = r.residual_resist[a]
        J = r.jacobian_resist
        g[k] = J[a, a]
        if rs > 0:  # small-signal conductance seen at the terminal (eliminate the internal node)
            g[k] -= J[a, ai] * J[ai, a] / J[ai, ai]
    return volts, cur, g


def _cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    v, i, g = diode_iv(args.vmin, args.vmax, args.points, args.rs, args.temp)
    t = Table(title=f"bundled diode (OSDI reference), RS = {args.rs} Ω, T = {args.temp} K")
    for c in ("V (V)", "I (A)", "dI/dV (S)"):
        t.add_column(c, justify="right")
    for row in zip(v, i, g):
        t.add_row(f"{row[0]:.4f}", f"{row[1]:.6e}", f"{row[2]:.6e}")
    Console().print(t)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``va2jax demo``."""
    p = subparsers.add_parser("demo", help="compile the bundled diode and print an I-V table")
    p.add_argument("--vmin", type=float, default=0.0, help="first voltage (V)")
    p.add_argument("--vmax", type=float, default=0.8, help="last voltage (V)")
    p.add_argument("--points", type=int, default=9, help="number of points")
    p.add_argument("--rs", type=float, default=0.0, help="series resistance (Ohm)")
    p.add_argument("--temp", type=float, default=300.15, help="temperature (K)")
    p.set_defaults(func=_cmd_demo)
