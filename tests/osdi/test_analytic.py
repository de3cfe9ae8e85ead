"""Analytic checks: resistor, capacitor, inductor, diode (Shockley + RS), our own Verilog-A model."""
from __future__ import annotations

import math

import numpy as np
import pytest
from osdi_testutil import HERE, P_K, P_Q

from va2jax.osdi import compile_va_to_osdi, load_library
from va2jax.osdi import flags as F

REL = 1e-13


def test_resistor_current_and_conductance(mod_dir):
    m = load_library(mod_dir / "resistor.osdi").module()
    inst = m.instance({"r": 470.0})
    for v in (-3.0, 0.25, 7.5):
        r = inst.eval({"A": v, "B": 0.0})
        assert r.residual_resist == pytest.approx([v / 470, -v / 470], rel=REL)
        g = 1 / 470
        assert r.jacobian_resist == pytest.approx(np.array([[g, -g], [-g, g]]), rel=REL)
        assert not r.residual_react.any() and not r.jacobian_react.any()
        assert r.opvars["i"] == pytest.approx(v / 470, rel=REL)
    # default r = 1 Ohm, $mfactor scales the current
    inst2 = m.instance({"$mfactor": 3.0})
    assert inst2.eval({"A": 2.0}).residual_resist[0] == pytest.approx(6.0, rel=REL)
    assert inst.get("r") == 470.0 and inst.given("r") and not inst2.given("r")


def test_capacitor_charge(mod_dir):
    m = load_library(mod_dir / "capacitor.osdi").module()
    inst = m.instance({"c": 4.7e-12})
    r = inst.eval({"A": 1.5, "B": -0.5})
    assert r.residual_react == pytest.approx([4.7e-12 * 2.0, -4.7e-12 * 2.0], rel=REL)
    c = 4.7e-12
    assert r.jacobian_react == pytest.approx(np.array([[c, -c], [-c, c]]), rel=REL)
    assert not r.residual_resist.any()
    assert r.opvars["q"] == pytest.approx(c * 2.0, rel=REL)
    # alias "C" (case-insensitive name)
    assert m.instance({"C": 1e-9}).eval({"A": 1.0}).residual_react[0] == pytest.approx(1e-9, rel=REL)


def test_inductor_flux_and_branch_current(mod_dir):
    m = load_library(mod_dir / "inductor.osdi").module()
    assert m.num_nodes == 3 and m.nodes[2].is_flow
    inst = m.instance({"l": 2e-6})
    v = np.zeros(3)
    v[0], v[1], v[2] = 0.3, 0.1, 0.25  # V(A), V(B), branch current (A)
    r = inst.eval(v)
    k = 2
    # KCL: the branch current leaves A and enters B; branch equation V(A)-V(B) = ddt(L*I)
    assert r.residual_resist[0] == pytest.approx(0.25, rel=REL)
    assert r.residual_resist[1] == pytest.approx(-0.25, rel=REL)
    assert abs(r.residual_resist[k]) == pytest.approx(0.2, rel=REL)
    assert abs(r.residual_react[k]) == pytest.approx(2e-6 * 0.25, rel=REL)
    assert abs(r.jacobian_react[k, k]) == pytest.approx(2e-6, rel=REL)
    assert r.opvars["flux"] == pytest.approx(2e-6 * 0.25, rel=REL)


def _shockley(v, is_, n, t, tnom=300.15, xti=3.0, eg=1.12, area=1.0, gmin=1e-12):
    vt = P_K * t / P_Q
    ist = area * is_ * (t / tnom) ** (xti / n) * math.exp((t / tnom - 1) * eg / (n * vt))
    return ist * (math.exp(v / (n * vt)) - 1) + gmin * v, ist / (n * vt) * math.exp(v / (n * vt)) + gmin


@pytest.mark.parametrize("temp", [300.15, 350.0])
def test_diode_shockley_collapsed(mod_dir, temp):
    """RS = 0: CI collapses onto C; I(A) = Is_eff (exp(V/(N Vt)) - 1) + gmin V."""
    m = load_library(mod_dir / "diode.osdi").module()
    inst = m.instance({"is": 3e-14, "n": 1.2, "area": 2.0}, temperature=temp)
    assert inst.node_mapping == (0, 1, 1)
    for v in (-0.5, 0.2, 0.45, 0.6):
        r = inst.eval({"A": v})
        i, g = _shockley(v, 3e-14, 1.2, temp, area=2.0)
        assert r.residual_resist[0] == pytest.approx(i, rel=1e-12)
        assert r.residual_resist[1] == pytest.approx(-i, rel=1e-12)
        assert r.residual_resist[2] == 0.0  # collapsed node: contribution sits at C
        assert r.jacobian_resist[0, 0] == pytest.approx(g, rel=1e-12)
        assert not r.jacobian_resist[2].any() and not r.jacobian_resist[:, 2].any()


def test_diode_with_series_resistance(mod_dir):
    """RS > 0: internal node; junction current at V(A)-V(CI), RS current V(CI)-V(C) / RS."""
    m = load_library(mod_dir / "diode.osdi").module()
    inst = m.instance({"is": 1e-14, "rs": 25.0})
    assert inst.node_mapping == (0, 1, 2)
    va, vci = 0.55, 0.1
    r = inst.eval({"A": va, "CI": vci, "C": 0.0})
    i, g = _shockley(va - vci, 1e-14, 1.0, 300.15)
    assert r.residual_resist[0] == pytest.approx(i, rel=1e-12)
    assert r.residual_resist[1] == pytest.approx(-vci / 25.0, rel=1e-12)
    assert r.residual_resist[2] == pytest.approx(vci / 25.0 - i, rel=1e-12)
    assert r.jacobian_resist[1, 1] == pytest.approx(1 / 25.0, rel=1e-12)
    assert r.jacobian_resist[0, 2] == pytest.approx(-g, rel=1e-12)


def test_resistor_thermal_noise(mod_dir):
    """white_noise(4 k T / r): density 4kT/r A^2/Hz, independent of frequency."""
    m = load_library(mod_dir / "resistor.osdi").module()
    inst = m.instance({"r": 1e3}, temperature=320.0)
    assert [s.name for s in m.noise_sources] == ["thermal"] and m.noise_sources[0].type == "white"
    for f in (1.0, 1e6):
        nz = inst.noise(f, {"A": 0.1})
        assert nz.density[0] == pytest.approx(4 * P_K * 320.0 / 1e3, rel=1e-14)
        assert nz.power[0] == pytest.approx(4 * P_K * 320.0 / 1e3, rel=1e-14)
    assert m.instance({"r": 1e3, "noisy": 0}).noise(1.0).density[0] == 0.0


@pytest.fixture(scope="module")
def nlrc(tmp_path_factory):
    import os

    os.environ["VA2JAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    return load_library(compile_va_to_osdi(HERE / "data" / "nlrc.va")).module("NLRC")


def test_own_model_against_formula(nlrc):
    g0, g3, c0, c1 = 2e-3, 5e-4, 2e-12, 4e-13
    inst = nlrc.instance({"g0": g0, "g3": g3, "c0": c0, "c1": c1})
    for v in (-1.3, 0.0, 0.7, 2.0):
        r = inst.eval({"p": v, "n": 0.0})
        assert r.residual_resist[0] == pytest.approx(g0 * v + g3 * v**3, rel=1e-14, abs=1e-300)
        assert r.residual_react[0] == pytest.approx(c0 * v + 0.5 * c1 * v * v, rel=1e-14, abs=1e-300)
        assert r.jacobian_resist[0, 0] == pytest.approx(g0 + 3 * g3 * v * v, rel=1e-14)
        assert r.jacobian_react[0, 0] == pytest.approx(c0 + c1 * v, rel=1e-14)
        assert r.jacobian_resist[1, 0] == pytest.approx(-(g0 + 3 * g3 * v * v), rel=1e-14)
        assert r.opvars["ir"] == pytest.approx(g0 * v + g3 * v**3, rel=1e-14, abs=1e-300)


def test_own_model_int_param_and_flags(nlrc):
    inst = nlrc.instance({"capon": 0})
    r = inst.eval({"p": 1.0})
    assert not r.residual_react.any()
    assert inst.get("CAPON") == 0 and isinstance(inst.get("capon"), int)
    # only the resistive part requested
    r2 = nlrc.instance().eval({"p": 1.0}, calc=F.CALC_RESIST_RESIDUAL)
    assert r2.residual_resist[0] == pytest.approx(1e-3 + 2e-4, rel=1e-14)
    assert not r2.jacobian_resist.any() and not r2.residual_react.any()
