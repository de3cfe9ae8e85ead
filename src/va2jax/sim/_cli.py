"""``va2jax sim CIRCUIT [-o out.raw] [--csv out.csv] [--plot out.png]``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..errors import Va2JaxError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="simulate a circuit (VACASK .sim or SPICE netlist)",
                       description="Run every analysis of a netlist and write the results.")
    p.add_argument("circuit", help="netlist file: .cir/.sp/.spice are SPICE, others (.sim) VACASK "
                                   "or SPICE by their content (docs/sim.md)")
    p.add_argument("-o", "--output", help="binary rawfile with all analyses "
                                          "(default: NAME.raw per analysis next to the netlist)")
    p.add_argument("--csv", help="CSV file (one per analysis: the analysis name is inserted when "
                                 "there are several)")
    p.add_argument("--plot", help="PNG plot of the first transient/dc/ac analysis")
    p.add_argument("--models", choices=("auto", "va", "osdi", "builtin"), default=None,
                   help="where `load`ed models come from (default auto: generated JAX, else OSDI)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_run)


def _suffixed(path: str, name: str, many: bool) -> Path:
    """``path`` with ``_<analysis name>`` inserted before its suffix when there are ``many``
    (the name comes from the netlist: only its sanitised form, see :func:`safe_stem`)."""
    from .._paths import path_inside, safe_stem

    p = Path(path)
    return path_inside(p.parent, f"{p.stem}_{safe_stem(name)}{p.suffix}") if many else p


def _writes(sim, decl) -> bool:
    """Whether analysis ``decl`` writes its rawfile (VACASK's ``write``, default 1)."""
    for k, v in decl.params.items():
        if k.lower() == "write" and decl.kind in ("op", "ac", "tran", "dc", "dcinc", "dcxf",
                                                  "acxf", "noise", "hb"):
            from .expr import ExprError, evaluate
            from .netlist import NetlistError

            try:
                return bool(evaluate(v, sim.scope(decl), dialect="vacask"))
            except ExprError as exc:
                raise NetlistError(decl.loc, f"analysis {decl.name}: write: {exc}") from None
    return True


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from . import Simulation
    from .engine import ConvergenceError
    from .rawfile import write_csv, write_raw

    console = Console(stderr=True)
    t0 = time.perf_counter()
    sim = Simulation.from_file(args.circuit, prefer=args.models)
    if not sim.circuit.analyses:
        hint = ("a .op/.dc/.ac/.tran card, or op/dc/ac/tran in its .control block"
                if sim.circuit.dialect == "spice" else
                "a control block with 'analysis NAME op|dc|tran|ac ...'")
        raise Va2JaxError(f"{args.circuit}: no analysis in the netlist (add {hint})")
    show = not args.no_progress and console.is_terminal
    results = {}
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>5.1f}%"),
                  TimeElapsedColumn(), console=console, disable=not show, transient=True) as prog:
        tasks: dict[str, int] = {}

        def cb(name: str, t: float, stop: float) -> None:
            if name not in tasks:
                tasks[name] = prog.add_task(f"tran {name}", total=stop)
            prog.update(tasks[name], completed=t)

        failed = None
        for decl in (d for a in sim.circuit.analyses for d in sim.with_writeop(a)):
            try:
                res = sim.run_or_go_on(decl, cb)  # VACASK's abort mode may go on after a failure
            except ConvergenceError as e:
                if e.partial is None:
                    raise
                # a transient that stopped: what was simulated goes to the output file, then
                # the error (and no later analysis)
                results[decl.name], failed = e.partial, e
                break
            if res is not None:
                results[decl.name] = res
    total = time.perf_counter() - t0
    res_list = list(results.values())
    quiet = {d.name for d in sim.circuit.analyses if not _writes(sim, d)}  # VACASK's write=0
    to_write = [r for r in res_list if r.name not in quiet]
    where: dict[str, Path] = {}  # analysis name → the file holding its result
    if args.output:
        write_raw(args.output, to_write, title=sim.circuit.title,
                  dialect=sim.circuit.dialect)
        where = {r.name: Path(args.output) for r in to_write}
    else:
        from .._paths import path_inside, safe_stem

        outdir = Path(args.circuit).resolve().parent
        ops = {f"{d.name}.op" for d in sim.circuit.analyses}  # VACASK's writeop: NAME.op.raw
        for r in to_write:  # the analysis name comes from the netlist: never a path
            stem = f"{safe_stem(r.name[:-3])}.op" if r.name in ops else safe_stem(r.name)
            where[r.name] = path_inside(outdir, f"{stem}.raw")
            write_raw(where[r.name], [r], title=sim.circuit.title, dialect=sim.circuit.dialect)

    def kept(exc: Exception) -> Exception:
        """A transient's failure, naming the file that holds its points before it."""
        part = getattr(exc, "partial", None)
        return ConvergenceError(f"{exc} in {where[part.name]}") if part is not None and \
            part.name in where else exc

    if failed is not None:
        raise kept(failed)
    if args.csv:
        for r in res_list:
            write_csv(_suffixed(args.csv, r.name, len(res_list) > 1), r)
    if args.plot:
        _plot(args.plot, res_list, sim.circuit.title)
    compile_s = sim.engine.compile_s
    for line in sim.library.summary():  # which implementation each loaded module uses
        print(line, file=sys.stderr)
    for r in res_list:
        s = r.stats
        extra = f", {s.rejected} rejected" if r.kind == "tran" else ""
        print(f"{r.kind} {r.name}: {s.points} points{extra}, {s.newton_iterations} Newton "
              f"iterations, {s.run_s:.3f} s", file=sys.stderr)
    run_s = sum(r.stats.run_s for r in res_list)
    print(f"wall time {total:.3f} s: JIT compile {compile_s:.3f} s, run {run_s:.3f} s, "
          f"parse/setup/output {total - compile_s - run_s:.3f} s", file=sys.stderr)
    if len(res_list) == 1 and (res_list[0].kind == "op" or (
            res_list[0].kind in ("dcinc", "dcxf", "tf") and res_list[0].data.shape[0] == 1)):
        r = res_list[0]
        for nm, v in zip(r.names, r.data[0]):
            print(f"{nm} = {v:.6g}")
    if sim.failures:  # analyses VACASK's abort mode went on after: the run failed
        raise kept(sim.failures[0])
    return 0


def _plot(path: str, results: list, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    res = next((r for r in results if r.kind in ("tran", "dc", "ac")
                or (r.kind == "acxf" and r.scale is not None)), None)
    if res is None:
        raise Va2JaxError("--plot needs a tran, dc, ac or acxf analysis")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    volt = [i for i, n in enumerate(res.names) if ":flow(" not in n and ":" not in n
            and (res.kind != "acxf" or n.startswith("tf("))][:8]
    for i in volt:
        y = res.data[:, i]
        if np.iscomplexobj(y):
            ax.semilogx(res.scale, 20 * np.log10(np.abs(y) + 1e-300), label=res.names[i])
        else:
            ax.plot(res.scale, y, label=res.names[i])
    ax.set_xlabel(res.scale_name or "")
    ax.set_ylabel("dB" if res.kind in ("ac", "acxf") else "V")
    ax.set_title(f"{title} — {res.name}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
