"""Fused XLA code gives the same bits as unfused code (no FMA contraction), so fusion can be on.

XLA's CPU backend lets LLVM contract a multiply and an add in one fused kernel into an FMA (one
rounding); OSDI code rounds twice. ``configure_xla`` caps the instruction set at AVX (no FMA). The
expected values are IEEE arithmetic (NumPy, two roundings) and the same model compiled unfused.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import numpy as np
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
    base = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}  # this process's flags: va2jax's
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
    exact, differing = _probe()
    assert exact
    assert differing == 0  # all 4,096 fused a*b+c equal IEEE mul-then-add


@pytest.mark.skipif(not (x86 and _cpu_has_fma()), reason="needs an x86-64 CPU with FMA")
def test_without_the_cap_fusion_contracts_and_the_probe_says_so():
    exact, differing = _probe(VA2JAX_XLA_MAX_ISA="")
    assert not exact
    assert differing > 0


def test_fused_model_eval_is_bit_identical_to_unfused(corpus, monkeypatch):
    from va2jax import compile_va
    from va2jax.codegen import _xla as _model  # XLA configuration lives in _xla

    if not _model.fusion_is_exact():
        pytest.skip("fusion contracts on this machine (va2jax's ISA cap not in force)")
    monkeypatch.setenv("VA2JAX_EXE_CACHE", "0")
    rng = np.random.default_rng(3)
    n = 64
    model = compile_va(corpus / "spice" / "diode.va")
    V = rng.uniform(-0.6, 0.9, (n, len(model.nodes)))
    V[:, 4:] = rng.uniform(-1e-3, 1e-3, (n, len(model.nodes) - 4))  # flow unknowns (A)
    is_ = rng.uniform(1e-15, 1e-13, n)

    def run(fuse_min: int):
        monkeypatch.setattr(_model, "FUSE_MIN_BATCH", fuse_min)
        model = compile_va(corpus / "spice" / "diode.va")  # a fresh Model: no compiled eval yet
        state = model.setup({"is": is_, "rs": 10.0, "cjo": 1e-12})
        return model.eval(state, V, analysis="tran", backend="jax").as_dict()

    unfused, fused = run(0), run(1)
    assert _model._compiler_options(64) == _model.FUSION_ON  # the second run did compile fused
    for k in unfused:
        np.testing.assert_array_equal(fused[k], unfused[k], err_msg=k)
