#!/usr/bin/env python3
"""Cost of the gradient-safe runtime (``codegen/_rt_grad.py``) per model, printed as a table.

Columns: generated source lines and guarded operations (``rt.guard``); jaxpr equations of one
batch eval with the normal runtime (``Model.eval``'s) and with the gradient-safe one
(``Model.function``'s); with ``--timing`` also XLA compile + first call and throughput of a jitted
batch eval (``eval_traceable``, batch 1,024) with each runtime; with ``--grad`` the first call
(trace + compile + run) of ``jit(jacfwd)`` and ``jit(grad)`` of ``Model.function`` with respect
to three parameters and the temperature. Wall-clock numbers on a shared machine are noisy.

Usage::

    python benchmarks/gradient_bench.py                       # diode, psp103, bsim4: counts
    python benchmarks/gradient_bench.py --models bsim4 --timing --grad
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

#: name → (corpus path, fixed parameters, differentiated parameters, terminal voltages)
MODELS = {
    "diode": ("bosdi/spice/diode.va", {"rs": 10.0, "cjo": 1e-12}, {"is": 1e-14, "n": 1.05, "rs": 10.0},
              {"a": 0.7}),
    "psp103": ("bosdi/psp103v4/psp103.va", {"TYPE": 1, "L": 1e-6}, {"TOXO": 1.5e-9, "VFBO": -1.0, "W": 1e-5},
               {"D": 1.0, "G": 1.0}),
    "bsim4": ("bosdi/bsim4v8.va", {"w": 1e-5}, {"vth0": 0.4, "u0": 0.04, "l": 1e-6}, {"d": 1.0, "g": 1.0}),
}


def _voltages(nodes, bias):
    V = np.zeros(len(nodes))
    for i, nd in enumerate(nodes):
        name = nd.lower()
        if not name.startswith(("flow", "noi")):
            V[i] = bias.get(nd, bias.get(nd[0], bias.get(nd[0].upper(), bias.get(nd[0].lower(), 0.0))))
    return V


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    import jax

    jax.block_until_ready(out)
    return time.perf_counter() - t, out


def bench(name: str, timing: bool, grad: bool) -> dict:
    import jax

    from va2jax._paths import corpus_dir
    from va2jax.codegen import compile_va

    rel, fixed, x, bias = MODELS[name]
    m = compile_va(corpus_dir() / rel)
    row = {"model": name, "lines": m.source.count("\n"), "guards": m.source.count("rt.guard(")}
    state = m.setup(fixed)
    V1 = _voltages(m.nodes, bias)[None, :]
    for safe in (False, True):
        jpr = jax.make_jaxpr(lambda V: m.eval_traceable(state, V, gradient_safe=safe))(V1)
        row["eqns_safe" if safe else "eqns"] = len(jpr.jaxpr.eqns)
    if timing:
        n = 1024
        st = m.setup({k: np.full(n, v) for k, v in fixed.items()} or {"m": np.ones(n)})
        Vn = np.broadcast_to(V1, (n, len(m.nodes))).copy()
        for safe in (False, True):
            f = jax.jit(lambda V, s=safe: m.eval_traceable(st, V, gradient_safe=s))
            first, _ = _timed(lambda: f(Vn))
            reps = 20
            t, _ = _timed(lambda: [f(Vn) for _ in range(reps)])
            key = "safe" if safe else "normal"
            row[f"compile_{key}_s"] = first
            row[f"evals_per_s_{key}"] = n * reps / t
    if grad:
        fn = m.function(list(x), fixed=fixed)
        V = _voltages(m.nodes, bias)
        node = m.nodes[0]
        idx = m.nodes.index(node)

        def cur(p, T):
            return fn(p, T, V)["residual_resist"][idx]

        row["jacfwd_first_s"], _ = _timed(lambda: jax.jit(jax.jacfwd(cur, argnums=(0, 1)))(x, 300.15))
        row["grad_first_s"], _ = _timed(lambda: jax.jit(jax.grad(cur, argnums=(0, 1)))(x, 300.15))
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--timing", action="store_true", help="compile time and throughput of batch eval")
    ap.add_argument("--grad", action="store_true", help="first jit(jacfwd)/jit(grad) of Model.function")
    args = ap.parse_args(argv)
    from va2jax.codegen._xla import _jax

    _jax()
    rows = [bench(nm, args.timing, args.grad) for nm in args.models]
    keys = [k for k in rows[0]]
    for r in rows[1:]:
        keys += [k for k in r if k not in keys]
    print(" | ".join(f"{k:>16}" for k in keys))
    for r in rows:
        print(" | ".join(f"{r.get(k, ''):>16.4g}" if isinstance(r.get(k), float) else f"{r.get(k, ''):>16}"
                         for k in keys))


if __name__ == "__main__":
    main()
