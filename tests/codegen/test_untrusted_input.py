"""Bad files, bad paths and bad shapes: one line ``va2jax: error: …`` (exit 2) or a clear
:class:`Va2JaxError`, never a traceback, a crash, a quoted foreign file or a silent answer."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from va2jax import Va2JaxError, compile_va

ROOT = Path(__file__).resolve().parents[2]
VA_DIR = ROOT / "tests" / "data" / "va"
DIODE = ROOT / "src" / "va2jax" / "data" / "diode.va"
HEADER = '`include "disciplines.vams"\n'


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ if env is None else env)
    e["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          timeout=600, env=e, cwd=cwd)


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(err) == 1, r.stderr
    for n in needles:
        assert n in err[0], err[0]
    return err[0]


def _crash_logs() -> set[str]:
    return set(glob.glob("/tmp/openvaf-crash-*.log"))


# --- Verilog-A sources ------------------------------------------------------------------------

def test_empty_source(tmp_path):
    f = tmp_path / "empty.va"
    f.write_text("")
    _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), "empty.va", "no module")
    with pytest.raises(Va2JaxError, match="no module"):
        compile_va(f)


def test_binary_source(tmp_path):
    f = tmp_path / "bin.va"
    f.write_bytes(bytes(range(256)) * 4)
    _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), "bin.va", "not Verilog-A")


def test_latin1_comment_accepted(tmp_path):
    """8-bit text that is not UTF-8 (a Latin-1 comment) is Verilog-A to OpenVAF: not refused."""
    f = tmp_path / "lat.va"
    f.write_bytes(HEADER.encode() + b"// caf\xe9, 5 \xb5m\nmodule lat(a, b);\n inout a, b;\n"
                  b" electrical a, b;\n analog I(a, b) <+ V(a, b);\nendmodule\n")
    assert compile_va(f).name == "lat"


def test_garbage_text_no_panic_no_crash_log(tmp_path):
    """Text that makes openvaf-py panic (a BaseException): the compiler's file:line:col message,
    and no crash log of ours left in /tmp."""
    f = tmp_path / "garbage.va"
    f.write_text("hello world this is not verilog {{{ ;;; module")
    before = _crash_logs()
    _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), "garbage.va:1:")
    with pytest.raises(Va2JaxError, match="garbage.va:1:"):
        compile_va(f)
    for log in _crash_logs() - before:  # other processes may crash meanwhile: not ours
        assert str(f) not in Path(log).read_text(errors="replace"), log


def test_recursive_include(tmp_path):
    f = tmp_path / "self.va"
    f.write_text('`include "self.va"\nmodule m; endmodule\n')
    for cmd in ("compile", "validate"):
        args = (cmd, str(f)) + (("-o", str(tmp_path)) if cmd == "compile" else ())
        _one_line_error(_cli(*args), f"{f}:1: recursive include of self.va")


def test_included_system_file_not_quoted(tmp_path):
    passwd = Path("/etc/passwd")
    if not passwd.is_file() or not passwd.read_text().strip():
        pytest.skip("no /etc/passwd")
    f = tmp_path / "pw.va"
    f.write_text('`include "/etc/passwd"\n')
    msg = _one_line_error(_cli("compile", str(f), "-o", str(tmp_path)), "/etc/passwd:1", "not Verilog-A")
    for line in passwd.read_text().splitlines():
        for field in line.split(":")[:1]:
            assert f"'{field}'" not in msg, msg


# --- output and cache paths -------------------------------------------------------------------

def test_compile_output_folder_missing(tmp_path):
    _one_line_error(_cli("compile", str(VA_DIR / "nodes.va"), "-o", str(tmp_path / "nope")),
                    "does not exist")


def test_compile_output_folder_not_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    _one_line_error(_cli("compile", str(VA_DIR / "nodes.va"), "-o", str(tmp_path / "file" / "sub")))
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders: the chmod case cannot fail here")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        _one_line_error(_cli("compile", str(VA_DIR / "nodes.va"), "-o", str(ro)), str(ro))
    finally:
        ro.chmod(0o700)


@pytest.mark.parametrize("where", ["file/cache", "file"])
def test_unusable_cache_runs_uncached(tmp_path, where):
    """A cache path under a regular file, or the file itself: one warning, the command works."""
    (tmp_path / "file").write_text("x")
    env = dict(os.environ, VA2JAX_CACHE=str(tmp_path / where))
    r = _cli("compile", str(VA_DIR / "nodes.va"), "-o", str(tmp_path), env=env)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("running uncached") == 1, r.stderr
    assert (tmp_path / "file").read_text() == "x"


SIM = """op
load "resistor.osdi"
model r resistor
model vsource vsource
v1 (a 0) vsource dc=1
r1 (a 0) r r=1k
control
  analysis op1 op
endc
"""


def test_sim_outputs_not_writable(tmp_path):
    net = tmp_path / "c.sim"
    net.write_text(SIM)
    (tmp_path / "file").write_text("x")
    bad = str(tmp_path / "file" / "out")
    _one_line_error(_cli("sim", str(net), "--no-progress", "--csv", bad + ".csv"), "file/out")
    _one_line_error(_cli("sim", str(net), "--no-progress", "-o", bad + ".raw"), "file/out")


@pytest.mark.parametrize("step", ["0", "-1u"])
def test_tran_step_must_be_positive(tmp_path, step):
    net = tmp_path / "t.sim"
    net.write_text(SIM.replace("analysis op1 op", f"analysis tr tran step={step} stop=10u"))
    _one_line_error(_cli("sim", str(net), "--no-progress"), "t.sim:8: analysis tr: step must be")


# --- damaged OSDI libraries -------------------------------------------------------------------

def _truncated(tmp_path: Path, name: str = "trunc.osdi") -> Path:
    from va2jax.osdi import compile_va_to_osdi

    data = compile_va_to_osdi(VA_DIR / "nodes.va").read_bytes()
    out = tmp_path / name
    out.write_bytes(data[: len(data) // 2])
    return out


def test_truncated_osdi_library(tmp_path):
    lib = _truncated(tmp_path)
    _one_line_error(_cli("osdi", "info", str(lib)), "trunc.osdi", "damaged shared library")
    _one_line_error(_cli("osdi", "eval", str(lib)), "trunc.osdi", "damaged shared library")


def test_truncated_library_beside_netlist(tmp_path):
    """The user's own (damaged) resistor.osdi is used, and refused, not silently replaced."""
    _truncated(tmp_path, "resistor.osdi")
    net = tmp_path / "c.sim"
    net.write_text(SIM)
    for models in ("osdi", "auto"):
        _one_line_error(_cli("sim", str(net), "--no-progress", "--models", models),
                        "c.sim:2", "damaged shared library")


# --- netlist includes -------------------------------------------------------------------------

def test_netlist_self_include(tmp_path):
    (tmp_path / "self.sim").write_text('title\ninclude "self.sim"\n')
    _one_line_error(_cli("sim", str(tmp_path / "self.sim")), "self.sim:2: recursive include of self.sim")
    (tmp_path / "s.cir").write_text('* t\n.include "s.cir"\n.end\n')
    _one_line_error(_cli("sim", str(tmp_path / "s.cir")), "s.cir:2: recursive include of s.cir")
    # a one-line included file that includes itself: its line 1 (included files have no title)
    (tmp_path / "a.inc").write_text('include "a.inc"')
    (tmp_path / "top.sim").write_text('title\ninclude "a.inc"\n')
    _one_line_error(_cli("sim", str(tmp_path / "top.sim")), "a.inc:1: recursive include of a.inc")


def test_netlist_include_line_numbers(tmp_path):
    """Line 1 of an included file is line 1 (it has no title line)."""
    (tmp_path / "sub.inc").write_text("model vsource vsource\nbroken statement here\n")
    (tmp_path / "top.sim").write_text('title\ninclude "sub.inc"\n')
    _one_line_error(_cli("sim", str(tmp_path / "top.sim")), "sub.inc:2: cannot parse")


def test_netlist_includes_system_file(tmp_path):
    passwd = Path("/etc/passwd")
    if not passwd.is_file() or not passwd.read_text().strip():
        pytest.skip("no /etc/passwd")
    (tmp_path / "pw.sim").write_text('title\ninclude "/etc/passwd"\ncontrol\n  analysis op1 op\nendc\n')
    (tmp_path / "pw.cir").write_text('* t\n.include "/etc/passwd"\n.op\n.end\n')
    for f in ("pw.sim", "pw.cir"):
        msg = _one_line_error(_cli("sim", str(tmp_path / f)), "/etc/passwd:", "not a netlist")
        first = passwd.read_text().splitlines()[0]
        assert first.split(":")[0] + ":" not in msg.split("/etc/passwd:")[1], msg


# --- validate ---------------------------------------------------------------------------------

def test_validate_zero_points():
    _one_line_error(_cli("validate", str(VA_DIR / "nodes.va"), "--points", "0"), "--points")


def test_validate_negative_temperature():
    _one_line_error(_cli("validate", str(VA_DIR / "nodes.va"), "--temp", "-10", "--points", "3"),
                    "temperature")


def test_compare_non_finite_by_kind():
    from va2jax.validate._compare import _compare

    nan, inf = float("nan"), float("inf")
    assert _compare(np.array([1.0, nan]), np.array([1.0, nan]))[2]
    assert not _compare(np.array([1.0, nan]), np.array([1.0, inf]))[2]  # NaN is no +inf
    assert not _compare(np.array([-inf]), np.array([inf]))[2]


def test_validate_reports_non_finite_reference(tmp_path):
    f = tmp_path / "sq.va"
    f.write_text(HEADER + "module sq(a, b);\n  inout a, b;\n  electrical a, b;\n"
                 "  analog I(a, b) <+ sqrt(V(a, b));\nendmodule\n")
    r = _cli("validate", str(f), "--points", "20")
    assert "Traceback" not in r.stderr, r.stderr
    # sqrt of the negative half of the random voltages: NaN in both paths, counted and shown
    assert "non-finite reference entries (NaN/inf, compared by kind only): residual_resist" in r.stdout, r.stdout


# --- Model.eval / Model.evaluator shapes ------------------------------------------------------

@pytest.fixture(scope="module")
def diode():
    return compile_va(DIODE)


def test_eval_rejects_bad_shapes(diode):
    st = diode.setup({})
    for V in (0.7, np.zeros((2, 2, 3)), [0.7, 0.0]):
        with pytest.raises(Va2JaxError, match=r"expected 3 node voltages"):
            diode.eval(st, V)


def test_evaluator_broadcasts_one_instance(diode):
    st = diode.setup({})
    V = np.column_stack([np.linspace(0, 0.8, 8), np.zeros(8), np.linspace(0, 0.8, 8)])
    ref = diode.eval(st, V)
    out = diode.evaluator(st)(V)
    for k in ("residual_resist", "jacobian_resist", "residual_react", "jacobian_react"):
        assert np.array_equal(np.asarray(out[k]), getattr(ref, k)), k
    with pytest.raises(Va2JaxError, match="operating points for 2 instances"):
        diode.evaluator(diode.setup({"is": np.array([1e-14, 2e-14])}))(V)


def test_model_without_ports(tmp_path):
    f = tmp_path / "noport.va"
    f.write_text(HEADER + "module noport;\n  parameter real a = 1;\n  real x;\n"
                 "  analog begin\n    x = a * 2;\n  end\nendmodule\n")
    m = compile_va(f)
    st = m.setup({})
    assert m.eval(st, np.zeros(0)).residual_resist.shape == (0,)
    assert m.eval(st, np.zeros((4, 0))).residual_resist.shape == (4, 0)
    with pytest.raises(Va2JaxError, match="expected 0 node voltages"):
        m.eval(st, 0.7)


def test_netlist_parameter_out_of_bounds_both_paths(tmp_path):
    """IS = -1e-14 on a model card: refused with the netlist line, by the generated model and by
    the OSDI library built from the same source (beside the netlist, so it is used as it is)."""
    import shutil

    from va2jax.osdi import compile_va_to_osdi

    shutil.copy(compile_va_to_osdi(DIODE, opt_level=0), tmp_path / "vd.osdi")
    for lib in (str(DIODE), "vd.osdi"):
        net = tmp_path / "b.sim"
        net.write_text(f'b\nload "{lib}"\nmodel d va2jax_diode is=-1e-14\nmodel isource isource\n'
                       "i1 (0 a) isource dc=1m\nd1 (a 0) d\ncontrol\n  analysis op1 op\nendc\n")
        _one_line_error(_cli("sim", str(net), "--no-progress"), "b.sim:", "'IS'" if lib == "vd.osdi"
                        else "IS = -1e-14", "out of bounds")
