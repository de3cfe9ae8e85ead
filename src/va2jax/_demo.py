"""``va2jax demo``: compile the bundled diode to JAX, validate it against the OSDI reference and
print the comparison summary and an I–V table computed with both."""
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


def diode_iv_jax(model, volts: np.ndarray, rs: float = 0.0, temperature: float = 300.15
                 ) -> tuple[np.ndarray, np.ndarray]:
    """I–V of the bundled diode with the generated JAX ``model`` (same procedure as
    :func:`diode_iv`, every voltage point evaluated as one instance of a batch)."""
    n = len(volts)
    a = model.nodes.index("a")
    st = model.setup({"rs": np.full(n, rs)}, temperature=np.full(n, temperature))
    x = np.zeros((n, len(model.nodes)))
    x[:, a] = volts
    if rs > 0:  # Newton on the internal node's KCL row, all points at once
        ai = model.nodes.index("ai")
        x[:, ai] = np.minimum(volts, 0.6)
        for _ in range(100):
            r = model.eval(st, x)
            dx = -np.asarray(r.residual_resist)[:, ai] / np.asarray(r.jacobian_resist)[:, ai, ai]
            x[:, ai] += np.clip(dx, -0.1, 0.1)
            if np.all(np.abs(dx) < 1e-13):
                break
    r = model.eval(st, x)
    J = np.asarray(r.jacobian_resist)
    cur = np.asarray(r.residual_resist)[:, a].copy()
    g = J[:, a, a].copy()
    if rs > 0:
        g -= J[:, a, ai] * J[:, ai, a] / J[:, ai, ai]
    return cur, g


def _cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .codegen import compile_va
    from .validate import validate_file
    from .validate._compare import REL_TOL

    console = Console()
    src = data_dir() / "diode.va"
    model = compile_va(src)
    res = validate_file(src, points=args.val_points, param_sets=args.param_sets, seed=0,
                        params={"cj0": 1e-12, "rs": 5.0}, temperature=args.temp)
    t = Table(title=f"{model.name}: generated JAX vs OSDI (openvaf-r), {res.points} points, "
                    f"{len(res.param_sets)} parameter sets")
    for c in ("output", "max rel error", "max abs error", f"≤ {REL_TOL:g}"):
        t.add_column(c, justify="right")
    for k, v in res.max_rel_err.items():
        t.add_row(k, f"{v:.2e}", f"{res.max_abs_err[k]:.2e}", "pass" if v <= REL_TOL else "FAIL")
    console.print(t)
    console.print("PASSED" if res.passed else "FAILED")

    v, i, g = diode_iv(args.vmin, args.vmax, args.points, args.rs, args.temp)
    ij, gj = diode_iv_jax(model, v, args.rs, args.temp)
    t = Table(title=f"bundled diode I–V, RS = {args.rs} Ω, T = {args.temp} K: JAX and OSDI")
    for c in ("V (V)", "I JAX (A)", "I OSDI (A)", "dI/dV JAX (S)", "dI/dV OSDI (S)"):
        t.add_column(c, justify="right")
    for row in zip(v, ij, i, gj, g):
        t.add_row(f"{row[0]:.4f}", f"{row[1]:.6e}", f"{row[2]:.6e}", f"{row[3]:.6e}", f"{row[4]:.6e}")
    console.print(t)
    return 0 if res.passed else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``va2jax demo``."""
    p = subparsers.add_parser("demo", help="compile the bundled diode to JAX, validate it against OSDI, print I-V")
    p.add_argument("--vmin", type=float, default=0.0, help="first voltage (V)")
    p.add_argument("--vmax", type=float, default=0.8, help="last voltage (V)")
    p.add_argument("--points", type=int, default=9, help="number of points")
    p.add_argument("--rs", type=float, default=0.0, help="series resistance (Ohm)")
    p.add_argument("--temp", type=float, default=300.15, help="temperature (K)")
    p.add_argument("--val-points", type=int, default=1000, help="validation points per parameter set")
    p.add_argument("--param-sets", type=int, default=3, help="validation parameter sets")
    p.set_defaults(func=_cmd_demo)
