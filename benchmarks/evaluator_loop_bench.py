#!/usr/bin/env python3
"""Batch-1 ``Model.evaluator`` latency (issue 15, "Done when" 3): µs per call from Python (minimum
over repeats of 2,000 calls) and µs per iteration of a compiled ``lax.while_loop`` whose body is one
eval feeding the next iteration's voltages (XLA fusion on for the loop), next to the same loop
without the eval.

Usage: ``python benchmarks/evaluator_loop_bench.py [MODEL.va]`` (default: the corpus's PSP103, with
the parameters of ``model_bench.py``). A measurement, not a test: nothing is asserted.
"""
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT / "src"))

from va2jax.codegen import compile_va  # noqa: E402
from va2jax.codegen._xla import FUSION_ON  # noqa: E402

jax.config.update("jax_enable_x64", True)
va = sys.argv[1] if len(sys.argv) > 1 else str(ROOT / ".cache/corpus/bosdi/psp103v4/psp103.va")
m = compile_va(va)
st = m.setup({"type": 1, "w": 1e-6, "l": 1e-7}, temperature=np.full(1, 300.15))
f = m.evaluator(st)
V = np.zeros((1, m._n))
V[0, :min(4, m._n)] = [0.9, 0.6, 0.0, 0.0][:min(4, m._n)]
f(V)
ts = []
for _ in range(7):
    t = time.perf_counter()
    K = 2000
    for _ in range(K):
        f(V)
    ts.append((time.perf_counter() - t) / K)
py_us = min(ts) * 1e6

def run(with_eval):
    def body(c):
        i, v = c
        if with_eval:
            o = f(v)
            v = v + 1e-12 * o["residual_resist"] + 1e-15 * o["jacobian_resist"][:, :, 0]
        else:
            v = v * (1 + 1e-12) + 1e-15
        return i + 1, v
    return jax.jit(lambda v, n: jax.lax.while_loop(lambda c: c[0] < n, body, (0, v))[1],
                   compiler_options=FUSION_ON)
res = {"python_call_us": py_us}
for name, we in (("loop_without_eval", False), ("loop_with_eval", True)):
    g = run(we)
    Vj = jnp.asarray(V)
    g(Vj, 10).block_until_ready()
    ts = []
    for _ in range(7):
        n = 5000
        t = time.perf_counter()
        g(Vj, n).block_until_ready()
        ts.append((time.perf_counter() - t) / n)
    res[name + "_us"] = min(ts) * 1e6
print(json.dumps(res))
