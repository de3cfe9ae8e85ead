"""``DevicePlan.rows`` builds the kernel's input rows from the *distinct* static rows (no N × n_in
constant in the compiled loop); the rows must be the static ones bit for bit (−0.0, NaN payloads)
with the branch voltages, states and the limiting flag in their columns — the definition of the
kernel's ``in`` row, checked here against NumPy on a small plan."""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
jax.config.update("jax_enable_x64", True)  # as va2jax.Model does: the kernel rows are float64

from va2jax.codegen.native._device import DevicePlan  # noqa: E402


def _plan(static: np.ndarray) -> DevicePlan:
    N = static.shape[0]
    return DevicePlan(kernel=None, n=2, num_states=1, shared=np.zeros(1), static=static,
                      volt_cols=np.array([1]), volt_a=np.zeros((N, 1), np.int64),
                      volt_b=np.full((N, 1), 2, np.int64), state_cols=np.array([3]),
                      state_k=np.array([0]), lim_cols=np.array([4]), gather=np.zeros((1, N, 1), np.int64),
                      uniform=True)


@pytest.mark.parametrize("distinct", [1, 3])
def test_rows_from_distinct_static_rows_bit_for_bit(distinct):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(distinct, 6))
    base[:, 0] = -0.0  # the sign of a zero must survive
    base[0, 5] = np.nan
    pick = rng.integers(0, distinct, 50)
    static = base[pick]
    static[:, [1, 3, 4]] = 0.0  # the dynamic columns (volt, state, enable)
    plan = _plan(static)
    rows, index = plan.static_distinct
    assert len(rows) == distinct
    assert np.array_equal(rows[index].view(np.uint64), static.view(np.uint64))
    V = rng.normal(size=(50, 2))
    ps = rng.normal(size=(50, 1))
    got = np.asarray(jax.jit(lambda V, p: plan.rows(V, p, True))(V, ps))
    want = static.copy()
    want[:, 1] = V[:, 0] - 0.0  # node a = 0, node b = ground (index n → 0 V)
    want[:, 3] = ps[:, 0]
    want[:, 4] = 1.0
    assert np.array_equal(got.view(np.uint64), want.view(np.uint64))
