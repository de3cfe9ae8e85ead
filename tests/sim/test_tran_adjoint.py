"""Transient derivatives of va2jax.sim.function (analysis="tran"): forward sensitivities (jvp) and
the discrete adjoint (jacrev) of the accepted time steps (sim/_tran_adjoint.py).

References: the closed-form response of an RC low-pass to a sine switched on at t = 0 and its
derivatives (JAX differentiating the formula), and central finite differences of the simulator
itself (Richardson-extrapolated as in test_differentiable.py) on the Graetz bridge.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from va2jax._circuits import circuit_text, variant
from va2jax.errors import Va2JaxError
from va2jax.sim import function

RC = """RC low-pass driven by a sine
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
vs (in 0) vsource dc=0 type="sine" sinedc=0 ampl=2 freq=1k
r1 (in out) r r=1k
c1 (out 0) c c=100n
"""

#: the shared Graetz bridge (examples/circuits/graetz.sim) with a 10 uF capacitor, no analyses
GRAETZ = variant(circuit_text("graetz"), {"cl (outp outn) c c=100u": "cl (outp outn) c c=10u"},
                 control="")


def _rc_formula(R, C, A, t, f0=1e3):
    """v_out(t) of an RC low-pass (τ = RC) driven by A·sin(ωt) from rest at t = 0 (V)."""
    w, tau = 2 * jnp.pi * f0, R * C
    k = 1 + (w * tau) ** 2
    return A * (w * tau / k * jnp.exp(-t / tau) + (jnp.sin(w * t) - w * tau * jnp.cos(w * t)) / k)


def test_rc_against_formula(tmp_path):
    p = tmp_path / "rc.sim"
    p.write_text(RC)
    ts = np.array([0.2e-3, 0.45e-3, 0.8e-3])
    f = function(p, ["r1", "c1", "vs.ampl"], "tran", ["out"], times=ts, stop=1e-3,
                 maxstep=2e-6, options={"reltol": 1e-7}, max_points=1024)
    v = dict(f.nominal)
    out = jax.jit(f)(v)
    assert int(out["status"]) == 0
    exact = _rc_formula(1e3, 100e-9, 2.0, ts)
    # trapezoidal steps ≤ 2 µs at reltol 1e-7 plus linear interpolation between accepted points
    # (h²/8·|v''| ≈ (2e-6)²/8·2·(2π·1e3)²·… < 1e-5 V): 1e-4 V
    np.testing.assert_allclose(np.asarray(out["out"]), exact, atol=1e-4)
    # derivatives of the discrete system vs the formula's: the same discretisation error, relative
    # to derivatives of O(1e3·V/F·…) — 1e-3 relative
    want = jax.jacfwd(lambda q: _rc_formula(q[0], q[1], q[2], ts))(jnp.asarray([1e3, 100e-9, 2.0]))
    rev = jax.jit(jax.jacrev(lambda v: f(v)["out"]))(v)
    jvp = jax.jit(lambda v, d: jax.jvp(lambda v: f(v)["out"], (v,), (d,))[1])
    for j, k in enumerate(["r1", "c1", "vs.ampl"]):
        fwd = jvp(v, {kk: float(kk == k) for kk in v})
        np.testing.assert_allclose(np.asarray(fwd), np.asarray(want[:, j]), rtol=1e-3, err_msg=k)
        np.testing.assert_allclose(np.asarray(rev[k]), np.asarray(want[:, j]), rtol=1e-3, err_msg=k)
        # forward and reverse mode: the same linear algebra transposed (rounding)
        np.testing.assert_allclose(np.asarray(rev[k]), np.asarray(fwd), rtol=1e-9, err_msg=k)


@pytest.mark.slow  # minutes: a ~500-step replay of the diode bridge, compiled for jvp and vjp
def test_graetz_against_finite_differences(tmp_path):
    p = tmp_path / "graetz.sim"
    p.write_text(GRAETZ)
    # R, C, diode IS, source amplitude, diode N. A fixed grid (steps of at most 20 µs, the
    # truncation-error control off: tran_lteratio 1e12), so that the finite differences see the
    # same accepted steps at p ± h as the adjoint holds fixed. (With the adaptive grid at reltol
    # 1e-6 the finite differences themselves moved by up to O(1) relative between p ± h and
    # p ± 2h on the small entries: the step controller's reaction to p, docs/sim.md.)
    f = function(p, ["rl", "cl", "dpwr.is", "vs.ampl", "dpwr.n"], "tran", ["outp"],
                 times=[2e-3, 5e-3, 9e-3], stop=10e-3, maxstep=2e-5, max_points=700,
                 options={"reltol": 1e-3, "tran_lteratio": 1e12})
    v = dict(f.nominal)
    one = jax.jit(f)
    assert int(one(v)["status"]) == 0
    rev = jax.jit(jax.jacrev(lambda v: f(v)["outp"]))(v)
    jvp = jax.jit(lambda v, d: jax.jvp(lambda v: f(v)["outp"], (v,), (d,))[1])
    for k in v:
        fwd = np.asarray(jvp(v, {kk: float(kk == k) for kk in v}))
        h = 1e-3 * abs(v[k])
        ys = []
        for s in (1, -1, 2, -2):
            o = one({**v, k: v[k] + s * h})
            assert int(o["status"]) == 0
            ys.append(np.asarray(o["outp"]))
        fd = (4 * (ys[0] - ys[1]) / (2 * h) - (ys[2] - ys[3]) / (4 * h)) / 3
        # the bound for transients (measured: ≤ 1.5e-4, the largest on dV/dC at 5 ms, an
        # entry 1,000× smaller than at 9 ms; Newton tolerance reltol 1e-3 in the FD evaluations)
        np.testing.assert_allclose(fwd, fd, rtol=1e-3, err_msg=f"{k} fwd")
        np.testing.assert_allclose(np.asarray(rev[k]), fd, rtol=1e-3, err_msg=f"{k} rev")


def test_multiplier_against_finite_differences(tmp_path):
    from test_differentiable import MULTIPLIER  # the shared netlist text (tests/sim on sys.path)

    p = tmp_path / "multiplier.sim"  # the dc-fed multiplier of test_differentiable, sine-driven
    p.write_text(variant(MULTIPLIER, {"vs (a 0) vsource dc=5\n":
                                      'vs (a 0) vsource dc=0 type="sine" sinedc=0 ampl=5 freq=100k\n'}))
    # source amplitude, a pump capacitor, the load R, diode IS, N and CJO; the output node 20 and
    # the middle node 2 over the first period. As for the Graetz bridge, a grid the step control
    # cannot move: steps of at most 0.1 µs, the truncation-error control off (tran_lteratio 1e12),
    # so that p ± h see the accepted steps the adjoint holds fixed. (With the LTE control on —
    # before function() kept its options' tran_lteratio, it silently ran at trtol = 7 — the
    # diodes' switching set the steps, and finite differences measured 1e-4 (amplitude, C, RL)
    # … 9e-2 (CJO) off the adjoint: the step controller's reaction to p, docs/sim.md.)
    keys = ["vs.ampl", "c1", "rl", "dmul.is", "dmul.n", "dmul.cjo"]
    f = function(p, keys, "tran", ["20", "2"], times=[3e-6, 6.5e-6, 9.5e-6], stop=10e-6,
                 maxstep=1e-7, max_points=200, options={"reltol": 1e-3, "tran_lteratio": 1e12})
    v = dict(f.nominal)

    def out(v):
        o = f(v)
        return jnp.concatenate([o["20"], o["2"]])

    one = jax.jit(lambda v: (out(v), f(v)["status"]))
    rev = jax.jit(jax.jacrev(out))(v)
    jvp = jax.jit(lambda v, d: jax.jvp(out, (v,), (d,))[1])
    for k in keys:
        fwd = np.asarray(jvp(v, {kk: float(kk == k) for kk in keys}))
        h = 1e-3 * abs(v[k])
        ys = []
        for s in (1, -1, 2, -2):
            y, st = one({**v, k: v[k] + s * h})
            assert int(st) == 0
            ys.append(np.asarray(y))
        fd = (4 * (ys[0] - ys[1]) / (2 * h) - (ys[2] - ys[3]) / (4 * h)) / 3  # Richardson
        assert np.all(np.abs(fd) > 0), k
        # within the 1e-3 for transients, and tighter: on a fixed grid the transient is
        # a smooth function of p, FD truncation O(h⁴) (Richardson) and the replayed points
        # Newton-polished — measured ≤ 1.6e-8 (RL, CJO; h = 1e-3·|p|): 1e-6 leaves 60× margin
        np.testing.assert_allclose(fwd, fd, rtol=1e-6, err_msg=f"{k} fwd")
        np.testing.assert_allclose(np.asarray(rev[k]), fd, rtol=1e-6, err_msg=f"{k} rev")


def test_multiplier_reverse_mode_is_finite(tmp_path):
    """jacrev of a multiplier transient over two periods equals forward mode. The replay's padding
    rows (past the last accepted point) used to take a 1 s step, where the Jacobian of the
    multiplier's capacitor-coupled nodes is singular: every reverse-mode entry came out NaN.
    Only a source and an element parameter: the diode group has no traced parameter, and the
    replay's charges still need its ∂q/∂x (a ValueError "FFI call cannot be differentiated"
    before the replay took every generated group through Model.function)."""
    from test_differentiable import MULTIPLIER

    p = tmp_path / "multiplier.sim"
    p.write_text(variant(MULTIPLIER, {"vs (a 0) vsource dc=5\n":
                                      'vs (a 0) vsource dc=0 type="sine" sinedc=0 ampl=5 freq=100k\n'}))
    f = function(p, ["vs.ampl", "c1"], "tran", ["20"], times=[6e-6, 19e-6], stop=20e-6,
                 maxstep=1e-7, max_points=300, options={"reltol": 1e-3})
    v = dict(f.nominal)
    rev = jax.jit(jax.jacrev(lambda v: f(v)["20"]))(v)
    jvp = jax.jit(lambda v, d: jax.jvp(lambda v: f(v)["20"], (v,), (d,))[1])
    for k in v:
        fwd = np.asarray(jvp(v, {kk: float(kk == k) for kk in v}))
        assert np.all(np.isfinite(fwd)) and np.all(fwd != 0), k
        # the same linear algebra transposed: rounding only
        np.testing.assert_allclose(np.asarray(rev[k]), fwd, rtol=1e-9, err_msg=k)


def test_tran_bad_input(tmp_path):
    p = tmp_path / "rc.sim"
    p.write_text(RC)
    with pytest.raises(Va2JaxError, match="stop"):
        function(p, ["r1"], "tran", ["out"], times=[1e-4])
    with pytest.raises(Va2JaxError, match="times"):
        function(p, ["r1"], "tran", ["out"], times=[2e-3], stop=1e-3)
    with pytest.raises(Va2JaxError, match="ac output"):
        function(p, ["r1"], "tran", ["db(out)"], times=[1e-4], stop=1e-3)
    with pytest.raises(Va2JaxError, match="'r9'") as e:
        function(p, ["r9"], "tran", ["out"], times=[1e-4], stop=1e-3)
    assert "\n" not in str(e.value)
    with pytest.raises(Va2JaxError, match="waveform"):
        function(p, ["r1"], "op", ["out"]).waveform({})


def test_crossings_of_a_sine():
    """sim.crossings against the crossing times of sin(2πt) at level 0.5: t = 1/12 + k rising,
    5/12 + k falling (the sine sampled every h = 1e-3, so linear interpolation is off by
    ≤ h²/8·|y''|/|y'| = 1e-6/8·(2π)²·0.5/(2π·cos(π/6)) ≈ 4.5e-7: 1e-6 absolute), and its
    derivative in the level against
    1/y'(t_c) = 1/(2π·cos(π/6)) (the interpolant's slope is the chord's: O(h) relative)."""
    from va2jax.sim import crossings

    t = np.linspace(0.0, 3.0, 3001)
    y = jnp.sin(2 * np.pi * jnp.asarray(t))
    tt = jnp.concatenate([jnp.asarray(t), jnp.full(5, jnp.inf)])  # padded like waveform()
    yy = jnp.concatenate([y, jnp.full(5, y[-1])])
    up = crossings(tt, yy, 0.5, 4)
    np.testing.assert_allclose(np.asarray(up[:3]), 1 / 12 + np.arange(3), atol=1e-6)
    assert np.isnan(float(up[3]))  # three rising crossings only
    down = crossings(tt, yy, 0.5, 2, after=1.0, rising=False)
    np.testing.assert_allclose(np.asarray(down), 5 / 12 + np.arange(1, 3), atol=1e-6)
    d = jax.grad(lambda lv: crossings(tt, yy, lv, 1)[0])(0.5)
    np.testing.assert_allclose(float(d), 1 / (2 * np.pi * np.cos(np.pi / 6)), rtol=1e-3)
    # the value derivative: shifting the whole waveform by δ moves the crossing by −δ/y'
    g = jax.grad(lambda s: crossings(tt, yy + s, 0.5, 1)[0])(0.0)
    np.testing.assert_allclose(float(g), -float(d), rtol=1e-12)
