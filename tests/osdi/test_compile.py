"""compile_va_to_osdi: caching, includes, defines, syntax errors."""
from __future__ import annotations

import pytest

from va2jax.errors import Va2JaxError
from va2jax.osdi import compile_va_to_osdi, load_library

SRC = """`include "disciplines.vams"
`include "inc/extra.vams"
module cdef(a, b);
  inout a, b;
  electrical a, b;
`ifdef HALF
  parameter real g = 0.5;
`else
  parameter real g = 0.25;
`endif
  analog I(a, b) <+ g * V(a, b) * SCALE;
endmodule
"""


def _write(tmp_path, scale="2.0"):
    (tmp_path / "inc").mkdir(exist_ok=True)
    (tmp_path / "inc" / "extra.vams").write_text(f"`define SCALE_VAL {scale}\n")
    src = tmp_path / "cdef.va"
    src.write_text(SRC.replace("SCALE", "`SCALE_VAL"))
    return src


def test_compile_cache_and_defines(tmp_path):
    src = _write(tmp_path)
    p1 = compile_va_to_osdi(src, defines={"HALF": "1"})
    assert p1.is_file() and p1.parent.name == "osdi"
    mtime = p1.stat().st_mtime_ns
    assert compile_va_to_osdi(src, defines={"HALF": "1"}) == p1 and p1.stat().st_mtime_ns == mtime
    r = load_library(p1).module().instance().eval({"a": 1.0})
    assert r.residual_resist[0] == pytest.approx(0.5 * 2.0, rel=1e-15)
    p2 = compile_va_to_osdi(src)
    assert p2 != p1
    assert load_library(p2).module().instance().eval({"a": 1.0}).residual_resist[0] == pytest.approx(0.5)
    # changing an included file changes the key
    _write(tmp_path, scale="3.0")
    p3 = compile_va_to_osdi(src, defines={"HALF": "1"})
    assert p3 != p1
    assert load_library(p3).module().instance().eval({"a": 1.0}).residual_resist[0] == pytest.approx(1.5)
    assert not list(p1.parent.glob(".*.osdi"))  # no temp files left behind


def test_value_define(tmp_path):
    src = tmp_path / "v.va"
    src.write_text('`include "disciplines.vams"\nmodule vdef(a,b); inout a,b; electrical a,b;'
                   ' analog I(a,b) <+ `GV * V(a,b); endmodule\n')
    p = compile_va_to_osdi(src, defines={"GV": "0.125"})
    assert load_library(p).module().instance().eval({"a": 2.0}).residual_resist[0] == pytest.approx(0.25)
    with pytest.raises(Va2JaxError, match="v.va:2:.*GV"):
        compile_va_to_osdi(src)


def test_syntax_error_is_one_line_with_location(tmp_path):
    bad = tmp_path / "bad.va"
    bad.write_text('`include "disciplines.vams"\nmodule bad(a);\n inout a; electrical a;\n'
                   ' analog I(a) <+ V(a)\nendmodule\n')
    with pytest.raises(Va2JaxError) as ei:
        compile_va_to_osdi(bad)
    msg = str(ei.value)
    assert "\n" not in msg and f"{bad}:5:" in msg and "\x1b" not in msg


def test_missing_source(tmp_path):
    with pytest.raises(Va2JaxError, match="no such Verilog-A file"):
        compile_va_to_osdi(tmp_path / "nope.va")


def test_include_dirs(tmp_path):
    inc = tmp_path / "incdir"
    inc.mkdir()
    (inc / "val.vams").write_text("`define RVAL 4.0\n")
    src = tmp_path / "r.va"
    src.write_text('`include "disciplines.vams"\n`include "val.vams"\nmodule r4(a,b); inout a,b;'
                   ' electrical a,b; analog I(a,b) <+ V(a,b)/`RVAL; endmodule\n')
    p = compile_va_to_osdi(src, include_dirs=[inc])
    assert load_library(p).module().instance().eval({"a": 2.0}).residual_resist[0] == pytest.approx(0.5)
