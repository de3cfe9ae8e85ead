"""Crafted Verilog-A and netlists never run code nor write outside the chosen output folder.

Names and strings of a Verilog-A module end up in generated Python source, which va2jax executes;
module and analysis names become file names. Each crafted name here would, if pasted into the
source or a path as is, create a marker file (``touch MARKn``) or write outside the output folder.
Expected values come from OpenVAF's OSDI library (``validate_file``).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Escaped identifiers (``\`` … white space) may hold any printable character. OpenVAF names them
# without their last character, so each ends in a spare ``z``/``x``.
MOD = r'\m""";__import__("os").system("touch\x20MARK1");"""z '
NODE = r'\a""";__import__("os").system("touch\x20MARK2");"""z '
INTERNAL = r"\n'];__import__('os').system('touch\x20MARK3');#x "
PAR = r'\r""";__import__("os").system("touch\x20MARK4");"""z '
SPAR = r'\s'"'"r'];__import__("os").system("touch\x20MARK5");#z '
ALIAS = r'\al""";__import__("os").system("touch\x20MARK8");"""z '
SDEFAULT = r'''"\"\"\";__import__('os').system('touch MARK6');\"\"\"\n'];import os;os.system('touch MARK7')#"'''
SLIT = "x'];__import__('os').system('touch MARK9')#"

# (the second $strobe holds non-ASCII characters, among them Unicode line separators)
CRAFTED = f"""`include "disciplines.vams"
module {MOD}({NODE}, B);
  inout {NODE}, B;
  electrical {NODE}, B;
  electrical {INTERNAL};
  parameter real {PAR}= 1e3 from (0:inf);
  parameter string {SPAR}= {SDEFAULT};
  aliasparam {ALIAS}= {PAR};
  real g;
  analog begin
    g = 1.0 / {PAR};
    if ({SPAR}== "{SLIT}") g = 2 * g;
    $strobe("\\"\\"\\";__import__('os').system('touch MARK10');\\"\\"\\" %g", g);
    $strobe("\u00b5\u2028\u0085\\"\\"\\";__import__('os').system('touch MARK11')#\u2029 %g", g);
    I({NODE}, {INTERNAL}) <+ g * V({NODE}, {INTERNAL});
    I({INTERNAL}, B) <+ g * V({INTERNAL}, B);
  end
endmodule
"""

SIMPLE = """`include "disciplines.vams"
module {name} (A, B);
  inout A, B;
  electrical A, B;
  parameter real r = 1e3;
  analog I(A, B) <+ V(A, B) / r;
endmodule
"""


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          timeout=600, env=env, cwd=cwd)


def _exact(va: Path, **kw) -> None:
    """va2jax (NumPy backend) equals OpenVAF's ``-O0`` OSDI library exactly: both evaluate the
    same MIR operation by operation (the default -O3 build may reassociate derivatives)."""
    from va2jax.validate import validate_file

    res = validate_file(va, points=5, param_sets=1, backend="numpy", reference_opt_level=0, **kw)
    assert res.passed and all(v == 0.0 for v in res.max_rel_err.values()), res.max_rel_err


def _markers(*folders: Path) -> list[str]:
    return sorted(p.name for d in folders for p in d.iterdir() if p.name.startswith(("MARK", "INJECTED")))


def test_issue_reproducer_runs_nothing(tmp_path):
    """The reproducer of issue 13: the module name closed the generated module's docstring."""
    va = tmp_path / "evil.va"
    va.write_text(SIMPLE.format(name='\\a""";__import__("os").system("id>INJECTED");"""zz'))
    out = tmp_path / "out"
    out.mkdir()
    r = _cli("compile", str(va), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _markers(tmp_path, out) == []
    (written,) = out.iterdir()
    assert written.suffix == ".py" and written.stem.isidentifier(), written.name


def test_crafted_names_run_nothing_and_the_model_matches_osdi(tmp_path, monkeypatch):
    from va2jax import compile_va

    va = tmp_path / "crafted.va"
    va.write_text(CRAFTED)
    out = tmp_path / "out"
    out.mkdir()
    r = _cli("compile", str(va), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (written,) = out.iterdir()
    src = written.read_text(encoding="ascii")  # ASCII only: no locale-dependent decoding
    compile(src, str(written), "exec")  # it parses
    assert _markers(tmp_path, out) == []

    monkeypatch.chdir(tmp_path)  # a marker would appear here
    m = compile_va(va, use_cache=False)
    assert m.name == MOD[1:].rstrip()  # the whole escaped name
    assert m.nodes[0] == NODE[1:].rstrip()[:-1]  # OpenVAF's node name, as OSDI has it
    spar = SPAR[1:].rstrip()[:-1]
    for s in (SLIT, "other"):  # both branches of the string comparison, and the alias
        _exact(va, params={spar: s, ALIAS[1:].rstrip()[:-1]: 250.0})
    _exact(va)  # the string parameter's default (quotes, a line break) as OSDI has it
    assert _markers(tmp_path, out) == []


@pytest.mark.parametrize("name", ["\\{outside}/evil", "\\../../up", "\\..", "\\/"])
def test_module_name_never_leaves_the_output_folder(tmp_path, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    va = tmp_path / "m.va"
    va.write_text(SIMPLE.format(name=name.format(outside=outside) + "z"))
    r = _cli("compile", str(va), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (written,) = out.iterdir()
    assert written.stem.isidentifier(), written.name
    assert list(outside.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["a", "m.va", "outside"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


def test_escaped_module_name_keeps_its_last_character(tmp_path):
    """``\\escaped_evil `` is ``escaped_evil`` (IEEE 1364 escaped identifier); OpenVAF's OSDI
    library calls it ``escaped_evi``, and validation still finds it there."""
    from va2jax import compile_va

    va = tmp_path / "esc.va"
    va.write_text(SIMPLE.format(name="\\escaped_evil"))
    m = compile_va(va)
    assert m.name == "escaped_evil" and m.ir.osdi_name == "escaped_evi"
    assert compile_va(va, "escaped_evil").name == "escaped_evil"
    _exact(va)
    out = tmp_path / "out"
    out.mkdir()
    r = _cli("compile", str(va), "-o", str(out), cwd=tmp_path)
    assert r.returncode == 0 and [p.name for p in out.iterdir()] == ["escaped_evil.py"], r.stderr


def test_safe_stem():
    from va2jax._paths import safe_stem

    assert safe_stem("diode") == "diode" and safe_stem("tran1") == "tran1"
    for bad in ("/etc/passwd", "../../x", "..", "", "a b", "1abc", "a.b"):
        s = safe_stem(bad)
        assert s.isidentifier() and "/" not in s, (bad, s)
    assert safe_stem("a/b") != safe_stem("a.b")  # distinct names stay distinct
