"""Python API: batch helper, type checks, init errors, logging, collapsing convention."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from osdi_testutil import HERE

from va2jax.errors import Va2JaxError
from va2jax.osdi import OsdiInitError, compile_va_to_osdi, eval_batch, load_library


def test_eval_batch_mixed_model_params(mod_dir):
    m = load_library(mod_dir / "diode.osdi").module()
    rng = np.random.default_rng(0)
    v = rng.uniform(0.0, 0.6, (6, 3))
    params = [{"is": 1e-14 * (1 + k % 3), "area": 1.0 + k} for k in range(6)]
    out = eval_batch(m, v, params, temperature=np.linspace(290, 340, 6))
    assert out["residual_resist"].shape == (6, 3) and out["jacobian_resist"].shape == (6, 3, 3)
    assert out["opvars"].shape == (6, len(m.opvars)) and out["finite"].all()
    for k in range(6):  # each row equals a single, independently set-up instance
        ref = m.instance(params[k], temperature=float(np.linspace(290, 340, 6)[k])).eval(v[k])
        assert np.array_equal(out["residual_resist"][k], ref.residual_resist)
        assert np.array_equal(out["jacobian_resist"][k], ref.jacobian_resist)
    with pytest.raises(Va2JaxError, match="shape"):
        eval_batch(m, np.zeros((2, 2)))


def test_type_errors_name_param(mod_dir):
    m = load_library(mod_dir / "diode.osdi").module()
    with pytest.raises(Va2JaxError, match="'Is' expects a real number"):
        m.instance({"is": "1e-14"})
    with pytest.raises(Va2JaxError, match="'noisy' expects an integer"):
        load_library(mod_dir / "resistor.osdi").module().instance({"noisy": 1.5})
    with pytest.raises(Va2JaxError, match="has 3 nodes, got 2"):
        m.instance().eval([0.1, 0.2])
    with pytest.raises(Va2JaxError, match="model parameter"):
        m.model().instance({"is": 1e-14})


def test_init_error_object(mod_dir):
    m = load_library(mod_dir / "diode.osdi").module()
    with pytest.raises(OsdiInitError) as ei:
        m.instance({"rs": -1.0, "m": 2.0})
    names = {e[1] for e in ei.value.errors}
    assert {"Rs", "M"} <= names and "\n" not in str(ei.value)


def test_setup_updates_after_set(mod_dir):
    m = load_library(mod_dir / "resistor.osdi").module()
    inst = m.instance({"r": 10.0})
    assert inst.eval({"A": 1.0}).residual_resist[0] == pytest.approx(0.1)
    inst.set("r", 20.0)
    assert inst.eval({"A": 1.0}).residual_resist[0] == pytest.approx(0.05)


def test_collapse_to_ground_and_representative(mod_dir):
    """spice diode: collapsible pairs include (node, ground); mapping -1 means ground slot."""
    m = load_library(mod_dir / "spice/diode.osdi").module()
    inst = m.instance({})
    mp = inst.node_mapping
    assert len(mp) == m.num_nodes
    for i, r in enumerate(mp):
        assert r == -1 or (r <= i and mp[r] == r)
    v = np.linspace(0.1, 0.7, m.num_nodes)
    res = inst.eval(v)
    for i, r in enumerate(mp):
        if r != i:  # collapsed or grounded: zero row and column
            assert res.residual_resist[i] == 0 and not res.jacobian_resist[i].any()
            assert not res.jacobian_resist[:, i].any()
    assert -1 in mp  # some internal node is tied to ground at default parameters


@pytest.fixture(scope="module")
def logmod(tmp_path_factory):
    import os

    os.environ["VA2JAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return load_library(compile_va_to_osdi(HERE / "data" / "logmodel.va")).module()


def test_strobe_routed_to_logging(logmod, caplog):
    inst = logmod.instance({"mode": 1})
    with caplog.at_level(logging.DEBUG, logger="va2jax.osdi.model"):
        r = inst.eval({"a": 0.5})
    assert not r.flags.fatal
    assert any("hello from logmodel v=0.5" in rec.getMessage() for rec in caplog.records)


def test_fatal_flagged(logmod, caplog):
    inst = logmod.instance({"mode": 2})
    with caplog.at_level(logging.DEBUG, logger="va2jax.osdi.model"):
        r = inst.eval({"a": 0.5})
    assert r.flags.fatal
    assert any("fatal from logmodel" in rec.getMessage() and rec.levelno == logging.CRITICAL
               for rec in caplog.records)


def test_fatal_during_setup_is_init_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path))
    src = tmp_path / "f.va"
    src.write_text('`include "disciplines.vams"\nmodule fsetup(a); inout a; electrical a;'
                   ' parameter real p = 1; analog begin if (p > 2) $fatal(1, "p too big");'
                   ' I(a) <+ V(a); end endmodule\n')
    m = load_library(compile_va_to_osdi(src)).module()
    assert m.instance({"p": 1.0}).eval({"a": 1.0}).residual_resist[0] == pytest.approx(1.0)
    with pytest.raises(OsdiInitError, match=r"\$fatal"):
        m.instance({"p": 3.0})
