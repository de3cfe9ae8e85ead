"""The typed pieces behind :class:`va2jax.codegen.Model`: the setup state, the eval-input batch
and the backends (values compared with OSDI's flag constants and with each other, never with
stored outputs of our own)."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from va2jax import Va2JaxError, compile_va
from va2jax.codegen import SetupState
from va2jax.osdi import flags as osdi_flags

VA_DIR = Path(__file__).resolve().parents[1] / "data" / "va"  # our own small test models


@pytest.fixture(scope="module")
def model():
    return compile_va(VA_DIR / "nodes.va")


def test_setup_state_is_a_typed_pytree_readable_by_key(model):
    st = model.setup({}, temperature=np.array([300.0, 310.0]))
    assert isinstance(st, SetupState)
    assert st["labels"] is st.labels and st["sp"] is st.sp  # the old dict-style access
    with pytest.raises(KeyError):
        st["no_such_field"]
    assert set(dict(st)) == set(SetupState._fields)
    doubled = jax.tree_util.tree_map(lambda x: x, st)
    assert isinstance(doubled, SetupState)
    np.testing.assert_array_equal(doubled.temperature, [300.0, 310.0])


def test_eval_inputs_carry_osdi_analysis_bits(model):
    from va2jax.codegen._state import eval_inputs

    st = model.setup({}, temperature=np.array([300.0, 310.0]))
    V = np.zeros((2, len(model.nodes)))
    inp = eval_inputs(st, V, flags=osdi_flags.ANALYSIS_BITS["tran"], num_states=model.num_states)
    np.testing.assert_array_equal(inp["analysis"], [osdi_flags.ANALYSIS_BITS["tran"]] * 2)
    assert inp["prev_state"].shape == (2, model.num_states) and not inp["enable_lim"].any()
    assert "enable_integration" not in inp  # derived from the analysis bits by eval


def test_backends_share_one_interface_and_agree(model):
    from va2jax.codegen._backend import Backend
    from va2jax.codegen._model import BACKENDS

    assert set(BACKENDS) == {"numpy", "jax", "native"}
    assert all(isinstance(b, Backend) for b in BACKENDS.values())
    st = model.setup({})
    V = np.random.default_rng(0).uniform(-1.0, 1.0, (3, len(model.nodes)))
    ref = model.eval(st, V, backend="numpy").as_dict()
    got = model.eval(st, V, backend="jax").as_dict()
    for k in ref:  # the same generated operations; XLA's exp/log and the C library's differ by ulps
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-14, atol=1e-300, err_msg=k)
    with pytest.raises(Va2JaxError, match="unknown backend"):
        model.eval(st, V, backend="torch")
    with pytest.raises(Va2JaxError, match="unknown setup backend"):
        model.setup({}, backend="jax")
