"""Device groups of generated models: merged model cards and the separately compiled evaluator
give exactly the results of the per-card, inlined evaluation (same generated code)."""
from __future__ import annotations

import jax
import numpy as np
import pytest

import va2jax
from va2jax._paths import data_dir
from va2jax.sim.adapters import GeneratedModel
from va2jax.sim.measure import crossings, oscillation_period


@pytest.fixture(scope="module")
def diode():
    return GeneratedModel(va2jax.compile_va(data_dir() / "diode.va"))


def _eval(group, V):
    return [np.asarray(a) for a in jax.jit(group.eval)(V)]


def _voltages(n_inst: int, n_nodes: int) -> np.ndarray:
    return np.random.default_rng(1).uniform(-0.5, 0.8, (n_inst, n_nodes))


def test_merged_cards_equal_separate_cards(diode, monkeypatch):
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "inline")
    g1 = diode.bind([{}, {}], {"is": 1e-14, "rs": 2.0, "cj0": 1e-12}, 300.15)
    g2 = diode.bind([{}, {}, {}], {"is": 3e-15, "n": 1.2}, 300.15)
    merged = type(g1).merge([g1, g2])
    assert merged.size == 5
    np.testing.assert_array_equal(merged.node_alias, np.concatenate([g1.node_alias, g2.node_alias]))
    V = _voltages(5, len(diode.node_names))
    whole = _eval(merged, V)
    parts = [np.concatenate(x) for x in zip(_eval(g1, V[:2]), _eval(g2, V[2:]))]
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a, b)


def test_separate_evaluator_equals_model_eval(diode, monkeypatch):
    """The separate evaluator returns exactly what ``Model.eval`` (the path validated against
    OSDI) returns; inlined into a larger jitted function, XLA may round the last bit differently."""
    V = _voltages(3, len(diode.node_names))
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "separate")
    grp = diode.bind([{}, {}, {}], {"rs": 1.0, "cj0": 2e-12}, 300.15)
    grp.prepare()
    assert grp.mode == "separate" and grp.compile_s > 0
    sep = _eval(grp, V)
    ref = grp.m.eval(grp.state, V, analysis="tran")
    keys = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react")
    for a, k in zip(sep, keys):
        np.testing.assert_array_equal(a, np.asarray(getattr(ref, k)))
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "inline")
    inline = _eval(diode.bind([{}, {}, {}], {"rs": 1.0, "cj0": 2e-12}, 300.15), V)
    for a, b in zip(inline, sep):
        np.testing.assert_allclose(a, b, rtol=4e-15, atol=1e-300)


def test_bad_device_eval_mode(diode, monkeypatch):
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", "sideways")
    with pytest.raises(va2jax.Va2JaxError, match="VA2JAX_SIM_DEVICE_EVAL"):
        diode.bind([{}], {}, 300.15)


def test_period_of_a_sine():
    """Rising zero crossings of sin(2π t/T) are at k·T exactly (interpolation error aside)."""
    T = 2.5e-9
    t = np.linspace(0, 10 * T, 200_001)
    v = 0.6 + 0.6 * np.sin(2 * np.pi * t / T - 0.3)
    per, periods = oscillation_period(t, v, 0.6, skip=1)
    assert per == pytest.approx(T, rel=1e-9) and len(periods) == 8
    assert len(crossings(t, v, 0.6, rising=False)) == 10
    with pytest.raises(va2jax.Va2JaxError, match="rising crossings"):
        oscillation_period(t[: len(t) // 5], v[: len(t) // 5], 0.6, skip=1)
