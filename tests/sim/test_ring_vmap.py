"""The suite's PSP103 ring swept over its supply under ``sweep(..., mode="vmap")`` (issue 16,
done-when 4; the timing is ``benchmarks/ring_vmap_bench.py``): each lane against its single run.

The single run of a supply voltage is the same single-set transient compiled on its own and
called once per voltage (``mode="sequential"``); the lanes come out of one vmapped program.
Checked: each lane reaches ``stop`` with the same accepted points, Newton iterations and
rejections as its single run and bit-identical times and node voltages, and the supply actually
moved the circuit (the lanes' waveforms differ from each other).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import suite

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import ring_vmap_bench  # noqa: E402

STOP = "3n"  # start-up and the first edges through the chain (≈ 75 accepted points)
VDDS = np.array([1.0, 1.3])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from va2jax.sim import BatchSweep

    net = ring_vmap_bench.ring_copy(tmp_path_factory.mktemp("ring") / "va2jax", STOP)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*(postprocess|embed)")
        bs = BatchSweep(net, ["vdd"])
    kw = dict(step=0.05e-9, maxstep=0.05e-9, method="trap", max_points=400)
    return (bs.tran({"vdd": VDDS}, 3e-9, mode="vmap", **kw),
            bs.tran({"vdd": VDDS}, 3e-9, mode="sequential", **kw))


def test_lanes_equal_single_runs(runs):
    bat, seq = runs
    assert np.all(bat.status == 0) and np.all(seq.status == 0)
    np.testing.assert_array_equal(bat.npoints, seq.npoints)
    np.testing.assert_array_equal(bat.iterations, seq.iterations)
    np.testing.assert_array_equal(bat.rejected, seq.rejected)
    for i in range(len(VDDS)):
        tb, xb = bat.lane(i)
        ts, xs = seq.lane(i)
        assert tb[-1] == pytest.approx(3e-9, rel=1e-12)
        # bit for bit: the batched program computes each lane with the same operations as the
        # single one (sim/tran.py writes its vector ÷ scalar divisions as products with the
        # reciprocal, which XLA otherwise rewrites in one program and not in the other)
        np.testing.assert_array_equal(tb, ts)
        np.testing.assert_array_equal(xb, xs)
    # the supply reached the circuit: the lanes' node-1 waveforms are not the same
    n1 = bat.names.index("1")
    assert np.max(np.abs(bat.lane(0)[1][:, n1] - bat.lane(1)[1][:, n1][: bat.npoints[0]])) > 0.05


def test_lane_equals_simulator_run_at_nominal_start(runs, tmp_path):
    """The batch's operating point (every lane's first row) equals the ordinary simulator's on
    the netlist written with that supply (VACASK's run of the same netlist is the reference of
    the simulator itself: tests/sim/test_vacask_suite.py)."""
    from va2jax.sim import Simulation

    bat, _ = runs
    for i, v in enumerate(VDDS):
        net = ring_vmap_bench.ring_copy(tmp_path / f"v{i}", STOP, v)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*(postprocess|embed)")
            sim = Simulation.from_file(net)
        x0 = sim.engine.op(sim.system.source_vector(0.0))
        # the same dc_op on the same system; the batch assembles the supply's value traced
        # (b = p) and the simulator's constant: Newton stops within reltol, so both agree far
        # inside it (1e-9 V against reltol·1 V = 1 mV)
        np.testing.assert_allclose(bat.x[i, 0], x0, rtol=0, atol=1e-9)
    assert suite.SUITE.is_dir()
