"""VACASK's benchmark suite, ngspice netlists (``tests/data/vacask_suite/*/ngspice/runme.sim``),
run unchanged but for a shorter ``tstop`` through va2jax and through ngspice itself (issue 16,
done-when 2: within 1 mV of ngspice at the plotted nodes on a common time grid)."""
from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from sim_peers import ROOT, max_diff

from va2jax.sim import Simulation
from va2jax.sim.rawfile import read_raw

SUITE = ROOT / "tests" / "data" / "vacask_suite"


def shortened(circuit: str, stop: str, workdir: Path, options: str = "") -> Path:
    """The suite's ngspice netlist of ``circuit`` copied to ``workdir`` (with its include files)
    with only the ``tstop`` of its ``tran`` command changed (``options``: words added to its ``.options`` line, used
    for a tighter reference only)."""
    text = (SUITE / circuit / "ngspice" / "runme.sim").read_text()
    text, n = re.subn(r"^(\s*tran\s+\S+\s+)\S+", rf"\g<1>{stop}", text, count=1, flags=re.M | re.I)
    assert n == 1
    if options:
        text, n = re.subn(r"^(\.options .*)$", rf"\1 {options}", text, count=1, flags=re.M)
        assert n == 1
    for inc in (SUITE / circuit / "ngspice").glob("*.inc"):  # models.inc, multiplier.inc
        shutil.copy(inc, workdir)
    dst = workdir / "runme.sim"
    dst.write_text(text)
    return dst


def ngspice_control(netlist: Path) -> dict:
    """Run ngspice in batch mode on a netlist whose ``.control`` block runs the analysis and
    then ``rusage`` (as the suite's do): a ``.spiceinit`` beside it makes ``rusage`` write the
    vectors to ``ng.raw`` (batch mode writes no rawfile for a ``.control`` block), so the
    netlist itself stays unchanged."""
    exe = shutil.which("ngspice")
    if exe is None:
        pytest.skip("ngspice not installed")
    (netlist.parent / ".spiceinit").write_text("alias rusage write ng.raw\n")
    proc = subprocess.run([exe, "-b", netlist.name], cwd=netlist.parent, capture_output=True,
                          text=True, timeout=300)
    raw = netlist.parent / "ng.raw"
    assert proc.returncode == 0 and raw.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return read_raw(raw)[0]


def ours(netlist: Path) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the .control commands other than tran (rusage, …)
        return Simulation.from_file(netlist).run()["tran1"]


def _diff(a: dict, b: dict, pair: tuple[str, str], ng_a: bool, ng_b: bool) -> float:
    def wave(r: dict, ng: bool) -> np.ndarray:
        v = [r[f"v({n})" if ng else n] if n != "0" else 0.0 for n in pair]
        return v[0] - v[1]

    return max_diff(a["time"], wave(a, ng_a), b["time"], wave(b, ng_b))


# rc: the first 10 ms (5 pulse periods); graetz: one 50 Hz period. The nodes: those the netlists
# plot (rc: v(1) v(2); graetz: v(outp,outn)) and the input.
@pytest.mark.parametrize("circuit, stop, pairs", [
    ("rc", "10m", [("1", "0"), ("2", "0")]),
    ("graetz", "20m", [("outp", "outn"), ("inp", "inn")]),
])
def test_suite_vs_ngspice(tmp_path, circuit, stop, pairs):
    net = shortened(circuit, stop, tmp_path)
    mine = ours(net)
    ref = ngspice_control(net)
    for pair in pairs:
        # 1 mV: issue 16's criterion; both simulators control the local truncation error to
        # reltol = 1e-3 of the signal (≈ 1 V rc, 20 V graetz) per step, and the waveforms are
        # smooth between the corners both land on (measured: 1.2e-5 V rc, 9.5e-6 V graetz)
        d = _diff(mine, ref, pair, False, True)
        assert d < 1e-3, (pair, d)


def test_mul_vs_ngspice(tmp_path):
    """mul (diode voltage multiplier, r1 = 0.01 Ω): the 1 mV criterion is below ngspice's own
    time-discretisation error on this netlist — ngspice with ``reltol=1e-5`` differs from
    ngspice as written by up to 23 mV in the first 20 µs (39 mV by 100 µs): each diode turns on
    within a few ns through 0.01 Ω and the charge moved then depends on the step control. So
    the check is that va2jax is at least as close as ngspice itself to that tighter ngspice
    answer (measured at 20 µs: va2jax ≤ 7.1 mV from it, ngspice ≤ 22.7 mV; va2jax − ngspice
    ≤ 17.5 mV)."""
    net = shortened("mul", "20u", tmp_path)
    mine = ours(net)
    ref = ngspice_control(net)
    tight_dir = tmp_path / "tight"
    tight_dir.mkdir()
    tight = ngspice_control(shortened("mul", "20u", tight_dir, "reltol=1e-5"))
    for node in ("1", "10", "2", "20"):
        pair = (node, "0")
        ng_err = _diff(ref, tight, pair, True, True)
        my_err = _diff(mine, tight, pair, False, True)
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
    from sim_peers import run_vacask

    net = shortened("ring", "20n", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mine = Simulation.from_file(net, prefer="osdi").run()["tran1"]
    vdir = tmp_path / "vacask"
    vdir.mkdir()
    shutil.copy(SUITE / "ring" / "vacask" / "models.inc", vdir)
    text = (SUITE / "ring" / "vacask" / "runme.sim").read_text()
    text, n = re.subn(r"(analysis tran1 tran .*stop=)1u", r"\g<1>20n", text)
    assert n == 1
    text = re.sub(r"(?m)^\s*postprocess.*$", "", text)  # its script plots (matplotlib)
    (vdir / "runme.sim").write_text(text)
    ref = run_vacask(vdir / "runme.sim", vdir)
    p_mine = _periods(mine["time"], mine["1"], 0.6, 6e-9)
    p_ref = _periods(ref["time"], ref["1"], 0.6, 6e-9)
    assert len(p_mine) >= 3 and len(p_ref) >= 3
    # 0.1 %: issue 16's criterion (the last full period of each, steady oscillation)
    assert abs(p_mine[-1] / p_ref[-1] - 1) < 1e-3, (p_mine, p_ref)
