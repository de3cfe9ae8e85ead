"""Bad input through the CLI: one line ``va2jax: error: ...``, exit status 2, no traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VA_DIR = Path(__file__).resolve().parents[1] / "data" / "va"  # our own Verilog-A test models


REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          timeout=600, env=env)


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(err) == 1, r.stderr
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


HEADER = '`include "disciplines.vams"\n'


def test_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "bad.va"
    f.write_text(HEADER + "module bad(a, b);\n  inout a, b;\n  electrical a, b;\n"
                 "  analog begin\n    I(a, b) <+ V(a, b) * ;\n  end\nendmodule\n")
    for cmd in ("compile", "validate"):
        msg = _one_line_error(_cli(cmd, str(f), "-o", str(tmp_path)) if cmd == "compile"
                              else _cli(cmd, str(f)), "bad.va")
        assert ":6" in msg, msg  # the line of the broken expression


def test_missing_include(tmp_path):
    f = tmp_path / "inc.va"
    f.write_text('`include "no_such_file.vams"\n' + HEADER + "module inc(a); inout a; electrical a;\n"
                 "analog I(a) <+ V(a);\nendmodule\n")
    _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), "no_such_file.vams")


def test_unknown_param_suggests():
    _one_line_error(_cli("validate", str(VA_DIR / "nodes.va"), "--param", "rss=3", "--points", "4"),
                    "'rss'", "did you mean", "rs")


def test_unsupported_construct_named(tmp_path):
    """Constructs the generator does not translate fail with an error naming them (never a zero)."""
    # (idt with an initial condition, once here, is supported: tests/validate/test_enable_integration.py)
    for name, body, needle in (("abstime", "I(a, b) <+ V(a, b) * $abstime;", "$abstime"),):
        f = tmp_path / f"{name}.va"
        f.write_text(HEADER + f"module m_{name}(a, b);\n  inout a, b;\n  electrical a, b;\n"
                     f"  analog begin\n    {body}\n  end\nendmodule\n")
        _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), needle, "not supported")


def test_compile_output_is_a_file(tmp_path):
    out = tmp_path / "taken"
    out.write_text("x")
    _one_line_error(_cli("compile", str(VA_DIR / "nodes.va"), "-o", str(out)),
                    "exists and is not a directory")


def test_missing_source(tmp_path):
    _one_line_error(_cli("compile", str(tmp_path / "nope.va")), "no such Verilog-A file")
