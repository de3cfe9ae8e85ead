"""Differentiable analyses (va2jax.sim.function): implicit derivatives of the DC operating point
and derivatives of AC responses, forward (jacfwd) and reverse (jacrev) mode, against central
finite differences of the same simulator.

Finite-difference reference: central differences at ``h`` and ``2h`` (``h = 1e-3·|p|``)
combined by Richardson extrapolation, ``(4·D(h) − D(2h))/3``. Its truncation error is
``O(h⁴)`` (≈ (20·1e-3)⁴ ≈ 2e-7 relative for a diode exponential in n), its rounding error
``≈ ε_x·|f|/h`` with ``ε_x`` the operating point's relative noise. A plain central difference at
a smaller step does not fit both: the Graetz bridge's supply current changes by only 4e-9 of
itself when its 1 GΩ ground return changes by 0.1 %, and the bridge's floating common mode
(matrix condition ≈ 1e13) carries rounding noise of the same order — at ``h = 1e-4·|p|`` the
central difference of dI/d(rg1) was noise-dominated (5.8e-16, against 3.7234e-16 at 1e-2 and
1e-3 and the implicit derivative 3.72339e-16), while at ``1e-3`` it agrees to 5e-7.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from va2jax._circuits import circuit_text, variant
from va2jax.errors import Va2JaxError
from va2jax.sim import Simulation, function

#: the shared Graetz bridge (examples/circuits/graetz.sim) at a dc input, ac-excited, no analyses
GRAETZ = variant(circuit_text("graetz"), {
    'vs (inp inn) vsource dc=0 type="sine" sinedc=0 ampl=20 freq=50': "vs (inp inn) vsource dc=20 mag=1"},
    control="")

MULTIPLIER = """Diode voltage multiplier (examples/circuits/multiplier.sim) at a dc input with a load
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model r resistor
model c capacitor
model vsource vsource
model dmul sp_diode ( is=76.9p rs=42.0m bv=1.00k ibv=5.00u cjo=26.5p m=0.333 n=1.45 )
vs (a 0) vsource dc=5
r1 (a 1) r r=10
c1 (1 2) c c=100n
d1 (0 1) dmul
c2 (0 10) c c=100n
d2 (1 10) dmul
c3 (1 2) c c=100n
d3 (10 2) dmul
c4 (10 20) c c=100n
d4 (2 20) dmul
rl (20 0) r r=100k
"""

#: the multiplier with its source ac-excited too (for the small-signal response at its dc point)
MULTIPLIER_AC = variant(MULTIPLIER, {"vs (a 0) vsource dc=5\n": "vs (a 0) vsource dc=5 mag=1\n"})

CS_AMP = """Common-source amplifier, SPICE level-1 NMOS (sp_mos1), resistive load
load "resistor.osdi"
load "capacitor.osdi"
load "spice/mos1.osdi"
model r resistor
model c capacitor
model vsource vsource
model nmos sp_mos1 ( type=1 vto=0.5 kp=200u lambda=0.05 tox=2n cgso=0.3n cgdo=0.3n cbd=5f cbs=5f )
vdd (vdd 0) vsource dc=1.8
vin (g 0) vsource dc=0.8 mag=1
rd (vdd d) r r=10k
cl (d 0) c c=1p
m1 (d g 0 0) nmos w=2u l=0.5u
"""

REL = 1e-5  # the bound for DC and AC derivatives (FD error budget: module docstring)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("diffsim")
    out = {}
    for name, text in (("graetz", GRAETZ), ("multiplier", MULTIPLIER), ("multiplier_ac", MULTIPLIER_AC),
                       ("cs", CS_AMP)):
        p = d / f"{name}.sim"
        p.write_text(text)
        out[name] = p
    return out


def _check(f, output, reverse: bool = True) -> None:
    """Forward (and with ``reverse``, jacrev) derivatives of ``f(v)[output]`` at the nominal
    values match central differences. ``output``: an output name of ``f``, or a function of
    ``f``'s result dict (e.g. a differential voltage formed from several outputs)."""
    get = output if callable(output) else (lambda o: o[output])
    v = dict(f.nominal)
    keys = list(v)
    # forward mode one direction at a time (jax.jvp: docs/sim.md on batched tangents in AC)
    jvp = jax.jit(lambda v, d: jax.jvp(lambda v: get(f(v)), (v,), (d,))[1])
    fwd = {k: jvp(v, {kk: float(kk == k) for kk in keys}) for k in keys}
    rev = jax.jit(jax.jacrev(lambda v: get(f(v))))(v) if reverse else None
    # the 4K perturbed evaluations, one compiled function called per set
    rows = []
    for k in keys:
        h = 1e-3 * abs(v[k])
        rows += [{**v, k: v[k] + h}, {**v, k: v[k] - h}, {**v, k: v[k] + 2 * h}, {**v, k: v[k] - 2 * h}]
    one = jax.jit(lambda v: (get(f(v)), f(v)["status"]))
    res = [one(r) for r in rows]
    ys = np.asarray([r[0] for r in res])
    assert all(int(r[1]) == 0 for r in res)
    for i, k in enumerate(keys):
        h = 1e-3 * abs(v[k])
        d1 = (ys[4 * i] - ys[4 * i + 1]) / (2 * h)
        d2 = (ys[4 * i + 2] - ys[4 * i + 3]) / (4 * h)
        fd = (4 * d1 - d2) / 3  # Richardson: the h² terms cancel
        assert np.all(np.abs(fd) > 0), (output, k)  # a derivative that is there to check
        np.testing.assert_allclose(np.asarray(fwd[k]), fd, rtol=REL, err_msg=f"{output} / {k} fwd")
        if reverse:
            np.testing.assert_allclose(np.asarray(rev[k]), fd, rtol=REL, err_msg=f"{output} / {k} rev")


def test_op_graetz(nets):
    # resistor R, source dc, diode model IS and N, a second resistor
    f = function(nets["graetz"], ["rl", "vs.dc", "dpwr.is", "dpwr.n", "rg1"], "op",
                 ["outp", "outn", "vs:flow(br)"])
    out = f(f.nominal)
    assert int(out["status"]) == 0
    # a bridge at 20 V: the load sees 20 V less two diode drops (0.5 … 0.8 V each)
    assert 18.4 < float(out["outp"] - out["outn"]) < 19.0
    _check(f, "outp")
    _check(f, "vs:flow(br)")


def test_op_multiplier(nets):
    f = function(nets["multiplier"], ["r1", "rl", "vs.dc", "dmul.is", "dmul.n"], "op", ["20"])
    _check(f, "20")


def test_op_common_source(nets):
    # MOSFET W, L (instance), KP (model card), drain resistor, gate bias
    f = function(nets["cs"], ["rd", "vin.dc", "m1.w", "m1.l", "nmos.kp"], "op", ["d"])
    _check(f, "d")


DIODE_RC = """forward-biased diode with a parallel capacitor behind a resistor
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model r resistor
model c capacitor
model vsource vsource
model dmod sp_diode ( is=1e-14 n=1.2 rs=5 )
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
d1 (b 0) dmod
c1 (b 0) c c=1n
"""


def test_ac_diode(tmp_path):
    # capacitor C, resistor R, source dc (moves the diode's bias), diode IS and N. (The Graetz
    # bridge's single-ended nodes are not used for AC: its reverse-biased diodes and 1 MΩ returns
    # make the small-signal matrix ill-conditioned, ~1e13, so LU rounding alone exceeds 1e-5;
    # test_ac_graetz takes its load voltage instead.)
    p = tmp_path / "diode_rc.sim"
    p.write_text(DIODE_RC)
    f = function(p, ["c1", "r1", "v1.dc", "dmod.is", "dmod.n"], "ac", ["db(b)", "phase(b)"],
                 freqs=[1e6, 1e7])
    _check(f, "db(b)", reverse=False)
    _check(f, "phase(b)", reverse=False)


def test_ac_diode_reverse_and_batched(tmp_path):
    # reverse mode (jacrev: a vmap over cotangents) and batched tangents (jacfwd) of an AC output
    # at two frequencies, with a device model. Before the AC solve was written in real
    # arithmetic, both came out wrong: XLA's CPU code for the complex dots of the batched
    # derivative is wrong with va2jax's default flags (differentiable._ac_solve)
    p = tmp_path / "diode_rc.sim"
    p.write_text(DIODE_RC)
    f = function(p, ["c1", "dmod.is"], "ac", ["db(b)"], freqs=[1e6, 1e7])
    _check(f, "db(b)")
    v = dict(f.nominal)
    fwd = jax.jit(jax.jacfwd(lambda v: f(v)["db(b)"]))(v)
    jvp = jax.jit(lambda v, d: jax.jvp(lambda v: f(v)["db(b)"], (v,), (d,))[1])
    for k in v:
        one = jvp(v, {kk: float(kk == k) for kk in v})
        np.testing.assert_allclose(np.asarray(fwd[k]), np.asarray(one), rtol=1e-12)  # same maths
    # vmap over parameter sets = one set at a time
    cs = jnp.asarray([0.5e-9, 1e-9, 2e-9])
    batch = jax.jit(jax.vmap(lambda c: f({"c1": c})["db(b)"]))(cs)
    single = np.stack([np.asarray(jax.jit(lambda c: f({"c1": c})["db(b)"])(c)) for c in cs])
    np.testing.assert_allclose(np.asarray(batch), single, rtol=1e-12)  # same code, per lane


def _load_db_phase(o):
    """Gain (dB) and phase (degrees) of the Graetz bridge's load voltage v(outp) − v(outn), the
    frequencies concatenated."""
    z = (o["real(outp)"] - o["real(outn)"]) + 1j * (o["imag(outp)"] - o["imag(outn)"])
    return jnp.concatenate([20 * jnp.log10(jnp.abs(z)), jnp.angle(z, deg=True)])


def test_ac_graetz(nets):
    # load R and C, source dc (sets the conducting diodes' bias), diode IS, N and RS, at 10 Hz and
    # 1 kHz (the load's pole is at 1.6 Hz). The output is the load voltage outp − outn: the
    # bridge's single-ended nodes float on 1 MΩ returns and reverse-biased diodes (small-signal
    # matrix condition ~1e13, test_ac_diode), and db(outp) alone carried that common mode's
    # rounding noise — FD against implicit off by 1e-2 on IS. The difference does not: measured
    # ≤ 1.2e-6 relative at h = 1e-3·|p| (IS; the others ≤ 3e-8). CJO is left out: the reverse
    # diodes' 27 pF beside 100 µF moves the gain by ~1e-9 of itself per 0.1 %, below the noise.
    f = function(nets["graetz"], ["rl", "cl", "vs.dc", "dpwr.is", "dpwr.n", "dpwr.rs"], "ac",
                 ["real(outp)", "imag(outp)", "real(outn)", "imag(outn)"], freqs=[10.0, 1e3])
    g = np.asarray(_load_db_phase(f(f.nominal)))
    # sanity: the load (1 kΩ ‖ 100 µF) behind the two conducting diodes' 2·(n·Vt/I + RS) ≈ 4.1 Ω
    # (I ≈ 18.6 mA) is a low-pass with its pole at 1/(2π·4.1 Ω·100 µF) ≈ 390 Hz: ≈ −0.04 dB, −1.5°
    # at 10 Hz and ≈ −8.8 dB, −69° at 1 kHz (ranges for the rough diode resistance)
    assert -0.1 < g[0] < 0 and -9.5 < g[1] < -8.2 and -3 < g[2] < -1 and -72 < g[3] < -66
    _check(f, _load_db_phase)


def test_ac_multiplier(nets):
    # R (series and load), a capacitor, source dc, diode IS, N and CJO, at 10 kHz and 1 MHz
    # (measured: ≤ 1.1e-7 relative at h = 1e-3·|p|)
    f = function(nets["multiplier_ac"], ["r1", "c1", "rl", "vs.dc", "dmul.is", "dmul.n", "dmul.cjo"],
                 "ac", ["db(20)", "phase(20)"], freqs=[1e4, 1e6])
    _check(f, "db(20)")
    _check(f, "phase(20)")


@pytest.mark.slow  # sp_mos1's second derivatives through JAX: minutes of compilation
def test_ac_common_source(nets):
    f = function(nets["cs"], ["rd", "cl", "vin.dc", "m1.w", "m1.l", "nmos.kp"], "ac",
                 ["db(d)", "phase(d)"], freqs=[1e7, 1e8])
    _check(f, "db(d)", reverse=False)
    _check(f, "phase(d)", reverse=False)


def test_ac_rc_formula(tmp_path):
    """RC low-pass: gain and its derivatives against the closed form."""
    p = tmp_path / "rc.sim"
    p.write_text('rc\nload "resistor.osdi"\nload "capacitor.osdi"\nmodel r resistor\n'
                 'model c capacitor\nmodel vsource vsource\nvs (in 0) vsource dc=1 mag=1\n'
                 'r1 (in out) r r=1k\nc1 (out 0) c c=1n\n')
    fr = np.array([1e5, 1.59e5])
    f = function(p, ["r1", "c1"], "ac", ["db(out)"], freqs=fr)
    R, C, w = 1e3, 1e-9, 2 * np.pi * fr
    g = jax.grad(lambda v: f(v)["db(out)"][0])({"r1": R, "c1": C})
    # dB = −10·log10(1 + (ωRC)²) ⇒ ∂dB/∂R = −(20/ln 10)·ω²RC²/(1 + (ωRC)²)
    want = -(20 / np.log(10)) * w[0] ** 2 * R * C ** 2 / (1 + (w[0] * R * C) ** 2)
    np.testing.assert_allclose(float(g["r1"]), want, rtol=1e-12)  # exact algebra, rounding only
    np.testing.assert_allclose(np.asarray(f({})["db(out)"]), -10 * np.log10(1 + (w * R * C) ** 2),
                               rtol=1e-12)


def test_vmap_matches_single(nets):
    f = function(nets["graetz"], ["rl"], "op", ["outp"])
    vals = jnp.asarray([500.0, 1e3, 2e3])
    batch = jax.jit(jax.vmap(lambda r: f({"rl": r})["outp"]))(vals)
    one = [float(jax.jit(lambda r: f({"rl": r})["outp"])(r)) for r in vals]
    np.testing.assert_allclose(np.asarray(batch), one, rtol=1e-13)  # same code, one lane each


def test_bad_input(nets):
    with pytest.raises(Va2JaxError, match="'rx'") as e:
        function(nets["graetz"], ["rl", "rx"], "op")
    assert "\n" not in str(e.value)
    with pytest.raises(Va2JaxError, match="'dpwr.foo'"):
        function(nets["graetz"], ["dpwr.foo"], "op")
    with pytest.raises(Va2JaxError, match="output 'nope'"):
        function(nets["graetz"], ["rl"], "op", ["nope"])
    f = function(nets["graetz"], ["rl"], "op", ["outp"])
    with pytest.raises(Va2JaxError, match="'cl'"):
        f({"cl": 1e-6})


def test_osdi_parameter_is_an_error(tmp_path):
    from va2jax.sim.adapters import osdi_available, osdi_dirs

    lib = next((d / "spice" / "diode.osdi" for d in osdi_dirs()
                if (d / "spice" / "diode.osdi").is_file()), None)
    if lib is None or not osdi_available():
        pytest.skip("no OSDI library of the SPICE diode on this machine")
    p = tmp_path / "graetz_osdi.sim"  # the diodes from the OSDI library (an absolute path)
    p.write_text(GRAETZ.replace('"spice/diode.osdi"', f'"{lib.resolve()}"'))
    sim = Simulation.from_file(p)
    assert sim.library.sources.get("sp_diode") == "osdi"
    with pytest.raises(Va2JaxError, match="'dpwr.is'") as e:
        function(sim, ["rl", "dpwr.is"], "op")
    assert "\n" not in str(e.value)
    # voltage-only sensitivities through the OSDI devices still work
    f = function(sim, ["rl"], "op", ["outp"])
    g = float(jax.grad(lambda v: f(v)["outp"])({"rl": 1e3})["rl"])
    h = 0.1
    fd = (float(f({"rl": 1e3 + h})["outp"]) - float(f({"rl": 1e3 - h})["outp"])) / (2 * h)
    np.testing.assert_allclose(g, fd, rtol=REL)
