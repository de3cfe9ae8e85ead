"""Runtime helpers (``va2jax.codegen._rt``) against C semantics, computed by a tiny C program."""
from __future__ import annotations

import json
import shutil
import subprocess

import jax
import numpy as np
import pytest

from va2jax.codegen import _rt as rt

jax.config.update("jax_enable_x64", True)  # as va2jax.Model does: float64/int32 semantics

REALS = [0.49999999999999994, 0.5, 1.5, 2.5, -2.5, -0.5, -0.49999999999999994, 3.4999999999999996,
         -7.5, 1e9, -1e9, 0.0, -0.0, 2147483646.5]
INTS = [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 3), (1, -1), (-2147483647, 3), (5, 7), (-5, 7)]

C_SRC = r"""
#include <math.h>
#include <stdio.h>
int main(void) {
  double r[] = {%(reals)s};
  int a[] = {%(ia)s}, b[] = {%(ib)s};
  double x[] = {1.0, NAN, 0.0, -1.0}, y[] = {1.0, 1.0, NAN, 2.0};
  printf("{\"lround\": [");
  for (unsigned i = 0; i < sizeof r / sizeof r[0]; i++) printf("%%s%%ld", i ? "," : "", lround(r[i]));
  printf("], \"div\": [");
  for (unsigned i = 0; i < sizeof a / sizeof a[0]; i++) printf("%%s%%d", i ? "," : "", a[i] / b[i]);
  printf("], \"rem\": [");
  for (unsigned i = 0; i < sizeof a / sizeof a[0]; i++) printf("%%s%%d", i ? "," : "", a[i] %% b[i]);
  printf("], \"one\": [");  /* LLVM fcmp one == C islessgreater */
  for (unsigned i = 0; i < 4; i++) printf("%%s%%d", i ? "," : "", islessgreater(x[i], y[i]) ? 1 : 0);
  printf("]}\n");
  return 0;
}
"""


@pytest.fixture(scope="module")
def c_ref(tmp_path_factory):
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not available")
    d = tmp_path_factory.mktemp("crt")
    src = d / "ref.c"
    src.write_text(C_SRC % {"reals": ", ".join(repr(x) for x in REALS),
                            "ia": ", ".join(str(a) for a, _ in INTS),
                            "ib": ", ".join(str(b) for _, b in INTS)})
    exe = d / "ref"
    subprocess.run([gcc, "-O0", "-std=c99", "-o", str(exe), str(src), "-lm"], check=True)
    return json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)


def test_ficast_is_lround(c_ref):
    got = np.asarray(rt.ficast(np.array(REALS))).tolist()
    assert got == c_ref["lround"]
    assert c_ref["lround"][:5] == [0, 1, 2, 3, -3]  # half away from zero, no x + 0.5 error


def test_idiv_irem_truncate_like_c(c_ref):
    a = np.array([x for x, _ in INTS], np.int32)
    b = np.array([y for _, y in INTS], np.int32)
    assert np.asarray(rt.idiv(a, b)).tolist() == c_ref["div"]
    assert np.asarray(rt.irem(a, b)).tolist() == c_ref["rem"]
    # by zero: 0 instead of a trap
    assert int(rt.idiv(5, 0)) == 0 and int(rt.irem(5, 0)) == 0


def test_fne_is_ordered(c_ref):
    x = np.array([1.0, np.nan, 0.0, -1.0])
    y = np.array([1.0, 1.0, np.nan, 2.0])
    assert np.asarray(rt.fne(x, y)).astype(int).tolist() == c_ref["one"] == [0, 0, 0, 1]
    assert np.asarray(rt.fbcast(np.array([np.nan, 0.0, -0.0, 2.0]))).tolist() == [False, False, False, True]


def test_casts_and_shifts():
    assert float(rt.bfcast(True)) == 1.0 and int(rt.bicast(False)) == 0
    assert bool(rt.ibcast(-3)) and not bool(rt.ibcast(0))
    assert int(rt.ishl(3, 4)) == 48 and int(rt.ishr(-16, 2)) == -4  # arithmetic shift, like C on int
    assert np.asarray(rt.clog2(np.array([0, 1, 2, 3, 1024, 1025], np.int32))).tolist() == [0, 0, 1, 2, 10, 11]
