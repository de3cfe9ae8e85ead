"""Waveform checks against VACASK and ngspice (and analytic formulas)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sim_peers import CIRCUITS, max_diff, run_ngspice, run_vacask

from va2jax.sim import Simulation


def _sim(name: str, models: str = "auto"):
    return Simulation.from_file(CIRCUITS / name, prefer=models).run()


def test_rc_vs_vacask(tmp_path):
    ours = _sim("rc.sim")["tran1"]
    ref = run_vacask(CIRCUITS / "rc.sim", tmp_path)
    for node in ("in", "out"):
        assert max_diff(ours["time"], ours[node], ref["time"], ref[node]) < 1e-3


def test_rc_vs_ngspice(tmp_path):
    ours = _sim("rc.cir")["tran1"]
    ref = run_ngspice(CIRCUITS / "rc.cir", tmp_path)
    for node in ("in", "out"):
        assert max_diff(ours["time"], ours[node], ref["time"], ref[f"v({node})"]) < 1e-3


def test_rc_analytic_first_edge():
    """Before the first falling edge: v_out = 1 − exp(−t/RC) (up to the 1 µs ramp)."""
    res = _sim("rc.sim")["tran1"]
    t = res["time"]
    sel = (t > 0.1e-3) & (t < 0.9e-3)
    tau = 1e3 * 1e-6
    # exact response to a ramp of duration tr followed by a constant
    tr = 1e-6
    exact = 1 - (tau / tr) * (np.exp(-(t[sel] - tr) / tau) - np.exp(-t[sel] / tau))
    assert np.max(np.abs(res["out"][sel] - exact)) < 1e-3


def test_rc_ac_corner():
    """AC: |H(f)| = 1/sqrt(1 + (2πfRC)²) for the RC low-pass."""
    import tempfile
    from pathlib import Path

    net = (CIRCUITS / "rc.sim").read_text().replace(
        "analysis tran1 tran step=1u stop=10m maxstep=20u", "analysis ac1 ac from=1 to=1meg mode=\"dec\" points=10"
    ).replace('vsource dc=0 type="pulse"', 'vsource dc=0 mag=1 type="pulse"')
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "rc_ac.sim"
        p.write_text(net)
        res = Simulation.from_file(p).run()["ac1"]
    f = res["frequency"]
    h = np.abs(res["out"])
    exact = 1 / np.sqrt(1 + (2 * math.pi * f * 1e-3) ** 2)
    assert np.max(np.abs(h - exact)) < 1e-9


@pytest.mark.parametrize("models", ["builtin", pytest.param("osdi", marks=pytest.mark.slow)])
def test_graetz_vs_vacask(tmp_path, models):
    ours = _sim("graetz.sim", models)["tran1"]
    ref = run_vacask(CIRCUITS / "graetz.sim", tmp_path)
    for a, b in (("outp", "outn"), ("inp", "inn")):
        d = max_diff(ours["time"], ours[a] - ours[b], ref["time"], ref[a] - ref[b])
        assert d < 1e-3, (a, b, d)


def test_graetz_vs_ngspice(tmp_path):
    ours = _sim("graetz.cir", "builtin")["tran1"]
    ref = run_ngspice(CIRCUITS / "graetz.cir", tmp_path)
    for a, b in (("outp", "outn"), ("inp", "inn")):
        d = max_diff(ours["time"], ours[a] - ours[b], ref["time"], ref[f"v({a})"] - ref[f"v({b})"])
        assert d < 1e-3, (a, b, d)


def test_diode_dc_sweep_vs_vacask(tmp_path):
    net = tmp_path / "dsw.sim"
    net.write_text("""diode dc sweep
load "resistor.osdi"
load "spice/diode.osdi"
model r resistor
model vsource vsource
model dpwr sp_diode ( is=76.9p rs=42.0m cjo=26.5p m=0.333 n=1.45 )
v1 (a 0) vsource dc=0
r1 (a b) r r=1
d1 (b 0) dpwr
control
  sweep s1 instance="v1" parameter="dc" from=-2 to=2 step=0.05
  analysis dc1 op
endc
""")
    ours = Simulation.from_file(net).run()["dc1"]
    ref = run_vacask(net, tmp_path, "dc1")
    # VACASK's sweep stops Newton at reltol=1e-3 (relative): compare within that
    assert np.max(np.abs(ours["b"] - ref["b"]) / (np.abs(ref["b"]) + 1e-3)) < 1e-3


@pytest.mark.slow
def test_multiplier_vs_vacask(tmp_path):
    ours = _sim("multiplier.sim")["tran1"]
    ref = run_vacask(CIRCUITS / "multiplier.sim", tmp_path)
    for node in ("1", "10", "2", "20"):
        d = max_diff(ours["time"], ours[node], ref["time"], ref[node])
        assert d < 1e-3, (node, d)


@pytest.mark.slow
def test_multiplier_vs_ngspice(tmp_path):
    ours = _sim("multiplier.cir", "builtin")["tran1"]
    ref = run_ngspice(CIRCUITS / "multiplier.cir", tmp_path)
    for node in ("1", "10", "2", "20"):
        d = max_diff(ours["time"], ours[node], ref["time"], ref[f"v({node})"])
        assert d < 1e-3, (node, d)
