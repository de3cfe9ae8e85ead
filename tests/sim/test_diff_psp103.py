"""Differentiable analyses with the generated PSP103 (issue 18, done-when 1): a common-source
amplifier's DC output, AC gain and phase and transient samples, and a PSP103 ring oscillator's
period, derivatives forward (``jacfwd``/``jvp``) and reverse (``jacrev``/``grad``) against central
finite differences of the same simulator.

Finite differences: Richardson-extrapolated central differences at ``h = 1e-3·|p|`` and ``2h``
(``(4·D(h) − D(2h))/3``, truncation ``O(h⁴)``), as in test_differentiable.py, whose docstring
gives the error budget. Transients run on a grid the step controller cannot move (``maxstep``
bound, ``tran_lteratio = 1e12``), so ``p ± h`` see the accepted steps the adjoint holds fixed
(sim/_tran_adjoint.py, docs/sim.md).

PSP103's tangents come from its native tangent kernels (docs/native.md), and each test
compiles one program for forward and reverse mode together — 15–95 s of XLA compile per test on
the loaded 2-core VM, 0.5–3.5 minutes per test in all (docs/sim.md, "Differentiable analyses").
The operating-point check is the quick one and runs in the default suite; the AC, transient and
ring checks are marked slow.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest

from va2jax._circuits import circuit_text
from va2jax.sim import crossings, function

AMP = circuit_text("cs_psp103")  # the sizing example's amplifier, as written

RING = """3-stage CMOS ring oscillator, PSP103 at 1.2 V, loaded by 1 fF per stage
load "capacitor.osdi"
load "psp103v4.osdi"
model c capacitor
model vsource vsource
model isource isource
model nmos psp103va ( type=1 toxo=2n vfbo=-1 nsubo=3e23 uo=0.04 )
model pmos psp103va ( type=-1 toxo=2n vfbo=-1 nsubo=3e23 uo=0.015 )
vdd (vdd 0) vsource dc=1.2
ik (0 n1) isource dc=0 type="pulse" val0=0 val1=10u delay=10p rise=10p fall=10p width=20p
mp1 (n2 n1 vdd vdd) pmos w=2u l=0.1u
mn1 (n2 n1 0 0) nmos w=1u l=0.1u
mp2 (n3 n2 vdd vdd) pmos w=2u l=0.1u
mn2 (n3 n2 0 0) nmos w=1u l=0.1u
mp3 (n1 n3 vdd vdd) pmos w=2u l=0.1u
mn3 (n1 n3 0 0) nmos w=1u l=0.1u
c1 (n1 0) c c=1f
c2 (n2 0) c c=1f
c3 (n3 0) c c=1f
"""


def _fd(one, v: dict, k: str, rel: float = 1e-3) -> np.ndarray:
    """Richardson-extrapolated central difference of ``one(values)`` in ``k`` (module
    docstring), ``h = rel·|p|``."""
    h = rel * abs(v[k])
    ys = [np.asarray(one({**v, k: v[k] + s * h})) for s in (1, -1, 2, -2)]
    return (4 * (ys[0] - ys[1]) / (2 * h) - (ys[2] - ys[3]) / (4 * h)) / 3


def _both(g, v):
    """``(jacfwd, jacrev)`` of ``g`` at ``v``, compiled as one program."""
    return jax.jit(lambda v: (jax.jacfwd(g)(v), jax.jacrev(g)(v)))(v)


def _check(g, one, v, rtol, rel: float = 1e-3):
    fwd, rev = _both(g, v)
    for k in v:
        fd = _fd(one, v, k, rel)
        assert np.all(np.abs(fd) > 0), k  # a derivative that is there to check
        np.testing.assert_allclose(np.asarray(fwd[k]), fd, rtol=rtol, err_msg=f"{k} fwd")
        np.testing.assert_allclose(np.asarray(rev[k]), fd, rtol=rtol, err_msg=f"{k} rev")


def test_op_psp103_amplifier(tmp_path):
    p = tmp_path / "amp.sim"
    p.write_text(AMP)
    # a resistor, a source, instance W and L, two model-card parameters (oxide thickness,
    # flat-band voltage)
    f = function(p, ["rd", "vin.dc", "m1.w", "m1.l", "nmos.toxo", "nmos.vfbo"], "op", ["d"])
    v = dict(f.nominal)
    one = jax.jit(lambda v: f(v)["d"])
    out = jax.jit(f)(v)
    assert int(out["status"]) == 0
    assert 0.1 < float(out["d"]) < 1.1  # biased in saturation between the rails
    # the bound for DC (FD error budget: test_differentiable.py)
    _check(lambda v: f(v)["d"], one, v, rtol=1e-5)


@pytest.mark.slow
def test_ac_psp103_amplifier(tmp_path):
    p = tmp_path / "amp.sim"
    p.write_text(AMP)
    # gain (dB) and phase at 100 MHz and 1 GHz (the load pole is at ≈ 0.6 GHz) in the load,
    # the load capacitance, W, L and the oxide thickness: the Jacobians' derivatives in the
    # parameters and, through the operating point, in the voltages (PSP103's second derivatives)
    f = function(p, ["rd", "cl", "m1.w", "m1.l", "nmos.toxo"], "ac", ["db(d)", "phase(d)"],
                 freqs=[1e8, 1e9])
    v = dict(f.nominal)

    def g(v):
        r = f(v)
        return jax.numpy.concatenate([r["db(d)"], r["phase(d)"]])

    one = jax.jit(g)
    gain = np.asarray(one(v))
    assert 5 < gain[0] < 40 and gain[1] < gain[0], gain  # an amplifier, rolling off
    # the bound for AC (FD error budget: test_differentiable.py)
    _check(g, one, v, rtol=1e-5)


@pytest.mark.slow
def test_tran_psp103_amplifier(tmp_path):
    p = tmp_path / "amp.sim"
    p.write_text(AMP)
    # a resistor, a capacitor, the input's amplitude, instance W, a model-card parameter
    f = function(p, ["rd", "cl", "vin.ampl", "m1.w", "nmos.toxo"], "tran", ["d"],
                 times=[0.35e-9, 0.6e-9, 0.9e-9], stop=1e-9, maxstep=5e-12, max_points=260,
                 options={"tran_lteratio": 1e12})
    v = dict(f.nominal)
    one = jax.jit(lambda v: f(v)["d"])
    out = jax.jit(f)(v)
    assert int(out["status"]) == 0
    # the bound for transients on a held grid
    _check(lambda v: f(v)["d"], one, v, rtol=1e-3)


@pytest.mark.slow
def test_ring_period(tmp_path):
    p = tmp_path / "ring.sim"
    p.write_text(RING)
    keys = ["mn1.w", "mp1.l", "vdd.dc", "c1", "nmos.toxo"]
    # 0.3 ns on a fixed 0.5 ps grid: nine periods of ≈ 33 ps
    f = function(p, keys, "tran", ["n1"], times=[0.1e-9], stop=0.3e-9, maxstep=0.5e-12,
                 max_points=700, options={"tran_lteratio": 1e12})

    def period(v):
        """Mean period (s) over the four cycles between the first five rising mid-supply
        crossings of v(n1) after 90 ps (start-up over)."""
        w = f.waveform(v)
        tc = crossings(w["time"], w["n1"], 0.6, 5, after=0.09e-9)
        return (tc[-1] - tc[0]) / 4

    wf = jax.jit(f.waveform)

    def intervals(v):
        """The accepted grid and the intervals holding the five crossings."""
        w = wf(v)
        t, y, n = np.asarray(w["time"]), np.asarray(w["n1"]), int(w["npoints"])
        up = np.nonzero((t[:n - 1] > 0.09e-9) & (y[:n - 1] < 0.6) & (y[1:n] >= 0.6))[0][:5]
        return t[:n].tobytes(), tuple(up)

    v = dict(f.nominal)
    one = jax.jit(period)
    t0 = float(one(v))
    assert 20e-12 < t0 < 50e-12, t0
    # the differences are those of a smooth function only while every evaluation has the same
    # grid and each crossing stays in its interval (docs/sim.md): at h = 1e-3·|p| some crossings
    # move to the next interval (vdd.dc, nmos.toxo, mp1.l), and the differences then carry the
    # interpolation's slope kink (3 % for vdd.dc); at 5e-5 (h and 2h) none does — asserted
    rel = 5e-5
    ref = intervals(v)
    for k in v:
        for s in (1, -1, 2, -2):
            assert intervals({**v, k: v[k] + s * rel * abs(v[k])}) == ref, (k, s)
    _check(period, one, v, rtol=1e-3, rel=rel)
