#!/usr/bin/env python3
"""Native CPU backend vs OpenVAF's OSDI library: compile time and single-thread throughput.

Per model, side by side in one run:

* compile — ``openvaf-r`` (its default -O3) ``.va`` → ``.osdi`` in a fresh process, vs va2jax
  ``.va`` → first native eval result in a fresh process with empty caches (front end, layout,
  LLVM IR, LLVM optimisation and code generation, setup, one eval), and the same process again
  with the caches filled (warm); wall time and peak RSS of each;
* throughput — evaluations per second at N instances (default 16,384), one thread: the native
  ``eval_batch`` kernel on pre-packed input rows (the kernel call only) vs the OSDI library
  looping from C (``benchmarks/osdi_bench.c``: eval + residual loads + Jacobian writes).

Usage::

    python benchmarks/native_bench.py                        # psp103, bsim4
    python benchmarks/native_bench.py --models diode --n 1024

A measurement, not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

import model_bench as mb  # noqa: E402 (after sys.path is set)


def worker(va: str, params: str, volts: str, n: int, reps: int, min_time: float) -> None:
    """In a fresh process: .va → first native result, then (optionally) kernel throughput."""
    t0 = time.perf_counter()
    from va2jax import compile_va
    from va2jax.codegen.native._kernel import model_kernel

    p = json.loads(params)
    model = compile_va(va)
    t_front = time.perf_counter() - t0
    V = np.load(volts)
    st1 = model.setup(p, temperature=mb.TEMPERATURE)
    with np.errstate(all="ignore"):
        model.eval(st1, V[:1], backend="native")
    t_first = time.perf_counter() - t0
    st = model.setup({k: np.full(n, v) for k, v in p.items()}, temperature=np.full(n, mb.TEMPERATURE))
    k = model_kernel(model)
    res = {"first_result_s": t_first, "front_end_s": t_front, "kernel": k.timings,
           "from_cache": k.from_cache, "n_in": k.n_in_eval, "n_out": k.n_out_eval}
    if reps > 0:
        from va2jax.codegen.native._kernel import _column

        inp = {"V": V[:n], "labels": st["labels"], "init": st["init"], "given": st["given"],
               "extra": st["extra"], "temperature": st["temperature"], "mfactor": st["mfactor"],
               "analysis": np.full(n, 2048, np.int32), "enable_lim": np.full(n, False),
               "prev_state": np.zeros((n, model.num_states))}
        ein, _lab = model._batch_inputs(inp, n, np)
        rows = np.empty((n, k.n_in_eval))
        for c, name in enumerate(k.eval_in_names):
            rows[:, c] = _column(ein[name], n)
        shared = k.shared_values(st["sp"])
        k.eval(shared, rows)  # warm-up
        samples = []
        for _ in range(reps):
            calls, t1 = 0, time.perf_counter()
            while True:
                k.eval(shared, rows)
                calls += 1
                el = time.perf_counter() - t1
                if el >= min_time:
                    break
            samples.append(n * calls / el)
        res["evals_per_s_median"] = float(np.median(samples))
        res["evals_per_s_best"] = float(np.max(samples))
    print(json.dumps(res))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_worker":
        a = argparse.ArgumentParser()
        for x in ("--va", "--params", "--volts"):
            a.add_argument(x)
        a.add_argument("--n", type=int)
        a.add_argument("--reps", type=int)
        a.add_argument("--min-time", type=float)
        w = a.parse_args(argv[1:])
        worker(w.va, w.params, w.volts, w.n, w.reps, w.min_time)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="psp103,bsim4")
    ap.add_argument("--n", type=int, default=16384, help="instances (default %(default)s)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.5)
    ap.add_argument("--opt", default=None, help="VA2JAX_NATIVE_OPT for the native build (default 2)")
    args = ap.parse_args(argv)
    from va2jax.osdi import load_library
    from va2jax.osdi._compile import openvaf_command

    work = Path(tempfile.mkdtemp(prefix="native-bench-"))
    harness = mb.build_harness(work)
    out = []
    try:
        for name in args.models.split(","):
            key, va, params, vrange = mb.resolve_model(name.strip())
            mw = work / key
            mw.mkdir()
            osdi = mw / f"{key}.osdi"
            wall_o, rss_o, rc, _o, err = mb.run_measured(
                [openvaf_command(), str(va), "-o", str(osdi), "-I", str(va.parent)],
                env={**os.environ, "NO_COLOR": "1"})
            if rc != 0:
                raise SystemExit(f"openvaf-r failed on {va}:\n{err[-2000:]}")
            mod = load_library(osdi).module(0)
            volts = mb.make_voltages([nd.units for nd in mod.nodes], args.n, vrange)
            np.save(mw / "v.npy", volts)
            volts.astype("<f8").tofile(mw / "v.bin")
            env = {**os.environ, "VA2JAX_CACHE": str(mw / "cache")}
            if args.opt is not None:
                env["VA2JAX_NATIVE_OPT"] = args.opt
            cmd = [sys.executable, __file__, "_worker", "--va", str(va), "--params", json.dumps(params),
                   "--volts", str(mw / "v.npy"), "--n", str(args.n)]
            row = {"model": key, "openvaf_r": {"wall_s": wall_o, "rss_mib": rss_o}}
            for phase, reps in (("cold", 0), ("warm", args.reps)):
                wall, rss, rc, so, se = mb.run_measured(cmd + ["--reps", str(reps), "--min-time",
                                                               str(args.min_time)], env=env)
                if rc != 0:
                    raise SystemExit(f"native worker failed:\n{se[-3000:]}")
                row[f"native_{phase}"] = {"wall_s": wall, "rss_mib": rss, **mb.last_json(so)}
            pfile = mw / "params.txt"
            pfile.write_text("\n".join([f"{k} {v!r}" for k, v in params.items()] + mb.sim_param_lines()) + "\n")
            import subprocess

            r = subprocess.run([str(harness), str(osdi), mod.name, str(pfile), str(mw / "v.bin"), str(args.n),
                                "--reps", str(args.reps), "--min-time", str(args.min_time),
                                "--temp", str(mb.TEMPERATURE)], capture_output=True, text=True)
            if r.returncode != 0:
                raise SystemExit(f"C harness failed:\n{r.stderr[-2000:]}")
            row["osdi_c"] = mb.last_json(r.stdout)
            nat = row["native_warm"]["evals_per_s_median"]
            osd = row["osdi_c"]["evals_per_s_median"]
            row["ratio_native_over_osdi"] = nat / osd
            out.append(row)
            print(f"{key}: openvaf-r {wall_o:.2f} s; native cold {row['native_cold']['wall_s']:.2f} s "
                  f"(RSS {row['native_cold']['rss_mib']:.0f} MiB), warm {row['native_warm']['first_result_s']:.2f} s "
                  f"to first result; throughput at {args.n}: native {nat:,.0f}/s, OSDI-from-C {osd:,.0f}/s, "
                  f"ratio {nat / osd:.2f}", flush=True)
            print("  kernel build (cold):", json.dumps({k: round(v, 3) for k, v in
                                                       row["native_cold"]["kernel"].items()}), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"loadavg": os.getloadavg(), "results": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
