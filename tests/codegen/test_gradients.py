"""Derivatives with respect to model parameters and temperature (OSDI gives only d/dV).

Checked against central finite differences of the OSDI library (reference), relative ≤ 1e-6.
"""
from __future__ import annotations

import numpy as np
import pytest

from va2jax._paths import corpus_dir

CORPUS = corpus_dir()
pytestmark = pytest.mark.skipif(not (CORPUS / "bosdi").is_dir(), reason="corpus not fetched (make corpus)")


def test_spice_diode_parameter_and_temperature_gradients():
    import jax

    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, load_library

    f = CORPUS / "bosdi/spice/diode.va"
    model = compile_va(f)
    ref = load_library(compile_va_to_osdi(f, opt_level=0)).module(model.name)
    fixed = {"cjo": 1e-12, "rs": 10.0}
    x = {"is": 1e-14, "n": 1.05}
    fn = model.function(list(x), fixed=fixed)
    V = np.zeros(len(model.nodes))
    V[model.nodes.index("a")] = 0.7
    V[model.nodes.index("a_int")] = 0.62
    c = model.nodes.index("c")

    def current(p, T):
        return fn(p, T, V)["residual_resist"][c]

    g_p, g_T = jax.jacfwd(current, argnums=(0, 1))(x, 300.15)

    def osdi_current(p, T):
        return ref.instance({**fixed, **p}, temperature=T).eval(V).residual_resist[c]

    assert float(current(x, 300.15)) == pytest.approx(osdi_current(x, 300.15), rel=1e-13)
    for k in x:
        h = x[k] * 1e-5
        fd = (osdi_current({**x, k: x[k] + h}, 300.15) - osdi_current({**x, k: x[k] - h}, 300.15)) / (2 * h)
        assert np.isfinite(float(g_p[k]))
        assert float(g_p[k]) == pytest.approx(fd, rel=1e-6), k
    h = 1e-3
    fdT = (osdi_current(x, 300.15 + h) - osdi_current(x, 300.15 - h)) / (2 * h)
    assert float(g_T) == pytest.approx(fdT, rel=1e-6)
