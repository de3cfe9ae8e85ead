"""``Model.noise``: noise densities against formulas and against OSDI's ``load_noise`` (-O0).

Constants: ``tests/data/va/noise.va`` uses `` `P_K`` of OpenVAF's built-in ``constants.vams``
(1.3806503e-23 J/K, the NIST 1998 value OpenVAF ships); the SPICE diode of the corpus defines its
own ``VACONSTboltz = 1.38064852e-23`` and ``VACONSTcharge = 1.6021766208e-19`` (CODATA 2014),
which the expected values below use.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from va2jax import Va2JaxError
from va2jax.codegen import compile_va

VA_DIR = Path(__file__).resolve().parents[1] / "data" / "va"

P_K_VAMS = 1.3806503e-23
K_SPICE = 1.38064852e-23
Q_SPICE = 1.6021766208e-19
# Formula vs model: the model evaluates the same products in its own order, a few roundings
# (≈ 1e-16 each) apart; 1e-9 is the issue's bound for the analytic checks.
REL = 1e-9


@pytest.fixture(scope="module")
def noisy():
    return compile_va(VA_DIR / "noise.va")


def test_resistor_thermal_and_flicker(noisy):
    assert noisy.noise_sources == ("thermal", "flicker")
    r, kf, ef, t = 2.2e3, 1e-18, 1.3, 320.0
    V = np.array([[0.5, 0.0], [-1.5, 0.25]])
    f = np.array([10.0, 3.3e6])
    d = noisy.noise(V, f, {"r": r, "kf": kf, "ef": ef}, temperature=t)
    assert d.shape == (2, 2)
    thermal = 4 * P_K_VAMS * t / r
    assert d[:, 0] == pytest.approx([thermal, thermal], rel=REL)
    i = np.abs(V[:, 0] - V[:, 1]) / r
    assert d[:, 1] == pytest.approx(kf * i / f**ef, rel=REL)
    # one instance, one point: shape (n_src,); white noise does not depend on the frequency
    d1 = noisy.noise([0.5, 0.0], 1e9, {"r": r}, temperature=t)
    assert d1.shape == (2,) and d1[0] == pytest.approx(thermal, rel=REL) and d1[1] == 0.0


def test_switch_and_mfactor(noisy):
    assert noisy.noise([0.1, 0.0], 1.0, {"on": 0})[0] == 0.0
    # $mfactor m devices in parallel: m times the power (OSDI: factor √m, squared)
    d = noisy.noise([0.1, 0.0], 1.0, {"r": 1e3, "$mfactor": 3.0}, temperature=300.0)
    assert d[0] == pytest.approx(3 * 4 * P_K_VAMS * 300.0 / 1e3, rel=REL)


@pytest.mark.parametrize("backend", ["jax", "native"])
def test_backends_match_numpy(noisy, backend):
    V = np.array([[0.3, -0.2], [1.0, 0.0]])
    # $mfactor not a power of 2: the probes' cache slots added by unscale_noise_residuals
    p = {"r": 470.0, "kf": 1e-17, "ef": 0.8, "$mfactor": 0.9396448061678965}
    a = noisy.noise(V, 1e3, p, backend="numpy")
    b = noisy.noise(V, 1e3, p, backend=backend)
    # same operations on float64; XLA may round a product differently by an ulp
    np.testing.assert_allclose(b, a, rtol=1e-14)


def test_bad_input(noisy):
    with pytest.raises(Va2JaxError, match="frequency"):
        noisy.noise([0.1, 0.0], 0.0)
    with pytest.raises(Va2JaxError, match="frequency"):
        noisy.noise([0.1, 0.0], float("nan"))
    with pytest.raises(Va2JaxError, match="node voltages"):
        noisy.noise([0.1, 0.0, 0.2], 1.0)
    scaled = compile_va(VA_DIR / "noise_scaled.va")
    with pytest.raises(Va2JaxError, match="'scaled'.*scaled or nested"):
        scaled.noise([0.1, 0.0], 1.0)


def test_spice_diode_shot_flicker_thermal(corpus):
    """SPICE diode: rs thermal 4kT/rs, shot 2qI, flicker kf·I^af/f (its exponent is fixed at 1);
    I is OSDI's diode current at the same bias, so the check does not use our own output."""
    from va2jax.osdi import compile_va_to_osdi, load_library

    path = corpus / "spice" / "diode.va"
    p = {"is": 1e-14, "rs": 10.0, "kf": 1e-16, "af": 1.2}
    t = 310.0
    m = compile_va(path)
    assert m.noise_sources[:3] == ("rs", "id", "flicker")
    v = {"a": 0.66, "a_int": 0.65, "c": 0.0}
    V = np.array([v.get(n, 0.0) for n in m.nodes])
    f = 120.0
    d = m.noise(V, f, p, temperature=t)
    inst = load_library(compile_va_to_osdi(path, opt_level=0)).module().instance(p, temperature=t)
    i_d = -inst.eval(V).residual_resist[m.nodes.index("c")]  # current into c through the junction
    assert 1e-5 < i_d < 1e-1
    assert d[0] == pytest.approx(4 * K_SPICE * t / 10.0, rel=REL)
    assert d[1] == pytest.approx(2 * Q_SPICE * i_d, rel=REL)
    assert d[2] == pytest.approx(1e-16 * i_d**1.2 / f, rel=REL)
    assert 0.1 < d[2] / d[1] < 10  # both matter at this frequency
    assert (d[3:] == 0).all()  # no sidewall resistance given


@pytest.mark.parametrize("rel, params", [
    ("bosdi/spice/diode.va", {"rs": 10.0, "kf": 1e-16, "af": 1.2, "rsw": 5.0}),
    ("bosdi/spice/bjt.va", {"rb": 100.0, "rc": 10.0, "re": 2.0, "kf": 1e-16, "af": 1.1}),
    ("vajax/ekv/ekv.va", {"KF": 1e-25, "AF": 0.9}),
])
def test_equals_osdi_O0(corpus, rel, params):
    """Generated noise densities = OSDI -O0 ``load_noise``, bit for bit, at 100 random points ×
    2 parameter sets with random frequencies; the reference densities are not all zero."""
    from va2jax.osdi import compile_va_to_osdi, load_library
    from va2jax.validate import validate_file

    path = corpus.parent / rel
    if not path.is_file():
        pytest.skip(f"{rel} not in the corpus")
    res = validate_file(path, points=100, param_sets=2, params=params, backend="numpy",
                        reference_opt_level=0)
    assert res.noise == "compared", res.noise
    assert res.max_rel_err["noise"] == 0.0 and res.max_abs_err["noise"] == 0.0
    inst = load_library(compile_va_to_osdi(path, opt_level=0)).module().instance(params)
    V = np.full(len(inst.module.node_names), 0.4)
    dens = inst.noise(1e3, V).density
    assert np.count_nonzero(dens) >= 2


@pytest.mark.parametrize("rbodymod", [1, 2])
def test_bsim4_voltage_contribution_sources_equal_osdi_O0(corpus, rbodymod):
    """Berkeley BSIM4's body-resistor noise ``V(bi, sbulk) <+ white_noise(4kT·rbps, "Rbulk")``
    (five same-named sources in voltage contributions: OSDI puts each on its branch's current
    unknown ``flow(sbulk,bi)``, …): with five different body resistances every density equals
    OSDI -O0 ``load_noise`` bit for bit at random biases — a permutation of the five (which
    matching by name alone gave) fails."""
    from va2jax.osdi import compile_va_to_osdi, load_library

    path = corpus / "bsim4v8.va"
    params = {"rbodymod": rbodymod, "rbps": 10.0, "rbpd": 20.0, "rbpb": 30.0, "rbsb": 40.0,
              "rbdb": 60.0, "rbps0": 11.0, "rbpd0": 21.0, "rbpbx0": 31.0, "rbpby0": 32.0,
              "rbsbx0": 41.0, "rbsby0": 42.0, "rbdbx0": 61.0, "rbdby0": 62.0}
    m = compile_va(path)
    lib = load_library(compile_va_to_osdi(path, opt_level=0)).module()
    inst = lib.instance(params)
    rb = [k for k, s in enumerate(lib.noise_sources) if s.name == "Rbulk"]
    assert len(rb) == 5
    rng = np.random.default_rng(7)
    V = rng.uniform(-0.3, 1.2, (20, len(lib.node_names)))
    f = 10.0 ** rng.uniform(0, 10, 20)
    got = np.asarray(m.noise(V, f, params, temperature=300.15))
    ref = np.array([inst.noise(float(f[i]), V[i]).density for i in range(20)])
    np.testing.assert_array_equal(got, ref)
    assert len({float(x) for x in ref[0, rb]}) == 5  # five different densities


def test_noise_function_gradient(noisy):
    """jax.grad of the densities w.r.t. parameters = the analytic derivative (and = Model.noise)."""
    import jax

    f = noisy.noise_function(["r", "kf"], {"ef": 1.5})
    V, t, fr = np.array([0.8, 0.1]), 300.0, 50.0
    d = f({"r": 1e3, "kf": 1e-18}, t, V, fr)
    np.testing.assert_allclose(np.asarray(d), noisy.noise(V, fr, {"r": 1e3, "kf": 1e-18, "ef": 1.5},
                                                          temperature=t), rtol=1e-14)
    g = jax.grad(lambda p: f(p, t, V, fr)[0])({"r": 1e3, "kf": 1e-18})
    assert float(g["r"]) == pytest.approx(-4 * P_K_VAMS * t / 1e3**2, rel=REL)
    g1 = jax.grad(lambda p: f(p, t, V, fr)[1])({"r": 1e3, "kf": 1e-18})
    i = 0.7 / 1e3
    assert float(g1["kf"]) == pytest.approx(i / fr**1.5, rel=REL)
    assert float(g1["r"]) == pytest.approx(-1e-18 * i / 1e3 / fr**1.5, rel=REL)


def test_variant_rewrite(tmp_path):
    """The noise variant: probes for plain +/- terms (also through a macro's call sites), reasons
    for what is not rewritten; the original text is otherwise unchanged."""
    from va2jax.mir import noise_variant

    src = tmp_path / "m.va"
    src.write_text(
        '`include "disciplines.vams"\n'
        "`define NR(N1, N2, S, NAME) \\\n"
        "    I(N1, N2) <+ white_noise(S, NAME);\n"
        "module m(a, b);\n  inout a, b;\n  electrical a, b;\n  analog begin\n"
        '    if (1) I(a, b) <+ V(a, b) - flicker_noise(1e-20, 1.5, "f") + white_noise(2e-20, "w");\n'
        '    `NR(a, b, 3e-20, "mac")\n'
        '    I(a, b) <+ 2 * white_noise(1e-20, "scaled");\n'
        '    I(a, b) <+ noise_table({1, 1e-20, 1e3, 1e-21}, "tab");\n'
        "    I(a, b) <+ white_noise(5e-20);\n"
        "  end\nendmodule\n")
    out, sites = noise_variant(src, tmp_path / "variant")
    by = {s.name: s for s in sites}
    assert by["f"].kind == "flicker" and by["f"].node and by["w"].node and by["mac"].node
    assert "scaled" in by["scaled"].why and "noise_table" in by["tab"].why
    assert by["unnamed1"].node  # OpenVAF's name for a source without one
    assert by[None].why.startswith("inside a macro body")  # the definition itself
    text = out.read_text()
    assert f"I({by['f'].node}e) <+ (1.5);" in text and f"I({by['mac'].node}) <+ (3e-20);" in text
    assert "begin I(a, b) <+ V(a, b) - flicker_noise" in text
    assert (f"electrical {by['f'].node}, {by['f'].node}e, {by['w'].node}, {by['mac'].node}, "
            f"{by['unnamed1'].node};\nendmodule") in text
    assert src.read_text().count("__va2jax") == 0  # the source is never written


def test_voltage_noise_source_and_mfactor_vs_osdi():
    """A voltage noise source (V²/Hz, factor 1/√m): formula 4kTR/m and = OSDI -O0 bit for bit,
    also at an $mfactor that is not a power of 2 (the probe residual is read before OpenVAF's
    $mfactor scaling: dividing m·P by m again was one ulp off for m = 3)."""
    from va2jax.osdi import compile_va_to_osdi, load_library

    path = VA_DIR / "noise_vsrc.va"
    m = compile_va(path)
    mod = load_library(compile_va_to_osdi(path, opt_level=0)).module()
    V = np.array([0.3, -0.2, 1e-3])
    for mf in (1.0, 3.0):
        p = {"r": 470.0, "$mfactor": mf}
        d = m.noise(V, 1e3, p, temperature=300.15)
        ref = mod.instance(p, temperature=300.15).noise(1e3, V).density
        assert d[0] == pytest.approx(4 * P_K_VAMS * 300.15 * 470.0 / mf, rel=REL)
        assert d[0] == ref[0]


def test_mfactor_not_power_of_two_equals_osdi(noisy):
    """Thermal and flicker densities at $mfactor values that are not powers of 2 (0.9396… is the
    random parameter set at which bsim3v3's ``ids`` density was one ulp off) = OSDI -O0
    ``load_noise`` bit for bit, at 200 random biases and frequencies: OSDI scales the power P
    itself, ``(P·√m)·√m``, so the generated code must start from P, not from ``(m·P)/m``."""
    from va2jax.osdi import compile_va_to_osdi, load_library

    mod = load_library(compile_va_to_osdi(VA_DIR / "noise.va", opt_level=0)).module()
    rng = np.random.default_rng(3)
    V = rng.uniform(-1.0, 1.0, (200, 2))
    f = 10.0 ** rng.uniform(0, 10, 200)
    # m·P/m ≠ P for some of these P at each m (checked: the old path failed every m here)
    for mf in (0.9396448061678965, 3.0, 0.1, 7.3):
        p = {"r": 2.2e3, "kf": 1e-18, "ef": 1.3, "$mfactor": mf}
        inst = mod.instance(p, temperature=320.0)
        ref = np.array([inst.noise(float(f[i]), V[i]).density for i in range(len(V))])
        got = np.asarray(noisy.noise(V, f, p, temperature=320.0, backend="numpy"))
        np.testing.assert_array_equal(got, ref)
        assert np.count_nonzero(ref) == ref.size


def test_bsim3v3_corpus_noise_bit_identical(corpus):
    """The corpus run's settings for Berkeley bsim3v3 (100 points × defaults, one random set, the
    ``noise`` set; seed 0): its random set has ``$mfactor`` 0.9396…, at which the ``ids`` thermal
    density (8.833483491683205e-127 A²/Hz at one point) was one ulp off OSDI -O0 while va2jax
    divided ``$mfactor · P`` by ``$mfactor``; now every density is bit-identical."""
    from va2jax.validate import validate_file

    path = corpus / "bsim3v3.va"
    if not path.is_file():
        pytest.skip("bsim3v3.va not in the corpus")
    res = validate_file(path, points=100, param_sets=2, backend="numpy", reference_opt_level=0)
    assert res.noise == "compared" and res.noise_nonzero >= 1
    mf = [p["$mfactor"] for p in res.param_sets if "$mfactor" in p]
    assert mf and all(m != 1.0 and np.log2(m) % 1 != 0 for m in mf)  # the case at stake
    assert res.max_rel_err["noise"] == 0.0 and res.max_abs_err["noise"] == 0.0


def test_unscale_noise_residuals(tmp_path):
    """The front end's rewrite of a noise variant: both probe forms (P computed in eval; P from
    parameters only, carried from init through a cache slot) become unscaled, and a residual of
    an unknown form is listed in ``scaled_probes`` (its source is then refused, not guessed)."""
    import dataclasses

    from va2jax.mir import load_modules, noise_variant, unscale_noise_residuals

    vpath, _ = noise_variant(VA_DIR / "noise.va", tmp_path / "variant")
    ir = load_modules(vpath, [], {})[0]
    probes = {i for i, n in enumerate(ir.nodes) if n.name.startswith("__va2jax_nz")}
    before = {r.node: r.resist for r in ir.residuals if r.node in probes}
    ncache = len(ir.cache)
    unscale_noise_residuals(ir)
    after = {r.node: r.resist for r in ir.residuals if r.node in probes}
    assert len(before) == 3 and ir.scaled_probes == ()  # thermal P, flicker P and exponent
    assert all(after[k] != before[k] for k in before)
    assert len(ir.cache) > ncache  # the thermal power and the exponent depend on parameters only

    ir2 = load_modules(vpath, [], {})[0]
    k = next(i for i, r in enumerate(ir2.residuals) if r.node in probes)
    volt = next(p.value for p in ir2.eval.params if p.kind == "voltage")
    ir2.residuals[k] = dataclasses.replace(ir2.residuals[k], resist=volt)
    unscale_noise_residuals(ir2)
    assert ir2.scaled_probes == (ir2.nodes[ir2.residuals[k].node].name,)
