"""Small-signal analyses ``dcinc``, ``dcxf``, ``acxf`` (sim/_xf.py) against VACASK's rawfiles on the
same netlists, against closed forms, and their one-line errors on bad input."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from sim_peers import run_ngspice, run_vacask, shared_circuit

from va2jax.errors import Va2JaxError
from va2jax.sim import Simulation
from va2jax.sim.rawfile import read_raw, write_raw

#: Both simulators solve the same linear system at operating points converged to reltol=1e-14
#: (options below); the LU factorisations (KLU there, LAPACK here) differ in rounding only, so
#: 1e-9 relative to each vector's largest magnitude leaves orders of magnitude of margin while
#: catching any difference in definition (sign, scaling, a missing stamp).
RTOL = 1e-9
OPTS = "  options temp=27 reltol=1e-14 vntol=1e-12\n"

DIVIDER = """divider with a VCCS
load "resistor.osdi"
load "capacitor.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
model isource isource
model vccs vccs
v1 (in 0) vsource dc=1 mag=1
r1 (in mid) resistor r=1k
r2 (mid 0) resistor r=3k
c1 (mid 0) capacitor c=1u
iout (0 mid) isource dc=0 mag=0.25
g1 (out 0 mid 0) vccs gain=2m
r3 (out 0) resistor r=500
control
{opts}  analysis inc1 dcinc
  analysis xf1 dcxf out="mid"
  analysis xf2 dcxf out=["out", "mid"]
  analysis axf1 acxf out="mid" from=10 to=100k mode="dec" points=5
  analysis axf2 acxf out="out" from=10 to=100k mode="dec" points=5
endc
"""

DIODE = shared_circuit("xf_diode") + """control
{opts}  analysis inc1 dcinc
  analysis xf1 dcxf out="2"
  analysis xf2 dcxf out="v2:flow(br)"
  analysis axf1 acxf out="2" from=1 to=1e9 mode="dec" points=4
  analysis axf2 acxf out=["2", "3"] values=[0, 1e3, 1e6]
endc
"""

MOSAMP = shared_circuit("xf_mosamp") + """control
{opts}  analysis inc1 dcinc
  analysis xf1 dcxf out="d"
  analysis axf1 acxf out="d" from=1k to=1e11 mode="dec" points=3
endc
"""

SWEPT = """xf analyses inside sweeps
load "resistor.osdi"
load "spice/diode.osdi"
model resistor resistor
model vsource vsource
model isource isource
model d sp_diode is=1e-12 n=2
v1 (1 0) vsource dc=0.8 mag=1
r1 (1 2) resistor r=1k
d1 (2 3) d
v2 (3 0) vsource dc=0 mag=0.5
i1 (0 2) isource dc=1u mag=2
control
{opts}  save default yin(v1)
  sweep sw1 instance="v1" parameter="dc" values=[0.6, 0.8]
  analysis inc1 dcinc
  sweep sw2 instance="r1" parameter="r" values=[1k, 2k]
  analysis xf1 dcxf out="2"
  sweep sw3 instance="v1" parameter="dc" values=[0.6, 0.8]
  analysis axf1 acxf out="2" values=[1, 10]
endc
"""


def _compare(tmp_path, text: str, analyses: list[str]) -> dict:
    """Run ``text`` in VACASK and in va2jax; every analysis' rawfile plot must match VACASK's:
    plot name, vector names in VACASK's order, values within :data:`RTOL`."""
    net = tmp_path / "xf.sim"
    net.write_text(text.format(opts=OPTS))
    res = Simulation.from_file(net).run()
    out = {}
    run_vacask(net, tmp_path, analyses[0])  # one run writes every analysis' NAME.raw
    for name in analyses:
        ref = read_raw(tmp_path / f"{name}.raw")[0]
        write_raw(tmp_path / f"{name}.ours.raw", [res[name]], title="xf")
        ours = read_raw(tmp_path / f"{name}.ours.raw")[0]
        assert ours.plotname == ref.plotname, (name, ours.plotname, ref.plotname)
        # the same vectors by name (device internals included: PSP103's noise branch
        # ``m1:flow(noii)``, BSIM4's ``m1:flow(bi,dbulk)``); transfer functions in VACASK's
        # order, unknowns in any (VACASK's is its internal numbering, ours sorted)
        common = list(ref.names)
        if res[name].kind in ("dcxf", "acxf"):
            assert ours.names == ref.names, (name, ours.names, ref.names)
        else:
            assert sorted(ours.names) == sorted(ref.names), (name, ours.names, ref.names)
        for nm in common:
            r, g = ref[nm], ours[nm]
            scale = max(float(np.max(np.abs(r))), 1e-300)
            err = float(np.max(np.abs(r - g)))
            assert err <= RTOL * scale, (name, nm, err, scale)
        out[name] = (ours, ref)
    return out


def test_divider_vccs_vs_vacask_and_closed_form(tmp_path):
    """Resistive divider with a capacitor and a VCCS: every analysis against VACASK, and the
    divider's closed forms: transfer ``R2/(R1+R2)``, input impedance ``R1+R2``, output impedance
    ``R1‖R2`` (``1/(1/R1 + 1/R2 + jωC)`` over frequency)."""
    got = _compare(tmp_path, DIVIDER, ["inc1", "xf1", "xf2", "axf1", "axf2"])
    r1, r2, c = 1e3, 3e3, 1e-6
    xf1 = got["xf1"][0]
    # closed forms: a few roundings of IEEE arithmetic apart from the LU solve
    assert xf1["tf(v1)"][0] == pytest.approx(r2 / (r1 + r2), rel=1e-13)
    assert xf1["zin(v1)"][0] == pytest.approx(r1 + r2, rel=1e-13)
    assert xf1["zin(iout)"][0] == pytest.approx(r1 * r2 / (r1 + r2), rel=1e-13)
    assert xf1["tf(iout)"][0] == pytest.approx(r1 * r2 / (r1 + r2), rel=1e-13)
    inc = got["inc1"][0]  # superposition of the mags: 1 V at v1, 0.25 A into mid
    assert inc["mid"][0] == pytest.approx(0.75 + 0.25 * 750.0, rel=1e-13)
    axf = got["axf1"][0]
    w = 2 * math.pi * np.real(axf["frequency"])
    y = 1 / r1 + 1 / r2 + 1j * w * c
    np.testing.assert_allclose(axf["tf(v1)"], (1 / r1) / y, rtol=1e-12)
    np.testing.assert_allclose(axf["zin(iout)"], 1 / y, rtol=1e-12)
    np.testing.assert_allclose(axf["zin(v1)"], r1 + 1 / (1 / r2 + 1j * w * c), rtol=1e-12)


def test_diode_bias_vs_vacask(tmp_path):
    """Diode bias circuit with the generated SPICE diode (series resistance, junction
    capacitance): dcinc, dcxf to a node and to a branch current, acxf to a node and a node
    pair."""
    got = _compare(tmp_path, DIODE, ["inc1", "xf1", "xf2", "axf1", "axf2"])
    # at f = 0 the AC transfer is the DC one (node 3 is held by v2: its response to v1 is 0)
    assert got["axf2"][0]["tf(v1)"][0] == pytest.approx(got["xf1"][0]["tf(v1)"][0], rel=1e-12)


def test_mos_amplifier_vs_vacask(tmp_path):
    """Common-source amplifier with the generated SPICE level-1 MOSFET: gain, input and output
    impedances at DC and from 1 kHz to 100 GHz."""
    got = _compare(tmp_path, MOSAMP, ["inc1", "xf1", "axf1"])
    assert got["xf1"][0]["tf(vin)"][0] < -1  # an amplifier: inverting gain above 1


PSPAMP = MOSAMP.replace("generated sp_mos1", "generated PSP103").replace(
    'load "spice/mos1.osdi"', 'load "psp103v4.osdi"').replace(
    "sp_mos1 ( type=1 vto=0.35 kp=200u lambda=0.05 tox=2n cgso=0.3n cgdo=0.3n cbd=1f cbs=1f )",
    "psp103va ( type=1 toxo=2n vfbo=-1 nsubo=3e23 uo=0.04 )").replace("dc=0.5 mag=1",
                                                                      "dc=0.6 mag=1")


def test_psp103_amplifier_vs_vacask(tmp_path):
    """The same amplifier with the generated PSP103. Its gate is nearly open at low frequency
    (``zin(vin)`` ≈ 1e10 Ω at 1 kHz, from an admittance 1e-6 of the matrix' other entries):
    there the two LU factorisations agree to about 1e-10 of the value, still within
    :data:`RTOL` of the vector's largest magnitude."""
    assert "psp103va" in PSPAMP
    got = _compare(tmp_path, PSPAMP, ["inc1", "xf1", "axf1"])
    assert got["xf1"][0]["tf(vin)"][0] < -1


DIFFPAIR = """BSIM4 differential pair, generated bsim4v8
load "resistor.osdi"
load "capacitor.osdi"
load "bsim4v8.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
model isource isource
model nmos bsim4 ( type=1 toxe=2n toxp=2n toxm=2n vth0=0.4 u0=0.04 w=2u l=0.2u )
vdd (vdd 0) vsource dc=1.2
vinp (inp 0) vsource dc=0.7 mag=0.5
vinn (inn 0) vsource dc=0.7 mag=-0.5
m1 (outn inp tail 0) nmos
m2 (outp inn tail 0) nmos
rtail (tail 0) resistor r=4k
ib (0 outp) isource dc=2u mag=1u
r1 (vdd outn) resistor r=5k
r2 (vdd outp) resistor r=6k
c1 (outn 0) capacitor c=20f
c2 (outp 0) capacitor c=20f
control
{opts}  analysis inc1 dcinc
  analysis xf1 dcxf out=["outp", "outn"]
  analysis axf1 acxf out=["outp", "outn"] from=1e3 to=1e11 mode="dec" points=2
endc
"""


def test_bsim4_differential_pair_vs_vacask(tmp_path):
    """A BSIM4 differential pair (loads unequal, so that no transfer is zero by symmetry and
    left to rounding): differential output ``out=["outp", "outn"]``, the differential input of
    ``dcinc`` (mags ±0.5), every source's transfer and input impedance."""
    got = _compare(tmp_path, DIFFPAIR, ["inc1", "xf1", "axf1"])
    xf = got["xf1"][0]
    assert xf["tf(vinn)"][0] < 0 < xf["tf(vinp)"][0]  # m1 (gate inp) pulls outn down: outp − outn rises


def test_swept_xf_vs_vacask(tmp_path):
    """``dcinc``/``dcxf``/``acxf`` inside ``sweep`` (a source's dc, an instance parameter),
    with ``save default yin(v1)``: VACASK's layout (sweep vector first) and values."""
    _compare(tmp_path, SWEPT, ["inc1", "xf1", "axf1"])


BAD_HEAD = """bad xf
load "resistor.osdi"
model r resistor
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
r2 (b 0) r r=1k
control
"""


BAD = [
    ('analysis x1 dcxf out="nope"', "output 'nope' is not a node or branch"),
    ('analysis x1 acxf out=["b", "zz"] from=1 to=10 mode="dec" points=2',
     "output 'zz' is not a node or branch"),
    ('analysis x1 dcxf', "needs out="),
    ('analysis x1 dcxf out=b', "out must be a quoted node name"),
    ('save tf(v9)\n  analysis x1 dcxf out="b"', "'v9' is not an instance"),
    ('save zin(r1)\n  analysis x1 dcxf out="b"', "'r1' is not an independent source"),
    ('analysis x1 dcinc out="b"', "dcinc has no parameter 'out'"),
    ('analysis x1 acxf out="b" from=-10 to=10 mode="lin" points=2', "frequencies must be"),
]


def _bad(tmp_path, stmt: str):
    net = tmp_path / "bad.sim"
    net.write_text(BAD_HEAD + "  " + stmt + "\nendc\n")
    return net


def test_bad_output_exits_2_with_one_line(tmp_path):
    """Through the command line: an output that is not a node or branch → exit 2, one line
    ``va2jax: error:`` naming the netlist line and the output, no traceback."""
    stmt, fragment = BAD[0]
    net = _bad(tmp_path, stmt)
    proc = subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "-o",
                           str(tmp_path / "o.raw")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert fragment in lines[0] and "bad.sim:9:" in lines[0], lines[0]


@pytest.mark.parametrize("stmt, fragment", BAD)
def test_bad_input_is_one_line_error(tmp_path, stmt, fragment):
    """An output that is not a node or branch, a saved transfer function of an unknown instance
    or of one that is not a source, a missing or malformed ``out``, a parameter the analysis
    lacks, a negative frequency: a :class:`Va2JaxError` (the CLI's exit 2) whose one line names
    the analysis' netlist line and the culprit."""
    net = _bad(tmp_path, stmt)
    with pytest.raises(Va2JaxError) as exc:
        Simulation.from_file(net).run()
    msg = str(exc.value)
    assert "\n" not in msg and fragment in msg, msg
    assert f"bad.sim:{9 + stmt.count(chr(10))}:" in msg, msg


def test_sparse_path_matches_closed_form(tmp_path):
    """The sparse path (``options solver="klu"``: SciPy's SuperLU on the Jacobian's pattern)
    gives the divider's closed forms too (module test above: the dense path)."""
    net = tmp_path / "sp.sim"
    net.write_text(DIVIDER.format(opts=OPTS + '  options solver="klu"\n'))
    sim = Simulation.from_file(net)
    assert sim.engine.sparse
    res = sim.run()
    r1, r2, c = 1e3, 3e3, 1e-6
    assert res["xf1"]["zin(iout)"][0] == pytest.approx(r1 * r2 / (r1 + r2), rel=1e-13)
    assert res["inc1"]["mid"][0] == pytest.approx(0.75 + 0.25 * 750.0, rel=1e-13)
    w = 2 * math.pi * res["axf1"]["frequency"]
    np.testing.assert_allclose(res["axf1"]["tf(v1)"], (1 / r1) / (1 / r1 + 1 / r2 + 1j * w * c),
                               rtol=1e-12)


# --- ngspice's .tf (SPICE netlists) ------------------------------------------------------------

TF_LINEAR = """tf of a divider with a VCCS
v1 in 0 dc 1
r1 in mid 1k
r2 mid 0 3k
g1 out 0 mid 0 2m
r3 out 0 500
vm out x 0
r4 x 0 1k
i1 0 mid dc 1u
.tf {card}
.end
"""

TF_DIODE = """tf of a diode bias point
v1 in 0 dc 0.8
r1 in a 1k
d1 a 0 dmod
i1 0 a dc 1u
.model dmod d is=1e-12 n=2 rs=10
.options reltol=1e-12 vntol=1e-15 abstol=1e-18
.tf {card}
.end
"""


@pytest.mark.parametrize("text, card", [
    (TF_LINEAR, "v(mid) v1"),
    (TF_LINEAR, "v(out,mid) i1"),
    (TF_LINEAR, "i(vm) v1"),  # ngspice: 1/max(1e-20, i) = 1e20 for the negative current
    (TF_LINEAR, "i(vm) vm"),
    (TF_LINEAR, "V(out) vm"),
    (TF_DIODE, "v(a) v1"),
    (TF_DIODE, "v(a) i1"),
])
def test_tf_vs_ngspice(tmp_path, text, card):
    """``.tf`` against ngspice: the transfer function, input and output impedances, with
    ngspice's vector names (its rawfile adds ``v(…)``) and plot name. The diode is the generated
    SPICE diode at an operating point converged to reltol=1e-12 in both simulators: the
    small-signal values then agree to ≈ 1e-13 (measured 5e-14), within :data:`RTOL`."""
    net = tmp_path / "tf.cir"
    net.write_text(text.format(card=card))
    ref = run_ngspice(net, tmp_path)
    res = Simulation.from_file(net).run()["tf1"]
    write_raw(tmp_path / "ours.raw", [res], dialect="spice")
    ours = read_raw(tmp_path / "ours.raw")[0]
    assert ours.plotname == ref.plotname == "Transfer Function"
    assert [f"v({nm})" for nm in ours.names] == ref.names
    np.testing.assert_allclose(ours.data, ref.data, rtol=RTOL, atol=0)


def test_tf_closed_form():
    """Divider ``.tf v(mid) v1``: ``R2/(R1+R2)``, input ``R1+R2``, output ``R1‖R2``."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        net = Path(d) / "tf.cir"
        net.write_text(TF_LINEAR.format(card="v(mid) v1"))
        res = Simulation.from_file(net).run()["tf1"]
    assert res["Transfer_function"][0] == pytest.approx(0.75, rel=1e-13)
    assert res["v1#Input_impedance"][0] == pytest.approx(4000.0, rel=1e-13)
    assert res["output_impedance_at_V(mid)"][0] == pytest.approx(750.0, rel=1e-13)


@pytest.mark.parametrize("card, fragment", [
    ("v(mid) v9", "input 'v9' is not an instance"),
    ("v(mid) r1", "input 'r1' is not an independent source"),
    ("v(nope) v1", "output 'nope' is not a node or branch"),
    ("i(r1) v1", "output I(r1) needs a voltage source"),
    ("mid v1", "output must be V(node[,node]) or I(vsource)"),
])
def test_tf_bad_input(tmp_path, card, fragment):
    """A ``.tf`` naming an unknown or non-source input, or an output that is not a node or a
    voltage source's current: one-line error naming the card's line."""
    net = tmp_path / "bad.cir"
    net.write_text(TF_LINEAR.format(card=card))
    with pytest.raises(Va2JaxError) as exc:
        Simulation.from_file(net).run()
    msg = str(exc.value)
    assert "\n" not in msg and fragment in msg and "bad.cir:10:" in msg, msg


def test_cli_writes_acxf_csv_plot_and_prints_tf(tmp_path, capsys):
    """``va2jax sim``: an ``acxf`` as CSV (complex columns ``.re``/``.im``) with the divider's
    closed form, a PNG of the transfer functions in dB, and the values of a single ``.tf``
    printed as ``name = value``."""
    from va2jax.cli import main

    net = tmp_path / "d.sim"
    net.write_text(DIVIDER.format(opts=OPTS).replace("  analysis inc1 dcinc\n", "").replace(
        '  analysis xf1 dcxf out="mid"\n  analysis xf2 dcxf out=["out", "mid"]\n', ""))
    csv, png = tmp_path / "a.csv", tmp_path / "a.png"
    assert main(["sim", str(net), "-o", str(tmp_path / "a.raw"), "--csv", str(csv),
                 "--plot", str(png)]) == 0
    with open(tmp_path / "a_axf1.csv") as fh:
        header = fh.readline().strip().split(",")
    data = np.loadtxt(tmp_path / "a_axf1.csv", delimiter=",", skiprows=1)
    assert header[:3] == ["frequency", "tf(v1).re", "tf(v1).im"]
    h = (1 / 1e3) / (1 / 1e3 + 1 / 3e3 + 2j * math.pi * data[:, 0] * 1e-6)
    np.testing.assert_allclose(data[:, 1] + 1j * data[:, 2], h, rtol=1e-12)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tf = tmp_path / "t.cir"
    tf.write_text(TF_LINEAR.format(card="v(mid) v1"))
    capsys.readouterr()
    assert main(["sim", str(tf), "-o", str(tmp_path / "t.raw")]) == 0
    out = capsys.readouterr().out
    assert "Transfer_function = 0.75" in out and "output_impedance_at_V(mid) = 750" in out, out
