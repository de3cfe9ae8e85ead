"""``$port_connected(p)``: whether the instance connects terminal ``p``.

OSDI's ``setup_instance`` takes the number of terminals the simulator connects; OpenVAF's
library answers ``$port_connected(p)`` with ``index(p) < connected`` (in setup and in eval).
The generated code takes the same number (``Model.setup(..., connected=)``). Expected values
come from the OSDI library built at -O0 with the same number of connected terminals.
"""
from __future__ import annotations

import numpy as np
import pytest

from va2jax import compile_va
from va2jax.osdi import DEFAULT_CALC, compile_va_to_osdi, load_library
from va2jax.osdi import flags as S

# $port_connected in setup (a cached value) and in eval (a branch chosen per call)
PC = """`include "disciplines.vams"
module pc(a, b, c, t);
    inout a, b, c, t;
    electrical a, b, c, t;
    parameter real r = 1k;
    real g, gt;
    analog begin
        gt = $port_connected(t) ? 3.0 / r : 0.5 / r;
        g = 1.0 / r;
        if ($port_connected(c))
            I(a, c) <+ 2 * g * V(a, c) + 1e-3 * V(a, c) * V(a, c);
        else
            I(a, b) <+ g * V(a, b) * V(a, b);
        I(a, b) <+ g * V(a, b);
        I(b, t) <+ gt * V(b, t);
        I(c, t) <+ ddt(1e-12 * V(c, t));
    end
endmodule
"""


@pytest.fixture(scope="module")
def pc(tmp_path_factory):
    va = tmp_path_factory.mktemp("pc") / "pc.va"
    va.write_text(PC)
    model = compile_va(va)
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(model.name)
    return model, omod


def _points(n: int, nodes: int) -> np.ndarray:
    return np.random.default_rng(11).uniform(-1.0, 1.0, (n, nodes))


@pytest.mark.parametrize("connected", [4, 3, 2])
@pytest.mark.parametrize("backend", ["numpy", "native", "jax"])
def test_port_connected_matches_osdi(pc, connected, backend):
    model, omod = pc
    assert {p.name for p in model.ir.eval.params if p.kind == "port_connected"} == {"c", "t"}
    params = {"r": 2.2e3}
    inst = omod.instance(params, temperature=300.15, num_terminals=connected)
    V = _points(6, len(model.nodes))
    out = model.eval(model.setup(params, connected=connected), V, analysis="tran", backend=backend)
    # NumPy and the native kernel run the MIR operation for operation, without contraction
    # (bit-identical to -O0); XLA may contract or reorder (relative 1e-12)
    rtol = 1e-12 if backend == "jax" else 0.0
    for i, v in enumerate(V):
        ref = inst.eval(v, calc=DEFAULT_CALC, analysis=S.ANALYSIS_TRAN)
        for k in ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react"):
            np.testing.assert_allclose(getattr(out, k)[i], getattr(ref, k), rtol=rtol, atol=0, err_msg=k)


def test_port_connected_per_instance(pc):
    # one batch, each instance its own number of connected terminals
    model, omod = pc
    conn = np.array([4, 2, 3, 2])
    V = _points(4, len(model.nodes))
    out = model.eval(model.setup({"r": 1e3}, connected=conn), V, analysis="dc", backend="numpy")
    for i, v in enumerate(V):
        ref = omod.instance({"r": 1e3}, num_terminals=int(conn[i])).eval(v, calc=DEFAULT_CALC,
                                                                        analysis=S.ANALYSIS_DC)
        np.testing.assert_array_equal(out.residual_resist[i], ref.residual_resist)
        np.testing.assert_array_equal(out.jacobian_resist[i], ref.jacobian_resist)
    # and the results differ with the connection (the test sees the flag)
    assert not np.array_equal(out.residual_resist[0], model.eval(
        model.setup({"r": 1e3}, connected=2), V[:1], analysis="dc", backend="numpy").residual_resist[0])


def test_port_connected_function(pc):
    # Model.function: the same flags under jax.grad's tracing
    model, omod = pc
    f = model.function(["r"], connected=2)
    v = _points(1, len(model.nodes))[0]
    ref = omod.instance({"r": 1.5e3}, num_terminals=2).eval(v, calc=DEFAULT_CALC, analysis=S.ANALYSIS_DC)
    got = f({"r": 1.5e3}, 300.15, v)
    np.testing.assert_allclose(np.asarray(got["residual_resist"]), ref.residual_resist, rtol=1e-12, atol=0)


@pytest.mark.parametrize("bad", [5, -1, 2.5])
def test_port_connected_bad_count(pc, bad):
    from va2jax import Va2JaxError

    model, _ = pc
    with pytest.raises(Va2JaxError, match="connected must be a whole number of terminals"):
        model.setup({}, connected=bad)
