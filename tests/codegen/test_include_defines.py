"""`include directories and macro definitions reach both the JAX and the OSDI path."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import va2jax
from va2jax.validate import validate_file

VA_DIR = Path(__file__).resolve().parents[1] / "data" / "va"  # our own Verilog-A test models

SRC = VA_DIR / "incdef.va"
INC = VA_DIR / "inc"
DEFS = {"RVAL": 250.0, "GSHUNT": 1e-3}


def test_include_dir_and_defines_match_osdi_and_ohms_law():
    r = validate_file(SRC, points=100, param_sets=3, include_dirs=[INC], defines=DEFS,
                      reference_opt_level=0)
    assert r.passed, r.max_rel_err
    m = va2jax.compile_va(SRC, include_dirs=[INC], defines=DEFS)
    out = m.eval(m.setup({}), np.array([1.0, 0.0]))
    assert out.residual_resist[0] == pytest.approx(1.0 / 250.0 + 1e-3, rel=1e-15)


def test_missing_include_dir_is_a_one_line_error():
    res = subprocess.run([sys.executable, "-m", "va2jax", "compile", str(SRC), "-o", "/tmp"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    lines = [ln for ln in res.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and lines[0].startswith("va2jax: error: ")
    assert "incdef.va:9" in lines[0] and "rval.inc" in lines[0]
