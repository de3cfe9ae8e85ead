"""Native forward-mode tangents (``codegen/native/_tangent.py``) behind ``Model.function``'s native
custom_jvp: parameter, temperature and voltage tangents of every output (residuals, charges and
the Jacobians) against the JAX path's ``jvp`` of the same model (``backend="jax"``: JAX's own
derivative rules on the generated code), reverse mode against forward mode, and PSP103 against
central differences of the OSDI library (``test_param_gradients.py`` holds the same check for
BSIM4 and PSP103's currents and charges; here the Jacobian's parameter derivatives too)."""
from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

from va2jax._paths import corpus_dir

CORPUS = corpus_dir()
needs_corpus = pytest.mark.skipif(not (CORPUS / "bosdi").is_dir(), reason="corpus not fetched (make corpus)")

jax.config.update("jax_enable_x64", True)


def richardson(f, x: float, h: float):
    """Central difference with one Richardson step: (4 D(h/2) − D(h)) / 3, error O(h⁴)."""
    def d(s: float):
        return (f(x + s) - f(x - s)) / (2 * s)
    return (4 * d(h / 2) - d(h)) / 3


def _voltages(nodes, bias):
    """Terminal voltages; an internal node takes its terminal's (first letter), others 0."""
    V = np.zeros(len(nodes))
    for i, nd in enumerate(nodes):
        nm = nd.lower()
        V[i] = bias.get(nm, bias.get(nm[0], 0.0)) if not nm.startswith(("flow", "noi")) else 0.0
    return V


def _compare(path, names, fixed, x, bias, T=300.15):
    """jvp of every output in parameters, temperature and voltages: native vs JAX path."""
    from va2jax.codegen import compile_va

    m = compile_va(path)
    V = _voltages(m.nodes, bias)
    rng = np.random.default_rng(7)
    tx = {k: float(v) * rng.uniform(0.1, 1.0) for k, v in x.items()}
    # the residuals' voltage tangents are J·dV from OpenVAF's Jacobian on the native path (checked
    # in test_param_gradients.py); compared here: the other outputs' voltage tangents
    dV = rng.uniform(-0.1, 0.1, len(V))
    cases = {"p": lambda f: jax.jvp(lambda p: f(p, T, V), (x,), (tx,)),
             "T": lambda f: jax.jvp(lambda t: f(x, t, V), (T,), (0.5,)),
             "V": lambda f: jax.jvp(lambda v: f(x, T, v), (V,), (dV,))}
    fns = {be: m.function(names, fixed=fixed, backend=be) for be in ("native", "jax")}
    for case, run in cases.items():
        (_, tan_n), (_, tan_j) = run(fns["native"]), run(fns["jax"])
        for key in ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react"):
            if case == "V" and key.startswith("residual"):
                continue
            a, b = np.asarray(tan_n[key]), np.asarray(tan_j[key])
            assert np.all(np.isfinite(a)), (case, key)
            # the same derivative formulas evaluated in another order (and, for the JAX path,
            # XLA's CPU kernels): each element within a few ulps of the output's largest
            # tangent — 1e-12 of it leaves room for cancellation in sums of products
            scale = max(float(np.max(np.abs(b))), 1e-300)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * scale, err_msg=f"{case} {key}")
    return m, fns["native"], V


@needs_corpus
@pytest.mark.parametrize("path, names, fixed, x, bias", [
    ("bosdi/spice/diode.va", ["is", "n", "rs", "cjo"], {}, {"is": 1e-14, "n": 1.05, "rs": 10.0, "cjo": 1e-12},
     {"a": 0.65, "c": 0.0}),
    ("bosdi/resistor.va", ["r"], {}, {"r": 1e3}, {"a": 0.3, "b": -0.2}),
    ("vajax/ekv_longchannel/ekv_longchannel.va", ["W", "L", "VTO", "KP", "THETA"], {},
     {"W": 2e-6, "L": 1e-6, "VTO": 0.45, "KP": 3e-5, "THETA": 0.05}, {"d": 1.0, "g": 0.9, "s": 0.0, "b": 0.0}),
])
def test_native_tangents_equal_jax_path(path, names, fixed, x, bias):
    _compare(CORPUS / path, names, fixed, x, bias)


VA_DIR = Path(__file__).resolve().parent.parent / "data" / "va"


@pytest.mark.parametrize("path, names, fixed, x, bias", [
    # every math function's tangent rule (exp, ln, log10, sqrt, pow, trigonometric and hyperbolic
    # functions and their inverses, atan2, hypot, abs, floor, min/max, limexp), $vt, a charge
    ("mathfuncs.va", ["g0", "isat", "c0", "vs"], {}, {"g0": 1e-3, "isat": 1e-14, "c0": 1e-12, "vs": 0.7},
     {"a": 0.4, "b": 0.0}),
    # a setup loop (tangent phis on its back edge) and branches, both signs of p
    ("gradguard.va", ["p", "q"], {"n": 4}, {"p": 2.0, "q": 1.0}, {"a": 0.3, "c": 0.0}),
    ("gradguard.va", ["p", "q"], {"n": 4}, {"p": -2.0, "q": 1.0}, {"a": -0.3, "c": 0.0}),
])
def test_native_tangent_rules_equal_jax_path(path, names, fixed, x, bias):
    _compare(VA_DIR / path, names, fixed, x, bias)


@needs_corpus
def test_native_tangent_reverse_equals_forward():
    """jax.grad of a Jacobian entry (reverse mode: the transposed contraction) equals jacfwd."""
    from va2jax.codegen import compile_va

    m = compile_va(CORPUS / "vajax/ekv_longchannel/ekv_longchannel.va")
    x = {"W": 2e-6, "L": 1e-6, "VTO": 0.45}
    fn = m.function(list(x), backend="native")
    V = _voltages(m.nodes, {"d": 1.0, "g": 0.9})

    def g(p, T):
        r = fn(p, T, V)
        return r["jacobian_resist"][0, 1] + 1e3 * r["residual_resist"][0]

    rev = jax.grad(g, argnums=(0, 1))(x, 300.15)
    fwd = jax.jacfwd(g, argnums=(0, 1))(x, 300.15)
    for k in x:
        # the same products summed in another order: rounding only
        assert float(rev[0][k]) == pytest.approx(float(fwd[0][k]), rel=1e-13), k
    assert float(rev[1]) == pytest.approx(float(fwd[1]), rel=1e-13)


@needs_corpus
def test_psp103_jacobian_parameter_derivatives_vs_osdi():
    """PSP103: d(gm, Cgg-like Jacobian entries)/d(TOXO, VFBO, W, L) from the native tangent
    kernel vs Richardson central differences of the OSDI library's Jacobian (relative ≤ 1e-6)."""
    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, load_library

    path = CORPUS / "bosdi/psp103v4/psp103.va"
    m = compile_va(path)
    ref = load_library(compile_va_to_osdi(path, opt_level=0)).module(m.name)
    fixed = {"TYPE": 1}
    x = {"TOXO": 1.5e-9, "VFBO": -1.0, "W": 1e-5, "L": 1e-6}
    fn = m.function(list(x), fixed=fixed, backend="native")
    V = _voltages(m.nodes, {"d": 1.0, "g": 1.0})
    d, g = m.nodes.index("D"), m.nodes.index("G")
    T = 300.15
    ent = [("jacobian_resist", d, g), ("jacobian_react", g, g), ("jacobian_resist", d, d)]

    def outs(p):
        r = fn(p, T, V)
        return jax.numpy.stack([r[k][i, j] for k, i, j in ent])

    jac = jax.jacfwd(outs)(x)
    for name in x:
        def osdi(s, name=name):
            r = ref.instance({**fixed, **x, name: s}, temperature=T).eval(V)
            return np.array([getattr(r, k)[i, j] for k, i, j in ent])
        fd = richardson(osdi, x[name], 1e-3 * abs(x[name]))
        # Richardson differences are accurate to ~1e-9 relative here; 1e-6 as in
        # test_param_gradients.py
        np.testing.assert_allclose(np.asarray(jac[name]), fd, rtol=1e-6, err_msg=name)


@needs_corpus
def test_native_tangents_more_lanes_than_one_call():
    """18 parameter directions: the rule splits them into kernel calls of at most ``MAX_LANES``
    lanes (16 + 2); every direction still equals the JAX path's."""
    from va2jax.codegen.native._tangent import MAX_LANES

    x = {"area": 1.2, "is": 1e-14, "n": 1.05, "rs": 10.0, "cjo": 1e-12, "vj": 0.8, "m": 0.4,
         "tt": 1e-9, "eg": 1.11, "xti": 3.0, "ns": 1.0, "jsw": 1e-15, "pj": 1e-5, "cjp": 1e-13,
         "php": 0.9, "mjsw": 0.3, "tm1": 1e-3, "trs": 1e-3}
    assert len(x) > MAX_LANES
    _compare(CORPUS / "bosdi/spice/diode.va", list(x), {}, x, {"a": 0.65, "c": 0.0})
