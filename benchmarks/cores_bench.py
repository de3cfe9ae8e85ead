#!/usr/bin/env python3
"""Native kernels on all cores vs one thread (issue 15, done-when 2: ≥ 0.85 × cores × one thread).

Per model at N instances (default 16,384), in one process, evaluations per second (median of
``--reps`` timings of at least ``--min-time`` s each) of:

* ``batch 1t`` — ``eval_batch`` through ctypes, one call (one thread): the reference rate;
* ``batch Nt`` — the same rows split over every core (``native._backend.run_rows``);
* ``dense Nt`` — ``eval_dense`` (the dense outputs ``Model.evaluator`` returns), all cores;
* ``evaluator`` — ``Model.evaluator(state)(V)`` called eagerly (ctypes, all cores);
* ``evaluator jit`` — the same evaluator inside ``jax.jit`` (XLA's FFI call, XLA's thread pool).

The load average before and after is printed: on a shared machine other processes take cores
away, and the ratio then says little. A measurement, not a test: nothing is asserted.

Usage::

    python benchmarks/cores_bench.py --models psp103,bsim4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

import model_bench as mb  # noqa: E402 (after sys.path is set)


def rate(fn, n: int, reps: int, min_time: float) -> float:
    fn()
    samples = []
    for _ in range(reps):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn()
            calls += 1
            el = time.perf_counter() - t0
            if el >= min_time:
                break
        samples.append(n * calls / el)
    return float(statistics.median(samples))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="psp103,bsim4")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    args = ap.parse_args(argv)
    import jax

    from va2jax import compile_va
    from va2jax.codegen._state import eval_inputs
    from va2jax.codegen.native import _backend as nb

    cores = nb._threads()
    print(json.dumps({"loadavg_before": os.getloadavg(), "cores": cores}), flush=True)
    rows_out = []
    for name in args.models.split(","):
        key, va, params, vrange = mb.resolve_model(name.strip())
        m = compile_va(va)
        n = args.n
        st = m.setup({k: np.full(n, v) for k, v in params.items()}, temperature=np.full(n, mb.TEMPERATURE))
        V = mb.make_voltages(["A" if kd == "BranchCurrent" else "V" for kd in m.node_kinds], n, vrange)
        p = nb.plan(m)
        k = p.kernel
        rows, lab = nb._rows(m, p, eval_inputs(st, V, flags=2048, num_states=m.num_states), n)
        shared = k.shared_values(st.sp)
        d = p.dense(np.asarray(lab), False)
        dshared, drows = d.shared(shared), d.rows(rows)
        per = nb.min_rows_per_task(m)
        f = m.evaluator(st)
        fj = jax.jit(f)
        res = {"model": key, "n": n, "cores": cores,
               "batch_1t": rate(lambda: nb.run_rows(k.eval_batch_address, shared, rows, k.n_out_eval, 1 << 62),
                                n, args.reps, args.min_time),
               "batch_nt": rate(lambda: nb.run_rows(k.eval_batch_address, shared, rows, k.n_out_eval, per),
                                n, args.reps, args.min_time),
               "dense_1t": rate(lambda: d.numpy(dshared, drows), n, args.reps, args.min_time),
               "dense_nt": rate(lambda: d.numpy(dshared, drows, per), n, args.reps, args.min_time),
               "evaluator": rate(lambda: f(V), n, args.reps, args.min_time),
               "evaluator_jit": rate(lambda: jax.block_until_ready(fj(V)), n, args.reps, args.min_time)}
        for c in ("batch_nt", "evaluator", "evaluator_jit"):
            res[f"{c}_over_cores_x_1t"] = res[c] / (cores * res["batch_1t"])
        res["dense_nt_over_cores_x_1t"] = res["dense_nt"] / (cores * res["dense_1t"])
        rows_out.append(res)
        print(json.dumps(res), flush=True)
    print(json.dumps({"loadavg_after": os.getloadavg()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
