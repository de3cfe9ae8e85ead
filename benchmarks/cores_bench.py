#!/usr/bin/env python3
"""Native kernels on all cores vs one thread (issue 15, done-when 2: ≥ 0.85 × cores × one thread).

Per model at N instances (default 16,384), in one process, evaluations per second (best of
``--reps`` timings of at least ``--min-time`` s each; the one-thread and all-core variants of a
path are timed alternately, so a load change from other processes hits both) of five paths:

* ``batch`` — ``eval_batch`` through ctypes (``native._backend.run_rows``), fresh output;
* ``dense`` — ``eval_dense`` (the dense outputs ``Model.evaluator`` returns) through ctypes;
* ``evaluator`` — ``Model.evaluator(state)(V)`` called eagerly (ctypes);
* ``evaluator_jit`` — ``jax.jit(evaluator)(V)``: XLA's FFI call on XLA's thread pool, and the
  slices into the returned dict (copies XLA makes when the outputs leave the program);
* ``evaluator_flat`` — the evaluator's own jitted program: the FFI call returning one buffer.

For each: ``<path>_1t``, ``<path>_nt`` and ``<path>_ratio`` = nt / (cores × 1t) (target ≥ 0.85).
With ``--osdi`` the OSDI library OpenVAF builds from the same file (``openvaf-r``, its default
-O3) is also timed looping from C on one thread (``benchmarks/osdi_bench.c``, the harness of
``native_bench.py``; best of runs before and after the paths) and ``<path>_vs_osdi`` = nt / (cores ×
OSDI one-thread rate) is printed: issue 15's done-when 2 reads "with all cores ≥ 0.85 × cores ×
that rate", *that rate* being the OSDI library's one-thread rate.
One thread = the evaluator built with ``min_rows_per_task`` patched to "never split" (works on
older checkouts too, for before/after runs with ``PYTHONPATH`` pointing at another ``src``).
``<path>_cpu`` is the process's CPU time over wall time × cores during the all-core timing: below 1,
other processes had part of the cores, or our threads waited. ``<path>_cpu_eff`` = CPU time per
evaluation on one thread / the same on all cores: what splitting costs in work (page faults,
waiting spins, copies), independent of how much of the machine other processes leave us. The load average before
and after is printed. A measurement, not a test: nothing is asserted.

Usage::

    python benchmarks/cores_bench.py --models psp103,bsim4
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

import model_bench as mb  # noqa: E402 (after sys.path is set)


def rates(fns: dict, n: int, reps: int, min_time: float) -> dict:
    """Evaluations per second of each function (best of ``reps``, timed in turn) and, per
    function, the process's CPU time / (wall × cores) during its best timing."""
    for fn in fns.values():
        fn()
    best = {k: 0.0 for k in fns}
    busy = {k: 0.0 for k in fns}
    cores = os.cpu_count() or 1
    for _ in range(reps):
        for k, fn in fns.items():
            calls, c0, t0 = 0, os.times(), time.perf_counter()
            while True:
                fn()
                calls += 1
                el = time.perf_counter() - t0
                if el >= min_time:
                    break
            c1 = os.times()
            r = n * calls / el
            if r > best[k]:
                best[k] = r
                busy[k] = (c1.user + c1.system - c0.user - c0.system) / (el * cores)
    return {"rate": best, "cpu": busy}


_OSDI_WORK: list[Path] = []


def osdi_rate(key: str, va: Path, params: dict, vrange: tuple[float, float], n: int, reps: int,
              min_time: float) -> float:
    """One-thread evaluations per second (best of ``reps``) of the OSDI library ``openvaf-r``
    builds from ``va`` (its default optimisation), looping from C over ``n`` instances (voltages
    from the same generator and seed as ours, in the OSDI module's node order, as in
    ``native_bench.py``)."""
    import subprocess
    import tempfile

    from va2jax.osdi import load_library
    from va2jax.osdi._compile import openvaf_command

    if not _OSDI_WORK:
        _OSDI_WORK.append(Path(tempfile.mkdtemp(prefix="cores-bench-")))
    work = _OSDI_WORK[0]
    harness = work / "osdi_bench"
    if not harness.exists():
        harness = mb.build_harness(work)
    osdi = work / f"{key}.osdi"
    if not osdi.exists():
        subprocess.run([openvaf_command(), str(va), "-o", str(osdi), "-I", str(va.parent)],
                       check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"})
    mod = load_library(osdi).module(0)
    volts = mb.make_voltages([nd.units for nd in mod.nodes], n, vrange)
    volts.astype("<f8").tofile(work / f"{key}.v.bin")
    pfile = work / f"{key}.params.txt"
    pfile.write_text("\n".join([f"{k} {v!r}" for k, v in params.items()] + mb.sim_param_lines()) + "\n")
    r = subprocess.run([str(harness), str(osdi), mod.name, str(pfile), str(work / f"{key}.v.bin"), str(n),
                        "--reps", str(reps), "--min-time", str(min_time), "--temp", str(mb.TEMPERATURE)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(f"C harness failed:\n{r.stderr[-2000:]}")
    return float(mb.last_json(r.stdout)["evals_per_s_max"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="psp103,bsim4")
    ap.add_argument("--n", type=int, default=16384)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--paths", default="batch,dense,evaluator,evaluator_jit,evaluator_flat")
    ap.add_argument("--osdi", action="store_true",
                    help="also time the OSDI library from C on one thread (needs gcc)")
    args = ap.parse_args(argv)
    import jax

    from va2jax import compile_va
    from va2jax.codegen._state import eval_inputs
    from va2jax.codegen.native import _backend as nb

    cores = nb._threads()
    print(json.dumps({"loadavg_before": os.getloadavg(), "cores": cores}), flush=True)
    paths = args.paths.split(",")
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

        def build(one: bool):
            """The evaluator and its ``jax.jit``, both traced here: one thread also for the FFI
            calls made at trace time (the large traced call's split results read the thread
            limit then: ``VA2JAX_NATIVE_THREADS=1`` while tracing)."""
            m.__dict__.pop("_native_dense_calls", None)
            real, env = nb.min_rows_per_task, os.environ.get("VA2JAX_NATIVE_THREADS")
            if one:
                nb.min_rows_per_task = lambda _m: 1 << 40
                os.environ["VA2JAX_NATIVE_THREADS"] = "1"
            try:
                f = m.evaluator(st)
                j = jax.jit(f)
                jax.block_until_ready(j(V))
                return f, j
            finally:
                nb.min_rows_per_task = real
                if env is None:
                    os.environ.pop("VA2JAX_NATIVE_THREADS", None)
                else:
                    os.environ["VA2JAX_NATIVE_THREADS"] = env

        (f1, j1), (fn, jn) = build(True), build(False)
        variants = {
            "batch": (lambda: nb.run_rows(k.eval_batch_address, shared, rows, k.n_out_eval, 1 << 62),
                      lambda: nb.run_rows(k.eval_batch_address, shared, rows, k.n_out_eval, per)),
            "dense": (lambda: d.numpy(dshared, drows), lambda: d.numpy(dshared, drows, per)),
            "evaluator": (lambda: f1(V), lambda: fn(V)),
            "evaluator_jit": (lambda: jax.block_until_ready(j1(V)), lambda: jax.block_until_ready(jn(V))),
            "evaluator_flat": (lambda: f1.jitted(f1.consts, V, None, False).block_until_ready(),
                               lambda: fn.jitted(fn.consts, V, None, False).block_until_ready()),
        }
        res = {"model": key, "n": n, "cores": cores}
        osdi_runs = [osdi_rate(key, va, params, vrange, n, args.reps, args.min_time)] if args.osdi else []
        for path in paths:
            one, many = variants[path]
            r = rates({"1t": one, "nt": many}, n, args.reps, args.min_time)
            res[f"{path}_1t"], res[f"{path}_nt"] = r["rate"]["1t"], r["rate"]["nt"]
            res[f"{path}_ratio"] = r["rate"]["nt"] / (cores * r["rate"]["1t"])
            res[f"{path}_cpu"] = r["cpu"]["nt"]
            res[f"{path}_cpu_eff"] = (r["cpu"]["1t"] / r["rate"]["1t"]) / (r["cpu"]["nt"] / r["rate"]["nt"])
            print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in res.items()
                              if k2.startswith(path) or k2 == "model"}), flush=True)
        if args.osdi:
            osdi_runs.append(osdi_rate(key, va, params, vrange, n, args.reps, args.min_time))
            res["osdi_1t"] = max(osdi_runs)
            for path in paths:
                res[f"{path}_vs_osdi"] = res[f"{path}_nt"] / (cores * res["osdi_1t"])
            print(json.dumps({k2: (round(v, 3) if isinstance(v, float) else v) for k2, v in res.items()
                              if k2.endswith("_vs_osdi") or k2 in ("model", "osdi_1t")}), flush=True)
        print(json.dumps(res), flush=True)
    print(json.dumps({"loadavg_after": os.getloadavg()}), flush=True)
    for w in _OSDI_WORK:
        shutil.rmtree(w, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
