"""Regressions found while bringing up the generator, each checked against the OSDI reference."""
from __future__ import annotations

import pytest

from va2jax._paths import corpus_dir
from va2jax.validate import validate_file

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(not (CORPUS / "bosdi").is_dir(), reason="corpus not fetched (make corpus)")


def test_parameter_named_m_is_not_the_mfactor():
    """sp_diode's grading coefficient is called ``m``; it must not be taken as $mfactor."""
    r = validate_file(CORPUS / "bosdi/spice/diode.va", points=100, param_sets=1, backend="numpy",
                      params={"is": 76.9e-12, "rs": 42e-3, "cjo": 26.5e-12, "m": 0.333, "n": 1.45},
                      vmax=3.0, reference_opt_level=0)
    assert r.passed, r.max_rel_err
    assert set(r.max_abs_err.values()) == {0.0}, r.max_abs_err  # bit-identical to -O0
    assert r.max_abs_err["residual_resist"] >= 0.0


@pytest.mark.parametrize("params", [{}, {"rs": 42e-3}, {"rsw": 1.0}, {"rs": 1.0, "rsw": 2.0}])
def test_collapse_decisions_follow_init_hints(params):
    """openvaf-py attaches its collapse decisions to the wrong pairs for sp_diode; va2jax derives
    them from init's collapse-hint calls. The node mapping must equal the OSDI library's."""
    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, load_library

    f = CORPUS / "bosdi/spice/diode.va"
    m = compile_va(f)
    ref = load_library(compile_va_to_osdi(f, opt_level=0)).module(m.name).instance(params)
    st = m.setup(params)
    assert tuple(int(x) for x in st["labels"][0]) == tuple(ref.node_mapping)


def test_cache_slots_mapped_by_position_psp103():
    """openvaf-py's cache mapping is not a bijection for PSP103; residuals must still match."""
    r = validate_file(CORPUS / "bosdi/psp103v4/psp103.va", points=20, param_sets=1, backend="numpy",
                      reference_opt_level=0)
    assert r.max_rel_err["residual_resist"] <= 1e-12
    assert r.max_rel_err["residual_react"] <= 1e-12
