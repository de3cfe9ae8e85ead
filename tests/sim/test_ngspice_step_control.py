"""ngspice's transient step control (``tran_control="ngspice"``, the SPICE reader's default;
``sim/_tran_ngspice.py``): small SPICE circuits, each exercising some of its rules, run through
va2jax and through ngspice-39 itself; the accepted time points, rejections and Newton iterations
must be ngspice's.

Tolerances: both simulators perform the same floating-point operations on the same time grid up
to the order of the sums in the linear solve (ngspice's sparse LU vs va2jax's dense one), so the
accepted times agree to rounding amplified by the step control (measured ≤ 2.5e-13 of ``stop``;
asserted 1e-9) and the waveforms to rounding (measured ≤ 1.3e-13 V; asserted 1e-9 V).
Iterations: va2jax's count includes the operating point's Newton iterations (2 in each circuit
here, 0 with ``uic``), ngspice's "Transient iterations" does not.
"""
from __future__ import annotations

import numpy as np
import pytest
import suite

_CTRL = """.control
tran {tran}
rusage all
quit
.endc
.end
"""

# name → (netlist without the .control block, tran arguments, rules exercised)
CASES = {
    # first step min(tstop/100, tstep)/10 cut by 10 at t = 0, breakpoints of a pulse (step after a
    # breakpoint 0.1·min(saved step, gap)), trapezoidal LTE of a grounded capacitor's charge, LTE
    # rejections (2)
    "rc_pulse": ("""RC pulse, trapezoidal
v1 in 0 pulse(0 1 1u 1u 1u 0.2m 0.5m)
r1 in out 1k
c1 out 0 100n
""", "10u 1m"),
    # the same with ngspice's tolerances set: trtol and reltol reach the step control
    "rc_pulse_options": ("""RC pulse, trtol and reltol
v1 in 0 pulse(0 1 1u 1u 1u 0.2m 0.5m)
r1 in out 1k
c1 out 0 100n
.options trtol=1 reltol=1e-4
""", "10u 1m"),
    # the same with uic: no operating point, a breakpoint at tstep
    "rc_uic": ("""RC pulse, uic
v1 in 0 pulse(0 1 1u 1u 1u 0.2m 0.5m)
r1 in out 1k
c1 out 0 100n
""", "10u 1m uic"),
    # Gear-2, a diode's junction charge (an OpenVAF implicit equation), order raise from 1 to 2,
    # Newton with pnjlim limiting against the predicted junction voltage, rejections (6)
    "halfwave_gear": (""".model dd d is=1e-14 rs=1 cjo=10p m=0.5 n=1
vs in 0 sin(0 5 10k)
d1 in out dd
c1 out 0 1u
r1 out 0 1k
.options method=gear
""", "1u 300u"),
    # trapezoidal with a diode, pwl breakpoints
    "halfwave_trap_pwl": (""".model dd d is=1e-14 rs=1 cjo=10p m=0.5 n=1
vs in 0 pwl(0 0 20u 5 50u 5 60u -5 100u -5 110u 3)
d1 in out dd
c1 out 0 1u
r1 out 0 1k
""", "1u 150u"),
    # an inductor's flux and a floating capacitor's charge as LTE states (neither is a node's
    # charge): the charge states are per element, not per node
    "rlc_floating": ("""RLC
v1 in 0 pulse(0 1 0 1u 1u 20u 50u)
r1 in a 10
l1 a b 100u
c1 b c 1u
c2 c 0 2u
r2 c 0 100
""", "0.5u 100u"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_points_as_ngspice(tmp_path, case):
    if suite.ngspice_cmd() is None:
        pytest.skip("ngspice not installed")
    body, tran = CASES[case]
    if not body.startswith("RC") and not body.startswith("RLC"):
        body = f"{case}\n" + body
    net = tmp_path / "t.sim"
    net.write_text(body + _CTRL.format(tran=tran))
    ref = suite.run_ngspice(net)
    mine = suite.run_va2jax(net)
    uic = "uic" in tran
    assert mine.rejected == ref.rejected
    assert mine.points == ref.points
    assert 0 <= mine.iterations - ref.iterations <= (0 if uic else 2)
    tn, tm = ref.signals["time"], mine.signals["time"]
    if uic:  # ngspice writes no t = 0 row after a uic start; va2jax does
        tm = tm[1:]
    assert len(tm) == len(tn)
    stop = tn[-1]
    assert np.max(np.abs(tm - tn)) <= 1e-9 * stop
    for node, v in ref.signals.items():
        if node == "time" or node not in mine.signals:
            continue
        w = mine.signals[node][1:] if uic else mine.signals[node]
        assert np.max(np.abs(w - v)) <= 1e-9, node


def test_vacask_control_selectable(tmp_path):
    """``.options tran_control=vacask`` (va2jax's option) runs a SPICE netlist with VACASK's
    control instead (docs/sim.md "Transient"): its first step is ``tran_fs·min(tstep, tmax,
    tran_fbr·t_bp1)`` = 0.1·0.2501·1 µs (the SPICE reader's ``tran_fs``; the first pulse corner
    at 1 µs), where ngspice's is ``min(min(tstop/100, tstep)/10, gap/10)/10`` = 10 ns (the gap to
    that corner)."""
    from va2jax.sim import Simulation

    body, tran = CASES["rc_pulse"]
    net = tmp_path / "t.sim"
    net.write_text(body + ".options tran_control=vacask\n" + _CTRL.format(tran=tran))
    t_vacask = suite.run_va2jax(net).signals["time"]
    assert t_vacask[1] == pytest.approx(0.1 * 0.2501 * 1e-6, rel=1e-12)
    net.write_text(body + _CTRL.format(tran=tran))
    assert Simulation.from_file(net).options.tran_control == "ngspice"
    assert suite.run_va2jax(net).signals["time"][1] == pytest.approx(1e-8, rel=1e-12)
    net.write_text(body + ".options tran_control=spectre\n" + _CTRL.format(tran=tran))
    with pytest.raises(Exception, match=r"t.sim:\d+: option tran_control=spectre"):
        Simulation.from_file(net)


def test_native_step_kernel_refuses_ngspice_control(tmp_path):
    """The native step kernel implements VACASK's control only: with ngspice's the transient runs
    in the XLA loop (docs/sim.md "Transient"), whatever ``VA2JAX_SIM_NATIVE_STEP`` says."""
    from va2jax.sim import Simulation

    body, tran = CASES["rc_pulse"]
    net = tmp_path / "t.sim"
    net.write_text(body + _CTRL.format(tran=tran))
    with pytest.warns(UserWarning):
        s = Simulation.from_file(net)
    s.run()
    kernels = [k for k in s.engine._tran_kernels.values() if hasattr(k, "control")]
    assert [(k.control, k.native) for k in kernels] == [("ngspice", False)]


def test_options_round_trip_keeps_lteratio_and_trtol():
    """``Options.from_dict(asdict(o))`` is ``o``: SPICE's ``trtol`` sets both VACASK's lteratio
    and ngspice's factor, and a merged dict of all fields (as ``sim.function(options=…)`` makes)
    must not reset one from the other (it once turned ``tran_lteratio=1e12`` into 7)."""
    import dataclasses

    from va2jax.sim.engine import Options

    o = Options.from_dict({"trtol": 5, "tran_lteratio": 1e12})
    assert (o.ng_trtol, o.tran_lteratio) == (5.0, 1e12)
    assert Options.from_dict(dataclasses.asdict(o)) == o
    o2 = Options.from_dict({**dataclasses.asdict(o), "tran_lteratio": 3.5})
    assert (o2.ng_trtol, o2.tran_lteratio) == (5.0, 3.5)
