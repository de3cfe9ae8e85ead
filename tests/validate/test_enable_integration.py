"""``idt(x, ic)`` and OSDI's ``enable_integration`` eval input (bosdi ``psp103_nqs.va``).

OpenVAF turns ``idt(x, ic)`` into an implicit unknown y whose equation is dy/dt = x when the
simulator integrates (OSDI: reactive Jacobian requested and not an IC analysis) and y = ic
otherwise. Expected values come from the OSDI library, evaluated with the same flags.
"""
from __future__ import annotations

import numpy as np
import pytest

from va2jax import compile_va
from va2jax.osdi import DEFAULT_CALC, compile_va_to_osdi, load_library
from va2jax.osdi import flags as S

IDT = """`include "disciplines.vams"
module integ(A, B);
    inout A, B;
    electrical A, B;
    parameter real k = 2e-3;
    parameter real q0 = 0.25;
    real y;
    analog begin
        y = idt(k * V(A, B) * V(A, B), q0 * (1.0 + V(A)));
        I(A, B) <+ 1e-3 * y + V(A, B) / 1e3;
    end
endmodule
"""

ANALYSES = {"dc": S.ANALYSIS_DC, "tran": S.ANALYSIS_TRAN, "ic": S.ANALYSIS_IC | S.ANALYSIS_TRAN}


@pytest.fixture(scope="module")
def integ(tmp_path_factory):
    va = tmp_path_factory.mktemp("idt") / "integ.va"
    va.write_text(IDT)
    model = compile_va(va)
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(model.name)
    return model, omod


def _points(n: int, nodes: int) -> np.ndarray:
    return np.random.default_rng(7).uniform(-1.0, 1.0, (n, nodes))


@pytest.mark.parametrize("analysis", sorted(ANALYSES))
@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_idt_matches_osdi_per_analysis(integ, analysis, backend):
    model, omod = integ
    assert any(p.kind == "enable_integration" for p in model.ir.eval.params)
    params = {"k": 3e-3, "q0": 0.5}
    inst = omod.instance(params, temperature=310.0)
    V = _points(8, len(model.nodes))
    out = model.eval(model.setup(params, temperature=310.0), V, analysis=analysis, backend=backend)
    # NumPy runs the MIR operation for operation: bit-identical to the -O0 build; XLA may round
    # differently (project tolerance, relative 1e-12)
    rtol = 0.0 if backend == "numpy" else 1e-12
    jatol = 0.0 if backend == "numpy" else 1e-20
    for i, v in enumerate(V):
        ref = inst.eval(v, calc=DEFAULT_CALC, analysis=ANALYSES[analysis])
        np.testing.assert_allclose(out.residual_resist[i], ref.residual_resist, rtol=rtol, atol=0)
        np.testing.assert_allclose(out.residual_react[i], ref.residual_react, rtol=rtol, atol=0)
        np.testing.assert_allclose(out.jacobian_resist[i], ref.jacobian_resist, rtol=rtol, atol=jatol)
        np.testing.assert_allclose(out.jacobian_react[i], ref.jacobian_react, rtol=rtol, atol=jatol)


def test_idt_integration_off_is_dc_operating_point(integ):
    # enable_integration=False is OSDI's eval without CALC_REACT_JACOBIAN (a SPICE DC point):
    # the implicit equation becomes y - ic, its Jacobian row d(y - ic)
    model, omod = integ
    inst = omod.instance({}, temperature=300.15)
    calc = DEFAULT_CALC & ~S.CALC_REACT_JACOBIAN
    V = _points(5, len(model.nodes))
    out = model.eval(model.setup({}), V, analysis="dc", enable_integration=False, backend="numpy")
    on = model.eval(model.setup({}), V, analysis="dc", backend="numpy")
    assert not np.array_equal(out.residual_resist, on.residual_resist)
    for i, v in enumerate(V):
        ref = inst.eval(v, calc=calc, analysis=S.ANALYSIS_DC)
        np.testing.assert_array_equal(out.residual_resist[i], ref.residual_resist)
        np.testing.assert_array_equal(out.jacobian_resist[i], ref.jacobian_resist)


@pytest.mark.slow
@pytest.mark.parametrize("analysis", sorted(ANALYSES))
def test_psp103_nqs_residuals(corpus, analysis):
    # NQS with 9 collocation points: nine idt states; residuals must equal OSDI's exactly (the
    # Jacobian has PSP103's 1-ulp cancellation differences, docs/conformance-triage.md)
    va = corpus / "bosdi/psp103v4/psp103_nqs.va"
    model = compile_va(va)
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(model.name)
    params = {"SWNQS": 9}
    inst = omod.instance(params, temperature=330.0)
    V = _points(6, len(model.nodes))
    out = model.eval(model.setup(params, temperature=330.0), V, analysis=analysis, backend="numpy")
    for i, v in enumerate(V):
        ref = inst.eval(v, calc=DEFAULT_CALC, analysis=ANALYSES[analysis])
        np.testing.assert_array_equal(out.residual_resist[i], ref.residual_resist)
        np.testing.assert_array_equal(out.residual_react[i], ref.residual_react)
