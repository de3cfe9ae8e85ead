"""Importing and using va2jax leaves the process's XLA configuration alone.

va2jax used to put ``--xla_disable_hlo_passes=fusion,…`` and ``--xla_cpu_max_isa=AVX`` into
``XLA_FLAGS`` when imported. With the ``fusion`` pass disabled, XLA's CPU compiler (jax/jaxlib
0.10.2) computes complex ``dot_general``s whose operands need a transpose wrongly, so a user's own
complex JAX code in that process gave silently wrong answers (docs/performance.md, "XLA options").
Its options are now passed per compilation to the programs it compiles for model code. Expected
values: NumPy's ``einsum`` (the same sums of products in another order) and the environment as the
process had it before va2jax was imported.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_SCRIPT = r"""
import json, os, sys
import numpy as np
before = os.environ.get("XLA_FLAGS")
import va2jax, va2jax.sim  # noqa: E401,F401  (every entry point)
from va2jax import compile_va
after_import = os.environ.get("XLA_FLAGS")
m = compile_va(sys.argv[1])
rng = np.random.default_rng(1)
V = rng.uniform(-0.5, 0.8, (16, len(m.nodes)))
state = m.setup({"is": 1e-14, "rs": 10.0})
m.eval(state, V, backend="jax")  # generated model code compiled by va2jax (unfused, per compilation)
import jax, jax.numpy as jnp
errs = {}
# complex128 products whose operands XLA must transpose: 3 of these 4 came out wrong (errors of
# order 1 for entries of order 1) with va2jax's former process-wide flags
def c(*s):
    return rng.standard_normal(s) + 1j * rng.standard_normal(s)
for spec, a, b in (("ijk,jl->ikl", c(3, 3, 2), c(3, 4)), ("jik,jl->ikl", c(3, 3, 2), c(3, 4)),
                   ("ji,jkl->ilk", c(3, 2), c(3, 4, 2)), ("ij,kj->ik", c(3, 4), c(5, 4))):
    got = np.asarray(jax.jit(lambda a, b: jnp.einsum(spec, a, b))(a, b))
    want = np.einsum(spec, a, b)
    errs[spec] = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
print(json.dumps({"before": before, "after_import": after_import,
                  "after_eval": os.environ.get("XLA_FLAGS"), "errs": errs}))
"""


def _run(corpus, **env) -> dict:
    base = {k: v for k, v in os.environ.items()
            if k not in ("XLA_FLAGS", "VA2JAX_XLA_MAX_ISA", "VA2JAX_XLA_FUSION")}
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(corpus / "spice" / "diode.va")],
                          capture_output=True, text=True, timeout=600, env={**base, **env})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("flags", [None, "--xla_cpu_enable_fast_math=false"])
def test_import_and_eval_keep_xla_flags_and_complex_products_right(corpus, flags):
    out = _run(corpus, **({} if flags is None else {"XLA_FLAGS": flags}))
    assert out["before"] == flags
    assert out["after_import"] == flags and out["after_eval"] == flags
    for spec, err in out["errs"].items():
        # a product of a 3- or 4-term complex sum: NumPy and XLA may add the terms in another
        # order (a few ulps of the largest entry); the fault gave errors of order 1
        assert err < 1e-13, spec


def test_the_isa_cap_is_set_only_when_asked_for(corpus):
    import platform

    out = _run(corpus, VA2JAX_XLA_MAX_ISA="AVX")
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    assert out["before"] is None
    assert out["after_import"] == ("--xla_cpu_max_isa=AVX" if x86 else None)
    assert max(out["errs"].values()) < 1e-13  # as above: the cap alone does not bring the fault
