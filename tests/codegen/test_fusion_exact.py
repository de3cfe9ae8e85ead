"""Fused XLA code gives the same bits as unfused code (no FMA contraction), so fusion can be on.

XLA's CPU backend lets LLVM contract a multiply and an add in one fused kernel into an FMA (one
rounding); OSDI code rounds twice. ``VA2JAX_XLA_MAX_ISA=AVX`` makes ``configure_xla`` cap the
instruction set at AVX (no FMA) for the whole process; va2jax no longer sets it unasked. The
expected values are IEEE arithmetic (NumPy, two roundings) and the same model compiled unfused.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

x86 = platform.machine().lower() in ("x86_64", "amd64")

_PROBE = """
import numpy as np
import va2jax.codegen._xla as m
jax = m._jax()
rng = np.random.default_rng(0)
x, y, z = (rng.standard_normal(4096) for _ in range(3))
fused = np.asarray(jax.jit(lambda a, b, c: a * b + c, compiler_options=m.FUSION_ON)(x, y, z))
print(m.fusion_is_exact(), int(np.sum(fused != x * y + z)))
"""


def _probe(**env) -> tuple[bool, int]:
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VA2JAX_XLA_MAX_ISA")}
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=300,
                         env={**base, **env}, check=True).stdout.split()
    return out[0] == "True", int(out[1])


def _cpu_has_fma() -> bool:
    try:
        return " fma " in open("/proc/cpuinfo").read().replace("\n", " ")
    except OSError:
        return False


@pytest.mark.skipif(not x86, reason="the ISA cap is for x86-64")
def test_fused_multiply_add_rounds_twice_with_the_isa_cap():
    exact, differing = _probe(VA2JAX_XLA_MAX_ISA="AVX")
    assert exact
    assert differing == 0  # all 4,096 fused a*b+c equal IEEE mul-then-add


@pytest.mark.skipif(not (x86 and _cpu_has_fma()), reason="needs an x86-64 CPU with FMA")
def test_without_the_cap_fusion_contracts_and_the_probe_says_so():
    exact, differing = _probe()  # va2jax's default: XLA's own ISA
    assert not exact
    assert differing > 0


_MODEL = """
import sys
import numpy as np
from va2jax import compile_va
from va2jax.codegen import _xla
assert _xla.fusion_is_exact(), "the ISA cap is not in force"
rng = np.random.default_rng(3)
n = 64
va = sys.argv[1]
model = compile_va(va)
V = rng.uniform(-0.6, 0.9, (n, len(model.nodes)))
V[:, 4:] = rng.uniform(-1e-3, 1e-3, (n, len(model.nodes) - 4))  # flow unknowns (A)
is_ = rng.uniform(1e-15, 1e-13, n)

def run(fuse_min):
    _xla.FUSE_MIN_BATCH = fuse_min
    model = compile_va(va)  # a fresh Model: no compiled eval yet
    state = model.setup({"is": is_, "rs": 10.0, "cjo": 1e-12})
    return model.eval(state, V, analysis="tran", backend="jax").as_dict()

unfused, fused = run(0), run(1)
assert _xla._compiler_options(64) == _xla.FUSION_ON  # the second run did compile fused
for k in unfused:
    np.testing.assert_array_equal(fused[k], unfused[k], err_msg=k)
print("ok")
"""


@pytest.mark.skipif(not x86, reason="the ISA cap is for x86-64")
def test_fused_model_eval_is_bit_identical_to_unfused(corpus):
    """Under ``VA2JAX_XLA_MAX_ISA=AVX`` (a process of its own: the cap is read when JAX's CPU
    client starts) eval compiled fused gives the unfused bits."""
    base = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VA2JAX_XLA_MAX_ISA")}
    proc = subprocess.run([sys.executable, "-c", _MODEL, str(corpus / "spice" / "diode.va")],
                          capture_output=True, text=True, timeout=600,
                          env={**base, "VA2JAX_XLA_MAX_ISA": "AVX", "VA2JAX_EXE_CACHE": "0"})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
