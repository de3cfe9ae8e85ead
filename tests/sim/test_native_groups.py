"""Generated-model device groups evaluated by the native kernel through the XLA FFI (the CPU
default): the packing of the kernel's rows and the assembly of its outputs give exactly what
``Model.eval(backend="native")`` gives; circuits give VACASK's answers and the JAX path's."""
from __future__ import annotations

import jax
import numpy as np
import pytest
from sim_peers import CIRCUITS, max_diff, run_vacask

import va2jax
from va2jax._paths import corpus_dir
from va2jax.sim import BatchSweep, Simulation
from va2jax.sim.adapters import GeneratedModel

KEYS = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react",
        "lim_rhs_resist", "lim_rhs_react", "states")


@pytest.fixture(scope="module")
def sp_diode():
    """The SPICE diode of the corpus: $limit states (pnjlim) and a collapsible internal node."""
    return GeneratedModel(va2jax.compile_va(corpus_dir() / "bosdi" / "spice" / "diode.va"))


def _native_group(model, monkeypatch):
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "native")
    # rs = 0 collapses the internal anode onto the anode: the merged group has instances with
    # different node collapsing (per-instance gather tables)
    g1 = model.bind([{"area": 1.0}, {"area": 2.0}], {"is": 1e-14, "rs": 0.0, "cjo": 1e-12}, 300.15)
    g2 = model.bind([{}], {"is": 3e-15, "n": 1.2, "rs": 5.0, "tt": 1e-9}, 300.15)
    grp = type(g1).merge([g1, g2])
    grp.prepare()
    assert grp.mode == "native" and grp.compile_s > 0
    assert not np.all(grp.node_alias == grp.node_alias[0])
    return grp


def test_native_group_equals_model_eval(sp_diode, monkeypatch):
    grp = _native_group(sp_diode, monkeypatch)
    rng = np.random.default_rng(3)
    V = rng.uniform(-0.5, 0.9, (grp.size, len(sp_diode.node_names)))
    ps = rng.uniform(-0.2, 0.8, (grp.size, grp.num_states))
    for enable in (False, True):
        got = [np.asarray(a) for a in jax.jit(grp.eval_limited)(V, ps, enable)]
        ref = grp.m.eval(grp.state, V, analysis="tran", prev_state=ps, enable_lim=enable,
                         backend="native")
        for a, k in zip(got, KEYS):
            np.testing.assert_array_equal(a, np.asarray(getattr(ref, k)), err_msg=f"{k} enable={enable}")
    plain = [np.asarray(a) for a in jax.jit(grp.eval)(V)]
    ref = grp.m.eval(grp.state, V, analysis="tran", backend="native")
    for a, k in zip(plain, KEYS):
        np.testing.assert_array_equal(a, np.asarray(getattr(ref, k)), err_msg=k)


def test_native_group_under_vmap(sp_diode, monkeypatch):
    """Batched circuits (sweeps) vmap the group: the lanes fold into one kernel call and equal
    the lanes evaluated one by one."""
    grp = _native_group(sp_diode, monkeypatch)
    V = np.random.default_rng(5).uniform(-0.5, 0.9, (4, grp.size, len(sp_diode.node_names)))
    batched = jax.jit(jax.vmap(grp.eval))(V)
    for lane in range(V.shape[0]):
        one = jax.jit(grp.eval)(V[lane])
        for a, b in zip(batched, one):
            np.testing.assert_array_equal(np.asarray(a)[lane], np.asarray(b))


def test_graetz_native_vs_vacask_and_jax_path(tmp_path, monkeypatch):
    """The Graetz bridge with the generated SPICE diode: native within 1 mV of VACASK, and equal
    to the JAX-inlined path up to rounding (the two compile the same IR to different machine
    code; a last-bit difference in one iteration moves Newton's iterate by far less than its
    tolerance, reltol·|V| + vntol = 1e-3·20 + 1e-6 V, so 1 µV is a generous bound) with the same
    time points and (within 0.1 %) Newton iterations."""
    runs = {}
    for mode in ("native", "inline"):
        monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", mode)
        sim = Simulation.from_file(CIRCUITS / "graetz.sim", prefer="auto")  # R, C linear
        runs[mode] = sim.run()["tran1"]
        assert [g.group.mode for g in sim.engine.sys.groups] == [mode]
    nat, jx = runs["native"], runs["inline"]
    assert nat.stats.points == jx.stats.points
    # a last-bit difference decides the rare convergence test that sits on its tolerance (an
    # update or residual within rounding of it): a handful of the ≈ 23 k iterations (4 measured)
    assert abs(nat.stats.newton_iterations - jx.stats.newton_iterations) <= 1e-3 * jx.stats.newton_iterations
    # the accepted times within 1e-4 of the step (as tests/sim/test_resref.py): the accepted point
    # is VACASK's x_k (nr_resref="device", the default), not x_k + Δx_k, so the rounding of the
    # update that produced x_k is not contracted by a further Newton step, and the LTE step control
    # (its ratio's r^(-1/3) on gear2) carries it into the next step; measured 1e-6 of a step (4.0e-7
    # relative; with x_k + Δx_k, nr_resref="sum", < 1e-9 relative), a differing rule moves a
    # point by ≥ 1e-3 of a step
    t_n, t_j = np.asarray(nat["time"]), np.asarray(jx["time"])
    np.testing.assert_array_less(np.abs(t_n - t_j)[1:], 1e-4 * np.diff(t_j))
    for node in ("outp", "outn", "inp", "inn"):
        np.testing.assert_allclose(nat[node], jx[node], rtol=0, atol=1e-6, err_msg=node)
    ref = run_vacask(CIRCUITS / "graetz.sim", tmp_path)
    for a, b in (("outp", "outn"), ("inp", "inn")):
        d = max_diff(nat["time"], nat[a] - nat[b], ref["time"], ref[a] - ref[b])
        assert d < 1e-3, (a, b, d)


RECT = """half-wave rectifier with RC load
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model r resistor
model c capacitor
model vsource vsource
model dmod sp_diode ( is=1e-14 n=1.2 rs=5 cjo=2p )
vs (in 0) vsource dc=1 type="sine" sinedc=0 ampl=2 freq=1meg
r0 (in a) r r=100
d1 (a out) dmod
rl (out 0) r r=10k
cl (out 0) c c=1n
control
  analysis tran1 tran step=1n stop=2u maxstep=20n
endc
"""


def test_vmap_sweep_over_native_group(tmp_path, monkeypatch):
    """``sweep`` in vmap mode over element values with the diode in a native group: each lane
    equals the simulator's run of the netlist with that lane's values."""
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "native")
    net = tmp_path / "rect.sim"
    net.write_text(RECT)
    bs = BatchSweep(net, ["r0", "vs.ampl"])
    vals = {"r0": np.array([80.0, 150.0, 100.0]), "vs.ampl": np.array([1.5, 2.5, 2.0])}
    tr = bs.tran(vals, 2e-6, 1e-9, 20e-9)
    assert np.all(tr.status == 0)
    for i in range(3):
        one = tmp_path / f"rect{i}.sim"
        one.write_text(RECT.replace("r r=100", f"r r={float(vals['r0'][i])!r}")
                       .replace("ampl=2", f"ampl={float(vals['vs.ampl'][i])!r}"))
        res = Simulation.from_file(one).run()["tran1"]
        t, _ = tr.lane(i)
        # the step comes from the LTE estimate x − x_pred, a difference of nearly equal values
        # (≈ 6 digits cancel), so last-bit differences of the vmapped loop move the times by
        # ≈ 1e-11 relative (measured 1.6e-11)
        np.testing.assert_allclose(t, res["time"], rtol=1e-9, atol=0)
        # same kernel, same Newton loop; vmapped XLA code may round the loop's own arithmetic
        # differently in the last bit
        np.testing.assert_allclose(tr["out"][i, : len(t)], res["out"], rtol=1e-9, atol=1e-12)
