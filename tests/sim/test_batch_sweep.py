"""Batched parameter sweeps (va2jax.sim.batch): vmapped == one-by-one, sharded == unsharded,
and points checked against analytic formulas."""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import brentq

from va2jax.errors import Va2JaxError
from va2jax.sim import BatchSweep, Simulation, sweep

ROOT = Path(__file__).resolve().parents[2]
KT_Q = 1.380649e-23 * 300.15 / 1.602176634e-19  # thermal voltage at 27 °C

DIODE = """diode and resistor
load "resistor.osdi"
load "spice/diode.osdi"
model r resistor
model vsource vsource
model dmod sp_diode ( is={is_} n={n} rs={rs} )
v1 (a 0) vsource dc={v}
r1 (a b) r r={r}
d1 (b 0) dmod
control
  analysis op1 op
endc
"""

RC = """RC low-pass, pulse
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
vs (in 0) vsource dc=0 type="pulse" val0=0 val1={a} delay=0 rise=1u fall=1u width=1m period=2m
r1 (in out) r r={r}
c1 (out 0) c c={c}
control
  options tran_method="trap"
  analysis tran1 tran step=1u stop=0.5m maxstep=20u
endc
"""

RECT = """half-wave rectifier with RC load
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model r resistor
model c capacitor
model vsource vsource
model dmod sp_diode ( is=1e-14 n=1.2 rs=5 cjo=2p )
vs (in 0) vsource dc=1 type="sine" sinedc=0 ampl=2 freq=1meg
r0 (in a) r r=100
d1 (a out) dmod
rl (out 0) r r=10k
cl (out 0) c c=1n
control
  analysis tran1 tran step=1n stop=2u maxstep=20n
endc
"""

RL = """RL high-pass with controlled sources
load "resistor.osdi"
load "inductor.osdi"
model r resistor
model l inductor
model vsource vsource
model vcvs vcvs
model vccs vccs
v1 (a 0) vsource dc=0 type="pulse" val0=0 val1=1 delay=0 rise=1u fall=1u width=1m period=2m
r1 (a b) r r=1k
l1 (b 0) l l=1
e1 (o 0 b 0) vcvs gain=2
r3 (o 0) r r=1k
g1 (p 0 a 0) vccs gain=1m
r4 (p 0) r r=1k
control
  analysis tran1 tran step=1u stop=2m maxstep=20u
endc
"""

DIODE_NOM = dict(is_="1e-14", n="1.5", rs="2", v="1", r="1k")
RC_NOM = dict(a="1", r="1k", c="1u")


def _num(x: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(x))


def _write(path: Path, template: str, **kw: str) -> Path:
    path.write_text(template.format(**kw))
    return path


def _diode_values(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"r1": rng.uniform(200.0, 2e3, n), "v1": rng.uniform(0.2, 1.5, n),
            "dmod.is": 10.0 ** rng.uniform(-15, -13, n), "dmod.n": rng.uniform(1.0, 2.0, n),
            "dmod.rs": rng.uniform(0.5, 20.0, n)}


def _diode_analytic(v: float, r: float, is_: float, n: float, rs: float) -> float:
    """V(b) of v1 – r1 – diode(is, n, rs, gmin = 1e-12 S in parallel with the junction)."""
    vt = n * KT_Q

    def kcl(vj: float) -> float:  # junction voltage vj; the diode current flows through r + rs
        i = is_ * math.expm1(vj / vt) + 1e-12 * vj
        return v - vj - i * (r + rs)

    vj = brentq(kcl, -1.0, v, xtol=1e-15, rtol=1e-15)
    i = (v - vj) / (r + rs)
    return v - i * r


@pytest.fixture(scope="module")
def diode_sweep(tmp_path_factory):
    net = _write(tmp_path_factory.mktemp("batch") / "diode.sim", DIODE, **DIODE_NOM)
    bs = BatchSweep(net, ["r1", "v1", "dmod.is", "dmod.n", "dmod.rs"], prefer="builtin")
    vals = _diode_values(64)
    return net, bs, vals, bs.op(vals), bs.op_sequential(vals)


def test_op_batched_equals_sequential(diode_sweep):
    _, _, vals, batched, seq = diode_sweep
    assert batched.x.shape == (64, len(batched.names))
    assert np.all(batched.status == 0)
    np.testing.assert_allclose(batched.x, seq.x, rtol=1e-12, atol=1e-15)


def test_op_against_analytic_diode(diode_sweep):
    _, _, vals, batched, _ = diode_sweep
    for i in (0, 17, 63):
        ref = _diode_analytic(vals["v1"][i], vals["r1"][i], vals["dmod.is"][i], vals["dmod.n"][i],
                              vals["dmod.rs"][i])
        # Newton stops once its update is below reltol·|x| (1e-3); quadratic convergence
        # leaves an error of order reltol²·|x| (measured up to 1.2e-6 relative over 64 sets)
        assert abs(batched["b"][i] - ref) <= 1e-5 * abs(ref), (i, batched["b"][i], ref)


def test_op_lane_equals_simulator_run(diode_sweep, tmp_path):
    """A lane equals the ordinary simulator run on the netlist written with that set's values."""
    _, _, vals, batched, _ = diode_sweep
    for i in (3, 40):
        net = _write(tmp_path / f"d{i}.sim", DIODE, is_=_num(vals["dmod.is"][i]),
                     n=_num(vals["dmod.n"][i]), rs=_num(vals["dmod.rs"][i]), v=_num(vals["v1"][i]),
                     r=_num(vals["r1"][i]))
        res = Simulation.from_file(net, prefer="builtin").run()["op1"]
        for node in ("a", "b"):
            np.testing.assert_allclose(batched[node][i], res[node][0], rtol=1e-12)


@pytest.fixture(scope="module")
def rc_sweep(tmp_path_factory):
    net = _write(tmp_path_factory.mktemp("batch") / "rc.sim", RC, **RC_NOM)
    bs = BatchSweep(net, ["vs.val1", "r1", "c1"])
    rng = np.random.default_rng(2)
    vals = {"vs.val1": rng.uniform(0.5, 2.0, 32), "r1": rng.uniform(500.0, 2e3, 32),
            "c1": rng.uniform(0.2e-6, 1e-6, 32)}
    batched = bs.tran(vals, 0.5e-3, 1e-6, 20e-6, "trap")
    return net, bs, vals, batched


def test_tran_batched_equals_sequential(rc_sweep):
    _, bs, vals, batched = rc_sweep
    seq = bs.tran_sequential(vals, 0.5e-3, step=1e-6, maxstep=20e-6, method="trap")
    assert np.all(batched.status == 0)
    np.testing.assert_array_equal(batched.npoints, seq.npoints)
    for i in range(len(batched.npoints)):
        tb, xb = batched.lane(i)
        ts, xs = seq.lane(i)
        np.testing.assert_allclose(tb, ts, rtol=1e-12, atol=0)
        np.testing.assert_allclose(xb, xs, rtol=1e-12, atol=1e-15)


def test_tran_against_analytic_rc(rc_sweep):
    """v_out = A·(1 − (τ/tr)·(e^{−(t−tr)/τ} − e^{−t/τ})) after the 1 µs ramp (τ = RC)."""
    _, _, vals, batched = rc_sweep
    tr = 1e-6
    for i in (0, 9, 31):
        t, _ = batched.lane(i)
        out = batched["out"][i, : batched.npoints[i]]
        a, tau = vals["vs.val1"][i], vals["r1"][i] * vals["c1"][i]
        sel = t > 2 * tr
        exact = a * (1 - (tau / tr) * (np.exp(-(t[sel] - tr) / tau) - np.exp(-t[sel] / tau)))
        assert np.max(np.abs(out[sel] - exact)) < 1e-3 * a


def test_tran_lane_equals_simulator_run(rc_sweep, tmp_path):
    _, _, vals, batched = rc_sweep
    i = 5
    net = _write(tmp_path / "rc5.sim", RC, a=_num(vals["vs.val1"][i]), r=_num(vals["r1"][i]),
                 c=_num(vals["c1"][i]))
    res = Simulation.from_file(net).run()["tran1"]
    t, x = batched.lane(i)
    np.testing.assert_allclose(t, res["time"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(batched["out"][i, : len(t)], res["out"], rtol=1e-12, atol=1e-15)


def test_inductor_and_controlled_sources(tmp_path, monkeypatch):
    """Swept L, VCVS and VCCS gains, R and amplitude: the nominal lane equals the simulator run;
    before the falling edge v(b) = A·(τ/tr)·(e^{−(t−tr)/τ} − e^{−t/τ}) (τ = L/R),
    v(o) = gain_e·v(b), v(p) = −gain_g·r4·v(a)."""
    # the lanes run the XLA step loop, the simulator the native step kernel: unfused, the XLA
    # loop rounds every operation once as the kernel does (fused code on a CPU with FMA contracts
    # ``a*b + c``: its LTE steps then differ by ulps, amplified through the step control —
    # 5e-11 relative in time here; see test_native_step.py)
    monkeypatch.setenv("VA2JAX_SIM_FUSION", "0")
    net = tmp_path / "rl.sim"
    net.write_text(RL)
    vals = {"l1": [0.5, 1.0, 2.0], "e1": [3.0, 2.0, 0.5], "g1": [2e-3, 1e-3, 5e-4],
            "r1": [500.0, 1e3, 4e3], "v1.val1": [2.0, 1.0, 0.5]}
    res = BatchSweep(net, list(vals)).tran(vals, 2e-3, 1e-6, 20e-6)
    ref = Simulation.from_file(net).run()["tran1"]
    t, _ = res.lane(1)
    np.testing.assert_allclose(t, ref["time"], rtol=1e-12, atol=0)
    for node in ("a", "b", "o", "p", "l1:flow(br)"):
        np.testing.assert_allclose(res[node][1, : len(t)], ref[node], rtol=1e-12, atol=1e-15)
    tr = 1e-6
    for i in (0, 2):
        t, _ = res.lane(i)
        sel = (t > 2 * tr) & (t < 1e-3)
        a, tau = vals["v1.val1"][i], vals["l1"][i] / vals["r1"][i]
        vb = res["b"][i, : len(t)][sel]
        exact = a * (tau / tr) * (np.exp(-(t[sel] - tr) / tau) - np.exp(-t[sel] / tau))
        assert np.max(np.abs(vb - exact)) < 1e-3 * a
        np.testing.assert_allclose(res["o"][i, : len(t)], vals["e1"][i] * res["b"][i, : len(t)],
                                   rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(res["p"][i, : len(t)], -vals["g1"][i] * 1e3 * res["a"][i, : len(t)],
                                   rtol=1e-12, atol=1e-15)


def test_sweep_api_and_interpolation(rc_sweep):
    net, _, _, _ = rc_sweep
    res = sweep(net, {"r1": [1e3, 2e3]}, ("op", "tran"))
    assert res["op"]["out"].shape == (2,)
    grid = np.linspace(0.0, 0.5e-3, 6)
    w = res["tran"].at(grid, "out")
    assert w.shape == (2, 6)
    # larger R: slower charging
    assert np.all(w[1, 1:] < w[0, 1:])


def test_errors(rc_sweep, diode_sweep):
    net, bs, _, _ = rc_sweep
    dnet, dbs, _, _, _ = diode_sweep
    with pytest.raises(Va2JaxError, match="model parameter"):
        BatchSweep(dbs.sim, ["d1.is"])
    with pytest.raises(Va2JaxError, match="unknown parameter 'bogus'"):
        BatchSweep(dbs.sim, ["dmod.bogus"])
    with pytest.raises(Va2JaxError, match="r9"):
        BatchSweep(net, ["r9"])
    with pytest.raises(Va2JaxError, match="timing"):
        BatchSweep(net, ["vs.delay"])
    with pytest.raises(Va2JaxError, match="different lengths"):
        bs.table({"r1": [1.0, 2.0], "c1": [1.0, 2.0, 3.0]})


_SHARD_SCRIPT = r"""
import json, sys
import numpy as np
import jax
from va2jax.sim.batch import BatchSweep
assert len(jax.devices()) == 4, jax.devices()
what, net, vals_file, out_file = sys.argv[1:]
vals = dict(np.load(vals_file))
bs = BatchSweep(net, list(vals), prefer="builtin" if what == "op" else None)
if what == "op":
    res = bs.op(vals, mode="sharded")
    np.savez(out_file, x=res.x)
else:
    res = bs.tran(vals, 0.5e-3, 1e-6, 20e-6, "trap", mode="sharded")
    np.savez(out_file, time=res.time, x=res.x, npoints=res.npoints)
"""


def _run_sharded(tmp_path: Path, what: str, net: Path, vals: dict[str, np.ndarray]) -> dict:
    """Run a sweep on four forced host devices (XLA_FLAGS must be set before JAX starts, hence
    a subprocess); returns its arrays."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    vfile, ofile = tmp_path / "vals.npz", tmp_path / "out.npz"
    np.savez(vfile, **vals)
    proc = subprocess.run([sys.executable, "-c", _SHARD_SCRIPT, what, str(net), str(vfile), str(ofile)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(np.load(ofile))


def test_sharded_equals_unsharded(rc_sweep, tmp_path):
    """30 sets (padded to 32) on 4 devices == the same sets vmapped on one device."""
    net, _, vals, batched = rc_sweep
    sub = {k: v[:30] for k, v in vals.items()}
    res = _run_sharded(tmp_path, "tran", net, sub)
    assert res["x"].shape[0] == 30
    np.testing.assert_array_equal(res["npoints"], batched.npoints[:30])
    np.testing.assert_allclose(res["time"], batched.time[:30], rtol=1e-12, atol=0)
    np.testing.assert_allclose(res["x"], batched.x[:30], rtol=1e-12, atol=1e-15)


def test_sharded_equals_unsharded_diode(diode_sweep, tmp_path):
    net, _, vals, batched, _ = diode_sweep
    sub = {k: v[:61] for k, v in vals.items()}
    res = _run_sharded(tmp_path, "op", net, sub)
    np.testing.assert_allclose(res["x"], batched.x[:61], rtol=1e-12, atol=1e-15)


@pytest.mark.slow
def test_thousand_sets_generated_model(tmp_path):
    """1,000 parameter sets of a diode rectifier with the generated SPICE diode (the default
    model source): op and transient, batched == one by one."""
    net = tmp_path / "rect.sim"
    net.write_text(RECT)
    bs = BatchSweep(net, ["r0", "dmod.is", "dmod.n", "dmod.rs", "vs.ampl", "cl"])
    rng = np.random.default_rng(4)
    n = 1000
    vals = {"r0": rng.uniform(50, 200, n), "dmod.is": 10 ** rng.uniform(-15, -13, n),
            "dmod.n": rng.uniform(1, 2, n), "dmod.rs": rng.uniform(1, 10, n),
            "vs.ampl": rng.uniform(1, 3, n), "cl": rng.uniform(0.5e-9, 2e-9, n)}
    op_b, op_s = bs.op(vals), bs.op_sequential(vals)
    np.testing.assert_allclose(op_b.x, op_s.x, rtol=1e-12, atol=1e-15)
    tr_b = bs.tran(vals, 2e-6, 1e-9, 20e-9)
    tr_s = bs.tran_sequential(vals, 2e-6, step=1e-9, maxstep=20e-9)
    np.testing.assert_array_equal(tr_b.npoints, tr_s.npoints)
    # the step comes from the LTE estimate x − x_pred, a difference of nearly equal values, so
    # last-bit differences between the batched and the one-by-one loop move the times by up to
    # ≈ 1e-9 relative (measured 4.6e-10) and the points with them: |dx/dt|·Δt ≤ 2π·1 MHz·3 V ·
    # 1e-8·2 µs ≈ 0.4 µV
    np.testing.assert_allclose(tr_b.time, tr_s.time, rtol=1e-8, atol=0)
    np.testing.assert_allclose(tr_b.x, tr_s.x, rtol=1e-9, atol=1e-6)
    # the batch's first lane equals the simulator run of the netlist with its values
    i = 0
    txt = (RECT.replace("r r=100", f"r r={float(vals['r0'][i])!r}")
           .replace("is=1e-14 n=1.2 rs=5", f"is={float(vals['dmod.is'][i])!r} n={float(vals['dmod.n'][i])!r} "
                                           f"rs={float(vals['dmod.rs'][i])!r}")
           .replace("ampl=2", f"ampl={float(vals['vs.ampl'][i])!r}")
           .replace("c c=1n", f"c c={float(vals['cl'][i])!r}"))
    one = tmp_path / "rect0.sim"
    one.write_text(txt)
    res = Simulation.from_file(one).run()["tran1"]
    t, _ = tr_b.lane(i)
    np.testing.assert_allclose(t, res["time"], rtol=1e-8, atol=0)  # as above (LTE estimate)
    # setup runs in JAX inside the batch and in NumPy in the simulator (ulp-level differences),
    # amplified through the step control as above
    np.testing.assert_allclose(tr_b["out"][i, : len(t)], res["out"], rtol=1e-9, atol=1e-6)


SPICE_RC = """RC low-pass, SPICE
V1 in 0 PULSE(0 1 0 1u 1u 1m 2m)
R1 in out 1k
C1 out 0 100n
{options}
.tran 1u 0.5m
.end
"""


def test_spice_transient_sweep_needs_the_vacask_control(tmp_path):
    """A SPICE netlist's transient runs ngspice's step control; a batch transient runs VACASK's
    (its lanes must equal single runs of the netlist): refused in one error naming the option;
    with ``.options tran_control=vacask`` swept (values vs the RC formula)."""
    net = tmp_path / "rc.cir"
    net.write_text(SPICE_RC.format(options=""))
    with pytest.raises(Va2JaxError, match="tran_control=vacask"):
        sweep(net, {"r1": np.array([1e3, 2e3])}, ("tran",))
    net.write_text(SPICE_RC.format(options=".options tran_control=vacask"))
    r = sweep(net, {"r1": np.array([1e3, 2e3])}, ("tran",))["tran"]
    t = np.linspace(0, 0.5e-3, 11)
    v = r.at(t, "out")
    # formula: the 1 V pulse (1 µs rise) into RC = 0.1 / 0.2 ms, its ramp taken as a step half
    # the rise later (differs by ≤ rise²/(8·RC²) ≈ 1.3e-5 V); 1e-3 V: the integration error
    # reltol = 1e-3 (the default) allows on 1 V
    for lane, rc in enumerate((1e-4, 2e-4)):
        ref = np.where(t > 0, 1 - np.exp(-np.maximum(t - 0.5e-6, 0) / rc), 0.0)
        assert np.max(np.abs(v[lane] - ref)) < 1e-3, (lane, v[lane], ref)
    # the differentiable transient (sim.function) runs the same batch transient: the same refusal
    from va2jax.sim import function

    net.write_text(SPICE_RC.format(options=""))
    with pytest.raises(Va2JaxError, match="tran_control=vacask") as e:
        function(net, ["r1"], "tran", ["out"], times=[1e-4], stop=0.5e-3)
    assert "\n" not in str(e.value)
