"""The SPICE reader on ngspice netlists: dialect detection, source functions without parentheses,
``.options``, ``.control`` blocks (ngspice batch semantics) and one-line errors for the rest."""
from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest
from sim_peers import ROOT

from va2jax.cli import main
from va2jax.sim import Simulation, read_netlist
from va2jax.sim.engine import Options
from va2jax.sim.netlist import NetlistError, elaborate
from va2jax.sim.parse_spice import parse_spice
from va2jax.sim.simulation import netlist_dialect
from va2jax.sim.sources import make_waveform

SUITE = ROOT / "tests" / "data" / "vacask_suite"
CIRCUITS = ("rc", "graetz", "mul", "ring", "c6288")


def _net(tmp_path: Path, body: str, name: str = "t.sim"):
    p = tmp_path / name
    p.write_text(body)
    return read_netlist(p)


def _waves(net):
    """Instance name → :class:`Waveform` of every source, parameters evaluated."""
    circ = elaborate(net)
    return {i.name: make_waveform(i.params, i.name) for i in circ.instances
            if i.master in ("vsource", "isource")}


@pytest.mark.parametrize("circuit", CIRCUITS)
def test_suite_dialects(circuit):
    """``.sim`` is used by both simulators: the content decides."""
    for dialect in ("vacask", "ngspice"):
        p = SUITE / circuit / dialect / "runme.sim"
        assert netlist_dialect(p, p.read_text()) == ("spice" if dialect == "ngspice" else "vacask")


def test_dialect_rule(tmp_path):
    assert netlist_dialect("x.cir", "t\nr1 (a 0) r r=1\n") == "spice"  # the suffix decides
    assert netlist_dialect("x.sim", "t\nv1 a 0 1\n.tran 1u 1m\n") == "spice"
    assert netlist_dialect("x.sim", 't\nload "r.osdi"\nr1 (a 0) r r=1\n') == "vacask"
    # an embedded script is not looked at, nor are the commands of a .control block
    assert netlist_dialect("x.sim", "t\nr1 (a 0) r r=1\nembed \"x\" <<<FILE\n.end\n>>>FILE\n") == "vacask"
    assert netlist_dialect("x.sim", "t\nv1 a 0 1\n.control\nload (x)\n.endc\n") == "spice"
    assert netlist_dialect("x.sim", "t\nr1 a 0 1\n") == "ambiguous"
    # ambiguous: read as VACASK, and a failure says how to have it read as SPICE
    with pytest.raises(NetlistError, match=r"t.sim:2: cannot parse .*use a .cir suffix"):
        _net(tmp_path, "t\nr1 a 0 1\n")


def test_functions_without_parentheses(tmp_path):
    net = _net(tmp_path, """sources
v1 1 0 dc 0 pulse 0 1 1u 1u 1u 1m 2m
v2 2 0 0 sin 0.0 20 50.0
v3 3 0 dc=0 sin 0 50 100k
v4 4 0 dc 1 pwl 0 0 1u 1 2u 0.5 td=1u
v5 5 0 exp 0 1 1u 2u 3u 4u
v6 6 0 pulse (0 1 1u 1u 1u 1m 2m)
v7 7 0 pulse(0 1 1u 1u 1u 1m 2m)
.tran 1u 1m
.end
""")
    w = _waves(net)
    assert w["v1"].kind == "pulse" and w["v1"].dc == 0.0
    pulse = {"val0": 0.0, "val1": 1.0, "delay": 1e-6, "rise": 1e-6, "fall": 1e-6, "width": 1e-3,
             "period": 2e-3}
    assert w["v1"].p == {"dc": 0.0, **pulse} and w["v6"].p == w["v7"].p == pulse
    assert w["v2"].p == {"dc": 0.0, "sinedc": 0.0, "ampl": 20.0, "freq": 50.0}
    assert w["v3"].p == {"dc": 0.0, "sinedc": 0.0, "ampl": 50.0, "freq": 1e5}
    assert w["v4"].dc == 1.0 and w["v4"].wave.tolist() == [[1e-6, 0.0], [2e-6, 1.0], [3e-6, 0.5]]
    assert w["v5"].p == {"val0": 0.0, "val1": 1.0, "td1": 1e-6, "tau1": 2e-6, "td2": 3e-6, "tau2": 4e-6}


def test_parameters_and_values(tmp_path):
    net = _net(tmp_path, """params
.param c=100n
v1 a 0 1
r1 a 1 r=0.01
c1 1 0 c={c}
c2 1 0 {2*c}
.op
.end
""")
    circ = elaborate(net)
    vals = {i.name: i.params for i in circ.instances}
    # 100n is evaluated as 100·1e-9 (one rounding)
    assert vals["r1"] == {"r": 0.01}
    assert vals["c1"]["c"] == pytest.approx(1e-7, rel=1e-15)
    assert vals["c2"]["c"] == pytest.approx(2e-7, rel=1e-15)


def _ngspice(tmp_path: Path, netlist: Path) -> dict:
    """Run ngspice in batch mode; its ``.control`` block must end in ``write ng.raw``."""
    from va2jax.sim.rawfile import read_raw

    exe = shutil.which("ngspice")
    if exe is None:
        pytest.skip("ngspice not installed")
    proc = subprocess.run([exe, "-b", netlist.name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
    return read_raw(tmp_path / "ng.raw")[0]


def test_source_defaults_vs_ngspice(tmp_path):
    """Waveforms with the arguments ngspice fills in from the transient (pulse rise/fall = tstep
    also when given as 0, width/period = tstop, sin freq = 1/tstop, exp td1/tau1/tau2 = tstep,
    td2 = td1 + tstep, pwl td= delay), against ngspice's own source values (resistive loads: each
    node voltage is its source's value)."""
    body = """source defaults
v1 1 0 pulse 0 1 1u 0 0 2u
v2 2 0 sin 0.5 1 0 2u 0 90
v3 3 0 exp 0 1
v4 4 0 pwl 0 0 1u 1 2u 0 td=1u
v5 5 0 pulse 1 -1 0.5u
v6 6 0 sin 0 2 0.2meg 1u 1e5
r1 1 0 1k
r2 2 0 1k
r3 3 0 1k
r4 4 0 1k
r5 5 0 1k
r6 6 0 1k
.control
tran 0.5u 8u
write ng.raw
quit
.endc
.end
"""
    (tmp_path / "src.cir").write_text(body)
    ref = _ngspice(tmp_path, tmp_path / "src.cir")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # `write` is the one command ignored here
        with pytest.raises(UserWarning, match=r"src.cir:16: .control command 'write' ignored"):
            parse_spice(tmp_path / "src.cir")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = _waves(parse_spice(tmp_path / "src.cir"))
    t = ref["time"]
    for k in range(1, 7):
        ours = np.array([w[f"v{k}"].value(x) for x in t])
        # ngspice evaluates the same formulas in double precision: rounding only
        np.testing.assert_allclose(ours, ref[f"v({k})"], rtol=0, atol=1e-12, err_msg=f"v{k}")


@pytest.mark.parametrize("opts, method", [
    ("method=gear maxord=2", "gear2"), ("klu method=gear", "gear2"), ("method=gear maxord=1", "be"),
    ("method=trap", "trap"), ("klu", "trap"), ("method=trap maxord=1", "be"),
])
def test_integration_options(tmp_path, opts, method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # these options are all understood: no warning
        net = _net(tmp_path, f"o\nv1 a 0 1\nr1 a 0 1\n.options {opts}\n.op\n.end\n")
    assert Options.from_dict(elaborate(net).options).tran_method == method


def test_measure_cards_warned(tmp_path):
    with pytest.warns(UserWarning, match=r"t.sim:4: ngspice card '.meas' ignored"):
        net = _net(tmp_path, "m\nv1 a 0 1\nr1 a 0 1\n.meas tran vmax max v(a)\n.tran 1u 1m\n.end\n")
    assert [a.name for a in net.analyses] == ["tran1"]


def test_options_mapped_and_unknown(tmp_path):
    with pytest.warns(UserWarning, match=r"t.sim:4: ngspice option 'gmin' is not supported"):
        net = _net(tmp_path, "o\nv1 a 0 1\nr1 a 0 1\n.options reltol=1e-4 itl4=30 gmin=1e-10 temp=50\n"
                             ".op\n.end\n")
    o = Options.from_dict(elaborate(net).options)
    assert (o.reltol, o.tran_itl, o.temp) == (1e-4, 30, 50.0)
    with pytest.raises(NetlistError, match=r"t.sim:4: option maxord=3: .*gear up to order 2"):
        _net(tmp_path, "o\nv1 a 0 1\nr1 a 0 1\n.options method=gear maxord=3\n.op\n.end\n")


def test_control_block_runs(tmp_path):
    """ngspice -b with a .control block runs its commands, not the dot analyses (`run` does)."""
    body = """c
v1 a 0 dc 1 sin 0 1 1k
r1 a 0 1k
.tran 1u 1m
.ac dec 10 1 1k
.control
* a comment
  tran 2u 3m 0 1u uic
  op
  dc v1 0 1 0.5
  ac lin 5 10 100
  run
  rusage all
  set noaskquit
  quit
  tran 1u 2m
  plot v(a)
.endc
.end
"""
    with pytest.warns(UserWarning) as rec:
        net = _net(tmp_path, body)
    assert [str(r.message) for r in rec] == [f"{tmp_path / 't.sim'}:13: .control command 'rusage' ignored",
                                            f"{tmp_path / 't.sim'}:14: .control command 'set' ignored"]
    assert [(a.name, a.kind) for a in net.analyses] == [
        ("tran1", "tran"), ("op1", "op"), ("dc1", "op"), ("ac1", "ac"), ("tran2", "tran"), ("ac2", "ac")]
    assert net.analyses[0].params == {"step": "2u", "stop": "3m", "start": "0", "maxstep": "1u",
                                      "icmode": '"uic"'}
    assert net.analyses[2].sweep == {"instance": '"v1"', "parameter": '"dc"', "from": "0", "to": "1",
                                     "step": "0.5"}
    # no tmax: ngspice limits the step to min(tstep, (tstop - tstart)/50)
    net = _net(tmp_path, "c\nv1 a 0 1\nr1 a 0 1k\n.control\ntran 1u 10m\ntran 1m 10m\n"
                         "tran 1m 10m 5m\n.endc\n.end\n")
    sim = Simulation.__new__(Simulation)
    sim.circuit = elaborate(net)
    assert [sim._num(a, "maxstep") for a in net.analyses] == pytest.approx([1e-6, 2e-4, 1e-4], rel=1e-12)
    # without a .control block the dot cards run
    net = _net(tmp_path, "c\nv1 a 0 1\nr1 a 0 1k\n.tran 1u 1m\n.op\n.end\n")
    assert [a.name for a in net.analyses] == ["tran1", "op1"]


@pytest.mark.parametrize("body, needle", [
    (".control\nsens v(a) v1\n.endc\n", "t.sim:5: ngspice analysis 'sens' is not supported"),
    (".control\nalter r1 2k\ntran 1u 1m\n.endc\n", "t.sim:5: .control command 'alter' is not supported"),
    (".control\nforeach x 1 2\n.endc\n", "t.sim:5: .control command 'foreach' is not supported"),
    (".pz a 0 a 0 vol pz\n", "t.sim:4: ngspice analysis '.pz' is not supported"),
    (".four 1k v(a)\n", "t.sim:4: ngspice analysis '.four' is not supported"),
    (".frobnicate 1\n", "t.sim:4: unsupported SPICE card '.frobnicate'"),
    (".control\ntran 1u\n.endc\n", "t.sim:5: tran needs tstep and tstop"),
    ("v2 b 0 sffm 0 1 1k\n", "t.sim:4: source function 'sffm' is not supported"),
    ("v2 b 0 pwl 0 0 1u 1 r=0\n", "t.sim:4: pwl r= (repeat) is not supported"),
    ("v2 b 0 pulse 0 1 0 0 0 1 2 3\n", "t.sim:4: pulse takes at most 7 values, found 8"),
    (".model m1 bsimsoi\nn1 a 0 m1\n", "t.sim:4: unsupported .model type 'bsimsoi'"),
    (".control\ntran 1u 1m\n", "t.sim: .control block has no .endc"),
    (".tran 1u 1m\n.control\nrusage\n.endc\n", "no analysis in the netlist (add a .op/.dc/.ac/.tran"),
])
def test_errors_one_line(tmp_path, capsys, body, needle):
    """Unsupported constructs: one line `va2jax: error: file:line: …`, exit status 2."""
    p = tmp_path / "t.sim"
    p.write_text("errs\nv1 a 0 1\nr1 a 0 1k\n" + body + ".end\n")
    assert main(["sim", str(p), "--no-progress"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if not ln.startswith("va2jax: warning:")]
    assert len(err) == 1 and err[0].startswith("va2jax: error: ") and needle in err[0], err


def test_suite_ring_and_c6288_elaborate():
    """ring and c6288 (PSP103 through ngspice's OSDI: ``pre_osdi`` in .control, ``.model …
    psp103va``, N instances in subcircuits; c6288's ``.global vdd vss``) read unchanged. Their
    simulation against ngspice needs an ngspice built with OSDI, which ngspice-39 here is not."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rusage, set, …
        ring = elaborate(read_netlist(SUITE / "ring" / "ngspice" / "runme.sim"))
        c6288 = elaborate(read_netlist(SUITE / "c6288" / "ngspice" / "runme.sim"))
    assert [f for f, _ in ring.loads] == [f for f, _ in c6288.loads] == ["psp103v4.osdi"]
    assert {m.module for m in ring.models.values()} == {"psp103va"}
    assert Options.from_dict(ring.options).tran_method == "trap"
    (tran,) = ring.analyses
    assert tran.params == {"step": "0.05n", "stop": "1u", "start": "0", "maxstep": "0.05n"}
    mos = {i.name: i for i in ring.instances if i.master in ("psp103n", "psp103p")}
    assert len(mos) == 18 and mos["xu1.xmp.nm"].nodes == ["2", "1", "vdd", "vdd"]
    # w={w*pfact} with the inverter's pfact=2 and the instance's w={10u}: 20 µm
    assert mos["xu1.xmp.nm"].params["w"] == pytest.approx(20e-6, rel=1e-15)
    (i0,) = [i for i in ring.instances if i.name == "i0"]
    # pulse 0 10u 1n 1n 1n 1n: period = tstop (ngspice's default)
    assert i0.params["period"] == pytest.approx(1e-6, rel=1e-15)
    counts = {}
    for i in c6288.instances:
        counts[i.master] = counts.get(i.master, 0) + 1
    assert counts == {"psp103n": 5056, "psp103p": 5056, "vsource": 34, "resistor": 32}
    nodes = {n for i in c6288.instances for n in i.nodes}
    assert {"vdd", "vss"} <= nodes and not any(n.endswith((".vdd", ".vss")) for n in nodes)
    assert c6288.analyses[0].params["icmode"] == '"uic"'


def test_global_nodes(tmp_path):
    net = _net(tmp_path, "g\n.global vdd\n.subckt ld a\nr1 a vdd 1k\nr2 a loc 1k\nc1 loc 0 1p\n.ends\n"
                         "v1 vdd 0 1\nx1 out ld\nr3 out 0 1k\n.op\n.end\n")
    nodes = {i.name: i.nodes for i in elaborate(net).instances}
    assert nodes["x1.r1"] == ["out", "vdd"] and nodes["x1.r2"] == ["out", "x1.loc"]


def test_comments_spacing_and_subckt_parentheses(tmp_path):
    """``//`` inline comments (ngspice reads them, as ``;`` and ``$``), spaces around ``=``
    (``.param vdd = 1.8``), and subcircuit terminals in parentheses — as in VACASK's
    ``benchmark/vadistiller`` ngspice netlists."""
    net = _net(tmp_path, """c
.param vdd = 1.8  // supply
.subckt ld (a b) params: r=1k
r1 a b r = {r} $ load
.ends
v1 1 0 {vdd} ; source
x1 1 0 ld r=2k
.op
.end
""")
    circ = elaborate(net)
    vals = {i.name: (i.nodes, i.params) for i in circ.instances}
    assert vals == {"v1": (["1", "0"], {"dc": 1.8}), "x1.r1": (["1", "0"], {"r": 2000.0})}
