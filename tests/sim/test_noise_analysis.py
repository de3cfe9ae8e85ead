"""VACASK's ``noise`` analysis: against formulas (resistor 4kT/R, RC kT/C, diode 2qI + flicker) and
against VACASK itself on the same netlists; bad input.

Constants: VACASK's ``resistor`` module (stamped by va2jax) uses OpenVAF's ``P_K`` =
1.3806503e-23 J/K; ``tests/data/va/noise_diode.va`` writes out the SI 2019 k and q.
"""
from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_peers import run_vacask

from va2jax.sim import Simulation
from va2jax.sim._noise_analysis import input_referred

ROOT = Path(__file__).resolve().parents[2]
VA = ROOT / "tests" / "data" / "va"
MODELS_INC = ROOT / "tests" / "data" / "vacask_suite" / "ring" / "vacask" / "models.inc"

P_K = 1.3806503e-23  # OpenVAF's constants.vams (VACASK's resistor module)
K_SI, Q_SI = 1.380649e-23, 1.602176634e-19  # noise_diode.va
T = 300.15  # options temp=27
# Formula vs simulation: the same quantities computed in another order (a few roundings of
# 1e-16) and a DC operating point converged to reltol=1e-14; 1e-9 is the bound.
REL = 1e-9
# va2jax vs VACASK: the same model equations (generated code vs OpenVAF's OSDI library, equal to
# 1e-12 per density, docs/noise.md), the same operating point (reltol=1e-14) and LU solves of
# the same matrices in another order; 1e-6 is the bound.
REL_PEER = 1e-6


def _sim(tmp_path: Path, text: str, name: str = "noise1"):
    p = tmp_path / "runme.sim"
    p.write_text(text)
    return Simulation.from_file(p).run()[name]


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def _head(loads: str = "") -> str:
    return ('noise test\nground 0\nload "resistor.osdi"\nload "capacitor.osdi"\n' + loads +
            "model vsource vsource\nmodel isource isource\nmodel resistor resistor\n"
            "model capacitor capacitor\n")


_CTL = "control\n  options temp=27 reltol=1e-14 vntol=1e-12\n  save full\n"


@pytest.mark.parametrize("mfactor", [None, 3])
def test_resistor_thermal(tmp_path, mfactor):
    """Current source into R: onoise = (4kT/R)·R² (V²/Hz), gain = R², input-referred 4kT/R.
    With $mfactor = m (the real resistor module, generated): m·4kT/R into R/m."""
    R = 2.7e3
    m = f" $mfactor={mfactor}" if mfactor else ""
    res = _sim(tmp_path, _head() + f"i1 (0 1) isource dc=0\nr1 (1 0) resistor r={R!r}{m}\n" + _CTL +
               '  analysis noise1 noise out="1" in="i1" from=1 to=1e9 mode="dec" points=3\nendc\n')
    mm = mfactor or 1
    Reff = R / mm
    assert _rel(res["onoise"], mm * 4 * P_K * T / R * Reff ** 2) < REL
    assert _rel(res["gain"], Reff ** 2) < REL
    assert _rel(input_referred(res), mm * 4 * P_K * T / R) < REL
    assert _rel(res["n(r1,thermal)"], res["onoise"]) < REL


def test_rc_lowpass_integrated_kT_over_C(tmp_path):
    """∫₀^∞ 4kTR/(1 + (2πfRC)²) df = kT/C, to 1e-9.

    Quadrature: Gauss–Legendre with 16 nodes on every decade of ln f from 1e-6 Hz to 1e17 Hz
    (the analysis runs at exactly those frequencies, ``values=[...]``). The integrand in u = ln f,
    S·f, is analytic with poles π/2 from the real axis, so 16 nodes per decade leave ~1e-16; the
    tails outside the range are below 4kTR·1e-6 Hz and 4kTR·fc²/1e17 Hz, i.e. < 1e-11 of kT/C
    (fc = 1/(2πRC) ≈ 159 kHz).
    """
    R, C = 1e3, 1e-9
    x, w = np.polynomial.legendre.leggauss(16)
    h = math.log(10.0)
    us = np.concatenate([(d + 0.5) * h + 0.5 * h * x for d in range(-6, 17)])
    ws = np.tile(0.5 * h * w, 23)
    freqs = np.exp(us)
    vals = ", ".join(repr(float(f)) for f in freqs)
    res = _sim(tmp_path, _head() + f"v1 (1 0) vsource dc=0\nr1 (1 2) resistor r={R!r}\n"
               f"c1 (2 0) capacitor c={C!r}\n" + _CTL +
               f'  analysis noise1 noise out="2" in="v1" values=[{vals}]\nendc\n')
    f = res["frequency"]
    S = res["onoise"]
    assert _rel(S, 4 * P_K * T * R / (1 + (2 * math.pi * f * R * C) ** 2)) < REL
    total = float(np.sum(ws * S * f))
    assert abs(total / (P_K * T / C) - 1) < REL
    assert _rel(res["gain"], 1 / (1 + (2 * math.pi * f * R * C) ** 2)) < REL


def _diode_op(V: float, R: float, Is: float, n: float) -> tuple[float, float]:
    """Diode current and conductance of V — R — diode to ground (bisection to the last ulp)."""
    vt = n * K_SI * T / Q_SI
    lo, hi = 0.0, V
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if Is * (math.exp(mid / vt) - 1) > (V - mid) / R:
            hi = mid
        else:
            lo = mid
    vd = 0.5 * (lo + hi)
    return Is * (math.exp(vd / vt) - 1), Is / vt * math.exp(vd / vt)


def test_diode_shot_and_flicker(tmp_path):
    """V — R — diode: at the diode node |Z|² = 1/(1/R + gd)²; shot 2qI and flicker
    kf·I^af/f^ef of the diode, 4kT/R of the resistor."""
    R, Is, n, kf, af, ef = 1e3, 1e-14, 1.2, 1e-12, 1.3, 1.1
    res = _sim(tmp_path, _head(f'load "{VA / "noise_diode.va"}"\n') +
               f"model dm noise_diode is={Is!r} n={n!r} kf={kf!r} af={af!r} ef={ef!r}\n"
               f"v1 (1 0) vsource dc=0.9\nr1 (1 2) resistor r={R!r}\nd1 (2 0) dm\n" + _CTL +
               '  analysis noise1 noise out="2" in="v1" from=1 to=1e8 mode="dec" points=2\nendc\n')
    f = res["frequency"]
    i, gd = _diode_op(0.9, R, Is, n)
    Z2 = 1 / (1 / R + gd) ** 2
    assert _rel(res["n(d1,shot)"], Z2 * 2 * Q_SI * i) < REL
    assert _rel(res["n(d1,flicker)"], Z2 * kf * i ** af / f ** ef) < REL
    assert _rel(res["n(r1)"], Z2 * 4 * P_K * T / R) < REL
    assert _rel(res["onoise"], Z2 * (2 * Q_SI * i + kf * i ** af / f ** ef + 4 * P_K * T / R)) < REL
    assert _rel(res["gain"], (Z2 / R ** 2)) < REL


DIODE_NET = """Noise: diode and resistor
ground 0
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
model d sp_diode is=1e-12 n=2 kf=1e-15 af=1.2 rs=10
v2 (2 0) vsource dc=0.8 mag=1
r2 (2 3) resistor r=1k
r3 (3 4) resistor r=200
d2 (4 0) d area=5
c2 (3 0) capacitor c=1u
control
  options temp=27 reltol=1e-14 vntol=1e-12
  save full
  analysis noise1 noise out=["3", "4"] in="v2" from=1 to=10G mode="dec" points=10
endc
"""

CS_NET = """Noise: PSP103 common-source amplifier
ground 0
load "psp103v4.osdi"
load "resistor.osdi"
load "capacitor.osdi"
include "models.inc"
model vsource vsource
model resistor resistor
model capacitor capacitor
vdd (vdd 0) vsource dc=1.2
vin (in 0) vsource dc=0.6 mag=1
rs (in g) resistor r=50
rd (vdd out) resistor r=5k
cl (out 0) capacitor c=50f
m1 (out g 0 0) nmos w=2u l=0.2u
control
  options temp=27 reltol=1e-14 vntol=1e-12
  save full
  analysis noise1 noise out="out" in="vin" from=1 to=10G mode="dec" points=10
endc
"""


@pytest.mark.parametrize("net", ["diode", "diode_osdi", "psp103_cs"])
def test_against_vacask(tmp_path, net):
    """Every vector of VACASK's rawfile (output noise, power gain, per instance and per source)
    over 1 Hz–10 GHz, and the input-referred noise onoise/gain. ``diode_osdi``: the models are
    the OSDI libraries VACASK loads (their ``load_noise``), not generated code."""
    text = DIODE_NET if net.startswith("diode") else CS_NET
    if net == "psp103_cs":
        (tmp_path / "models.inc").write_text(MODELS_INC.read_text())
    p = tmp_path / "runme.sim"
    p.write_text(text)
    ref = run_vacask(p, tmp_path, "noise1")
    assert ref.plotname == "Small-Signal Noise Analysis"
    res = Simulation.from_file(p, prefer="osdi" if net == "diode_osdi" else None).run()["noise1"]
    assert ["frequency"] + res.names == ref.names  # names and VACASK's order
    assert _rel(res["frequency"], ref["frequency"]) < 1e-14
    for nm in ref.names[1:]:
        a, b = res[nm], ref[nm]
        nz = b != 0
        assert np.array_equal(a == 0, ~nz), nm  # the same sources are off
        if nz.any():
            assert _rel(a[nz], b[nz]) < REL_PEER, nm
    assert _rel(input_referred(res), ref["onoise"] / ref["gain"]) < REL_PEER
    assert np.all(ref["onoise"] > 0)


BSIM4_DP = """Noise: BSIM4 differential pair
ground 0
load "resistor.osdi"
load "capacitor.osdi"
load "{lib}"
model resistor resistor
model capacitor capacitor
model vsource vsource
model nmos {module} ( type=1 toxe=2n toxp=2n toxm=2n vth0=0.4 u0=0.04 rgatemod=1 w=2u l=0.2u )
vdd (vdd 0) vsource dc=1.2
vcm (cm 0) vsource dc=0.7
vid (inp cm) vsource dc=0 mag=1
rgp (inp gp) resistor r=100
rgn (cm gn) resistor r=150
m1 (outn gp tail 0) nmos
m2 (outp gn tail 0) nmos
rtail (tail 0) resistor r=4k
r1 (vdd outn) resistor r=5k
r2 (vdd outp) resistor r=6k
c1 (outn 0) capacitor c=20f
c2 (outp 0) capacitor c=20f
control
  options temp=27 reltol=1e-14 vntol=1e-12
  save full
  analysis noise1 noise out=["outp", "outn"] in="vid" from=1 to=10G mode="dec" points=10
endc
"""


@pytest.mark.parametrize("variant", ["generated", "osdi", "spice_generated"])
def test_bsim4_differential_pair_against_vacask(tmp_path, variant):
    """A BSIM4 differential pair, differential output ``out=["outp", "outn"]``, input ``vid``
    (floating, between the two gates' drives), gate resistance on (``rgatemod=1``: source
    ``rg``), unequal loads and gate resistors so that no contribution is zero by symmetry (the
    tail resistor's would be rounding noise): every vector of VACASK's rawfile and the
    input-referred noise over 1 Hz–10 GHz within 1e-6. ``generated``/``osdi``: the Berkeley
    ``bsim4v8.va`` of the corpus as generated code and as the OSDI library VACASK loads;
    ``spice_generated``: VACASK's ``spice/bsim4v8`` (ngspice's BSIM4 in Verilog-A, what the
    SPICE reader maps level 54 to), generated. Names: VACASK lowercases the sources' (``Rd`` →
    ``n(m1,rd)``) and orders the instances by its hash map (compared as sets)."""
    lib, module = (("spice/bsim4v8.osdi", "sp_bsim4v8") if variant.startswith("spice")
                   else ("bsim4v8.osdi", "bsim4"))
    p = tmp_path / "runme.sim"
    p.write_text(BSIM4_DP.format(lib=lib, module=module))
    ref = run_vacask(p, tmp_path, "noise1")
    res = Simulation.from_file(p, prefer="osdi" if variant == "osdi" else None).run()["noise1"]
    assert sorted(["frequency"] + res.names) == sorted(ref.names)
    assert res.names[:2] == ["onoise", "gain"]
    assert _rel(res["frequency"], ref["frequency"]) < 1e-14
    nonzero = 0
    for nm in ref.names[1:]:
        a, b = res[nm], ref[nm]
        nz = b != 0
        assert np.array_equal(a == 0, ~nz), nm  # the same sources are off (BSIM4's shot, rs, ...)
        if nz.any():
            nonzero += 1
            assert _rel(a[nz], b[nz]) < REL_PEER, nm
    assert nonzero == 20  # onoise, gain, 5 resistors × 2, per MOSFET: total, thermal, flicker, rg
    assert _rel(input_referred(res), ref["onoise"] / ref["gain"]) < REL_PEER
    # flicker dominates at 1 Hz, the loads' thermal noise and the roll-off at 10 GHz
    assert ref["n(m1,flicker)"][0] > 0.9 * ref["n(m1)"][0]
    assert ref["gain"][-1] < 0.1 * ref["gain"][0]


SWEPT_NET = """Noise inside sweeps
ground 0
load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
model d sp_diode is=1e-12 n=2 kf=1e-15 af=1.2 rs=10
v2 (2 0) vsource dc=0.8 mag=1
r2 (2 3) resistor r=1k
d2 (3 0) d area=5
c2 (3 0) capacitor c=1u
control
  options temp=27 reltol=1e-14 vntol=1e-12
  sweep sw1 instance="v2" parameter="dc" values=[0.6, 0.8, 1.0]
  analysis noise1 noise out="3" in="v2" from=1 to=1e6 mode="dec" points=2
  sweep sw2 instance="r2" parameter="r" values=[1k, 2k]
  sweep sw3 model="d" parameter="kf" values=[1e-15, 3e-15]
  analysis noise2 noise out="3" in="v2" from=10 to=1e3 mode="dec" points=1
endc
"""


def test_swept_noise_against_vacask(tmp_path):
    """``noise`` inside ``sweep``: a source's dc; an instance and a model parameter (nested, each
    point a rebuilt circuit). VACASK writes one plot: the sweep vectors (outermost first), then
    ``frequency`` and the noise vectors, every point's spectrum after the previous one's."""
    from va2jax.sim.rawfile import read_raw, write_raw

    p = tmp_path / "runme.sim"
    p.write_text(SWEPT_NET)
    run_vacask(p, tmp_path, "noise1")
    res = Simulation.from_file(p).run()
    for name, lead in (("noise1", ["sw1"]), ("noise2", ["sw2", "sw3"])):
        write_raw(tmp_path / f"{name}.ours.raw", [res[name]])
        ours, ref = read_raw(tmp_path / f"{name}.ours.raw")[0], read_raw(tmp_path / f"{name}.raw")[0]
        assert ours.plotname == ref.plotname == "Small-Signal Noise Analysis"
        assert ours.names == ref.names == lead + ["frequency", "onoise", "gain", "n(r2)", "n(d2)"]
        assert ours.data.shape == ref.data.shape
        for nm in lead + ["frequency"]:
            assert _rel(ours[nm], ref[nm]) < 1e-14, nm
        for nm in ref.names[len(lead) + 1:]:
            assert _rel(ours[nm], ref[nm]) < REL_PEER, nm
    n1 = res["noise1"]
    assert n1.data.shape == (3 * 13, 6)
    # the diode's flicker noise grows with its current: more at the higher dc
    assert n1["n(d2)"][13] > n1["n(d2)"][0]


def test_rawfile_layout(tmp_path):
    """The CLI writes VACASK's plot name, vector names and types."""
    from va2jax.sim.rawfile import read_raw

    p = tmp_path / "runme.sim"
    p.write_text(_head() + "i1 (0 1) isource dc=0\nr1 (1 0) resistor r=1k\nr2 (1 0) resistor r=2k\n"
                 "control\n  analysis nz noise out=\"1\" in=\"i1\" from=10 to=100 mode=\"lin\" "
                 "points=9\nendc\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "va2jax", "sim", str(p), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    plot = read_raw(tmp_path / "nz.raw")[0]
    assert plot.plotname == "Small-Signal Noise Analysis"
    # default saves: one total per noisy instance, VACASK's order (last instance first)
    assert plot.names == ["frequency", "onoise", "gain", "n(r2)", "n(r1)"]
    assert set(plot.types) == {"notype"}
    assert plot.data.shape == (10, 5) and not np.iscomplexobj(plot.data)
    Rp = 1e3 * 2e3 / 3e3
    assert _rel(plot["onoise"], (4 * P_K * T / 1e3 + 4 * P_K * T / 2e3) * Rp ** 2) < REL


BAD_HEAD = ('bad\nload "resistor.osdi"\nmodel r resistor\nmodel vsource vsource\n'
            "v1 (a 0) vsource dc=1\nr1 (a b) r r=1k\nr2 (b 0) r r=1k\ncontrol\n")


@pytest.mark.parametrize("line, needle", [
    ('analysis n1 noise out="zz" in="v1" from=1 to=1k mode="dec" points=2',
     "bad.sim:9: analysis n1: output 'zz' is not a node"),
    ('analysis n1 noise out="b" in="r1" from=1 to=1k mode="dec" points=2',
     "bad.sim:9: analysis n1: input 'r1' is not an independent source"),
    ('analysis n1 noise out="b" in="v1" from=0 to=1k mode="lin" points=2',
     "bad.sim:9: analysis n1: noise frequencies must be finite and above 0 Hz"),
    ('analysis n1 noise out="b" in="v1" from=-1 to=1k mode="dec" points=2',
     "needs points > 0 and from, to > 0"),
    ('analysis n1 noise in="v1" from=1 to=1k mode="dec" points=2', "noise needs out="),
    ('analysis n1 noise out=b in="v1" from=1 to=1k mode="dec" points=2', "out must be a quoted name"),
    ('analysis n1 noise out="b" in="v1" from=1 to=1k mode="dec" points=2 outp=1',
     "unknown noise parameter 'outp'"),
    ('sweep s1 instance="r1" parameter="rr" values=[1k, 2k]\n  analysis n1 noise out="b" in="v1" '
     'from=1 to=1k mode="dec" points=2', "sweep s1: instance r1: unknown parameter 'rr' of resistor"),
    ('sweep s1 instance="r9" parameter="r" values=[1k, 2k]\n  analysis n1 noise out="b" in="v1" '
     'from=1 to=1k mode="dec" points=2', "sweep s1: no instance 'r9'"),
])
def test_bad_input(tmp_path, line, needle):
    p = tmp_path / "bad.sim"
    p.write_text(BAD_HEAD + "  " + line + "\nendc\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.run([sys.executable, "-m", "va2jax", "sim", str(p), "--no-progress"],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and needle in lines[0], proc.stderr


def test_gradient_of_integrated_noise(tmp_path):
    """jax.grad of the integrated output noise w.r.t. model parameters (the diode's is, kf) equals
    central finite differences of the same function to 1e-6; its values equal the analysis'.

    Step h = 1e-4·|p|: truncation h²·f'''/(6·f') ~ 1e-8 relative for these smooth functions;
    rounding ~ 1e-16/1e-4 = 1e-12 (the operating point is polished to rounding level)."""
    import jax

    from va2jax.sim import noise_function

    p = tmp_path / "runme.sim"
    p.write_text(_head(f'load "{VA / "noise_diode.va"}"\n') +
                 "model dm noise_diode is=1e-14 n=1.2 kf=1e-12 af=1.3 ef=1.1\n"
                 "v1 (1 0) vsource dc=0.9\nr1 (1 2) resistor r=1k\nd1 (2 0) dm\n"
                 "c1 (2 0) capacitor c=1n\n" + _CTL +
                 '  analysis noise1 noise out="2" in="v1" from=1 to=1e9 mode="dec" points=3\nendc\n')
    sim = Simulation.from_file(p)
    res = sim.run()["noise1"]
    f = noise_function(sim, ["dm.is", "dm.kf"], res["frequency"], "2", "v1")
    nom = {"dm.is": 1e-14, "dm.kf": 1e-12}
    out = f(nom)
    assert int(out["status"]) == 0
    assert _rel(out["onoise"], res["onoise"]) < REL
    assert _rel(out["gain"], res["gain"]) < REL
    g = jax.grad(lambda v: f(v)["integrated"])(nom)
    for k, v in nom.items():
        h = 1e-4 * v
        fd = (float(f({**nom, k: v + h})["integrated"]) - float(f({**nom, k: v - h})["integrated"])) / (2 * h)
        assert abs(float(g[k]) / fd - 1) < 1e-6, (k, float(g[k]), fd)
