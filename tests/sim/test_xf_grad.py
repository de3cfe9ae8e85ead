"""``xf_function`` (sim/_xf_grad.py): the ``dcxf``/``acxf`` transfer functions as JAX functions of
parameters — equal to the host analyses of sim/_xf.py (themselves checked against VACASK in
test_xf.py) and with derivatives equal to central finite differences."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sim_peers import shared_circuit

from va2jax.errors import Va2JaxError
from va2jax.sim import Simulation, xf_function

#: the diode bias circuit shared with test_xf.py (tests/data/circuits/xf_diode.sim: generated SPICE
#: diode with series resistance and junction capacitance; two voltage sources and a current source)
DIODE = shared_circuit("xf_diode") + """control
  options temp=27 reltol=1e-14 vntol=1e-12
  analysis xf1 dcxf out="2"
  analysis axf1 acxf out="2" from=1 to=1e9 mode="dec" points=2
endc
"""

#: five parameter kinds: a model-card parameter, a resistor's value, a source's dc value, a
#: capacitor's instance parameter, a device instance parameter
NOM = {"d.is": 1e-12, "r1": 1e3, "v1.dc": 0.8, "c1.c": 1e-9, "d1.area": 1.0}

#: Both sides solve the same small-signal system at the same operating point (the host one
#: converged to reltol=1e-14, ours polished by full Newton steps to rounding level); the LU
#: factorisations differ (SciPy's plain LAPACK there, an equilibrated one here) in rounding only,
#: measured ~3e-13 of each vector's largest magnitude: 1e-9 leaves margin and still catches a
#: wrong sign, stamp or excitation.
RTOL = 1e-9
#: Central differences with h = 1e-5·value: truncation ~(h/(n·Vt))²/6 ≈ 4e-9 for the diode's
#: exponential (n·Vt ≈ 52 mV, h = 8 µV for v1.dc); rounding ~1e-15/1e-5 = 1e-10 (the operating
#: point is polished to rounding level). The brief's bound is 1e-6.
FD_REL = 1e-6
H = 1e-5


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    p = tmp_path_factory.mktemp("xfgrad") / "diode.sim"
    p.write_text(DIODE)
    s = Simulation.from_file(p)
    return s, s.run()


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _central(fn, nom, k):
    h = H * nom[k]
    return (fn({**nom, k: nom[k] + h}) - fn({**nom, k: nom[k] - h})) / (2 * h)


def _check_grad(fn, nom, grads):
    """Every derivative in ``grads`` equals the central difference of ``fn`` (a derivative that is
    exactly 0, such as a capacitor's at DC, must have a zero difference too)."""
    for k in nom:
        fd = np.asarray(_central(fn, nom, k))
        g = np.asarray(grads[k])
        if np.all(fd == 0):
            assert np.all(g == 0), (k, g)
            continue
        assert np.max(np.abs(g - fd)) / np.max(np.abs(fd)) < FD_REL, (k, g, fd)


def test_dcxf_values_and_jacobian(sim):
    """dcxf: every default vector (tf, zin of v2, v1, i1) equals the host analysis; jacfwd (all
    vectors, five parameter kinds) equals central differences."""
    s, res = sim
    f = jax.jit(xf_function(s, list(NOM), "2", "dcxf"))
    out = f(NOM)
    assert int(out["status"]) == 0
    ref = res["xf1"]
    assert set(out) - {"status"} == set(ref.names)
    for k in ref.names:
        assert _rel(out[k], ref[k][0]) < RTOL, k
    names = list(ref.names)

    def vec(v):
        o = f(v)
        return jnp.stack([o[k] for k in names])

    _check_grad(vec, NOM, jax.jacfwd(vec)(NOM))


def test_acxf_values_and_gradient(sim):
    """acxf at 1 Hz … 1 GHz: the complex vectors (and yin, asked for by name) equal the host
    analysis; jax.grad (reverse mode) of a real objective mixing |tf|², Re zin and Im yin equal
    central differences for all five parameters."""
    s, res = sim
    ref = res["axf1"]
    fr = np.asarray(ref["frequency"])
    outs = ["tf(v1)", "zin(i1)", "yin(v1)", "tf(v2)"]
    f = jax.jit(xf_function(s, list(NOM), "2", "acxf", freqs=fr, outputs=outs))
    out = f(NOM)
    assert int(out["status"]) == 0
    for k in ("tf(v1)", "zin(i1)", "tf(v2)"):
        assert out[k].shape == fr.shape and _rel(out[k], ref[k]) < RTOL, k
    # yin of a voltage source is 1/zin (module doc of sim/_xf.py)
    assert _rel(out["yin(v1)"], 1 / np.asarray(ref["zin(v1)"])) < RTOL

    def loss(v):
        o = f(v)
        return (jnp.sum(jnp.abs(o["tf(v1)"]) ** 2) + 1e-3 * jnp.sum(jnp.real(o["zin(i1)"]))
                + 1e3 * jnp.sum(jnp.imag(o["yin(v1)"])) + jnp.sum(jnp.abs(o["tf(v2)"])))

    _check_grad(loss, NOM, jax.grad(loss)(NOM))


@pytest.mark.parametrize("kw, fragment", [
    (dict(params=["d.iss"], out="2"), "unknown parameter 'iss'"),
    (dict(params=["d.is"], out="22"), "output '22' is not a node"),
    (dict(params=["d.is"], out="2", outputs=["tf(v3)"]), "'v3' is not an instance"),
    (dict(params=["d.is"], out="2", outputs=["tf(r1)"]), "'r1' is not an independent source"),
    (dict(params=["d.is"], out="2", outputs=["gain(v1)"]), "output 'gain(v1)'"),
    (dict(params=["d.is"], out="2", analysis="acxf"), "needs freqs"),
])
def test_bad_input_is_one_line_error(sim, kw, fragment):
    with pytest.raises(Va2JaxError) as exc:
        xf_function(sim[0], **kw)
    msg = str(exc.value)
    assert msg.startswith("xf_function: ") and fragment in msg and "\n" not in msg, msg


#: the common-source amplifier shared with test_xf.py (tests/data/circuits/xf_mosamp.sim: generated
#: SPICE level-1 MOSFET with overlap and junction capacitances)
MOSAMP = shared_circuit("xf_mosamp") + """control
  options temp=27 reltol=1e-14 vntol=1e-12
  analysis axf1 acxf out="d" from=1k to=1e11 mode="dec" points=1
endc
"""


def test_mos_amplifier_acxf_gradient(tmp_path):
    """The MOS1 amplifier's gain and input impedance from 1 kHz to 100 GHz: values equal the host
    acxf; jax.grad of log|tf(vin)| + log|zin(vin)| in a model-card, an instance, an element and a source
    parameter equals central differences. (Not Re zin(vin): the gate is nearly open, zin is
    ~1/(jωC) and its real part is rounding noise of the solve, useless for differences.)"""
    p = tmp_path / "amp.sim"
    p.write_text(MOSAMP)
    s = Simulation.from_file(p)
    ref = s.run()["axf1"]
    fr = np.asarray(ref["frequency"])
    nom = {"nmos.kp": 200e-6, "m1.w": 2e-6, "rd": 5e3, "vin.dc": 0.5}
    f = jax.jit(xf_function(s, list(nom), "d", "acxf", freqs=fr, outputs=["tf(vin)", "zin(vin)"]))
    out = f(nom)
    assert int(out["status"]) == 0
    for k in ("tf(vin)", "zin(vin)"):
        assert _rel(out[k], ref[k]) < RTOL, k

    def loss(v):
        o = f(v)
        return jnp.sum(jnp.log(jnp.abs(o["tf(vin)"]))) + jnp.sum(jnp.log(jnp.abs(o["zin(vin)"])))

    _check_grad(loss, nom, jax.grad(loss)(nom))
