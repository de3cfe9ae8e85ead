"""The operating point's continuation (``sim/engine.py::dc_op``): with a Newton iteration limit too
small for plain Newton, gmin stepping and source stepping must still reach the operating point,
and the batched sweep (same traced function, vmapped) must take the same path.

Expected value: the analytic solution of (V_s − V)/R = I_S·(exp(V/V_t) − 1) + gmin·V at 300.15 K
(built-in SPICE diode, n = 1, gmin = 1e-12 S, no series resistance).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from va2jax.sim import Simulation, sweep
from va2jax.sim.engine import OpStatus

NET = """diode through a resistor, tight iteration limit
load "spice/diode.osdi"
load "resistor.osdi"
model r resistor
model d sp_diode is=1e-14 n=1 rs=0
model vsource vsource
v1 (a 0) vsource dc={v}
r1 (a k) r r=100
d1 (k 0) d
control
  options op_itl={itl} limiting=0
  analysis op1 op
endc
"""


def _exact(v: float, r: float = 100.0) -> float:
    vt = 1.380649e-23 * 300.15 / 1.602176634e-19
    return brentq(lambda x: (v - x) / r - 1e-14 * math.expm1(x / vt) - 1e-12 * x, 0.0, v, xtol=1e-15)


@pytest.mark.parametrize("itl", [6, 100])
def test_stepping_reaches_the_analytic_point(tmp_path, itl):
    p = tmp_path / "d.sim"
    p.write_text(NET.format(v=5.0, itl=itl))
    res = Simulation.from_file(p, prefer="builtin").run()["op1"]
    # Newton's own tolerance: reltol·|V| + vntol = 1e-3·0.8 + 1e-6 V; the answer lands far inside
    assert abs(res["k"][0] - _exact(5.0)) < 1e-5, res["k"][0]
    if itl == 6:  # plain Newton from 0 V needs more than 6 iterations here (overshoot by volts)
        assert res.stats.newton_iterations > itl


def test_batched_lanes_take_the_same_path(tmp_path):
    p = tmp_path / "d.sim"
    p.write_text(NET.format(v=5.0, itl=6))
    vs = np.array([2.0, 5.0, 9.0])
    out = sweep(p, {"v1": vs}, ("op",), prefer="builtin")["op"]
    assert np.all(out.status == 0)
    for i, v in enumerate(vs):
        one = tmp_path / f"d{i}.sim"
        one.write_text(NET.format(v=v, itl=6))
        ref = Simulation.from_file(one, prefer="builtin").run()["op1"]
        # the same compiled algorithm on the same values: equal to rounding of the traced inputs
        np.testing.assert_allclose(out["k"][i], ref["k"][0], rtol=1e-12)
        assert abs(out["k"][i] - _exact(v)) < 1e-5


def test_status_codes_carry_messages():
    assert [int(s) for s in OpStatus] == [0, 1, 2]
    assert OpStatus(1).message == "singular matrix"
    assert "did not converge" in OpStatus.NO_CONVERGENCE.message
