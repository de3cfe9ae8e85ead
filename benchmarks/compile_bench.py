#!/usr/bin/env python3
"""Compile time: ``.va`` → first native result in a fresh process, vs ``openvaf-r`` on the same file.

Per model, side by side in one run, each case a fresh subprocess (wall time and the child's own
peak RSS through ``os.wait4``), repeated ``--repeat`` times:

* ``openvaf-r`` — OpenVAF's compiler at its default (-O3), ``.va`` → ``.osdi``;
* ``cold`` — ``compile_va`` + ``setup`` + ``eval`` with the defaults (the native backend on a
  CPU) and an empty private cache folder (``VA2JAX_CACHE``), so the front end and LLVM run;
* ``warm`` — the same again with the caches that run filled;
* ``jax`` — a bare ``python -c "import jax; jax.numpy.zeros(1).block_until_ready()"``, the
  yardstick of the warm start.

The worker reports its phases and whether JAX got imported (``jax``). ``--src`` runs another
checkout's ``src``; ``--before`` runs another one alongside (before/after tables from one run).

Usage::

    python benchmarks/compile_bench.py                      # psp103, bsim4
    python benchmarks/compile_bench.py --models psp103 --repeat 1 --before ../main/src

A measurement, not a test: nothing is asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

import model_bench as mb  # noqa: E402 (after sys.path is set)

WORKER = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import va2jax
m = va2jax.compile_va(sys.argv[1])
t1 = time.perf_counter()
st = m.setup(json.loads(sys.argv[2]), temperature=float(sys.argv[3]))
t2 = time.perf_counter()
with np.errstate(all="ignore"):
    out = m.eval(st, np.zeros(len(m.nodes)))
t3 = time.perf_counter()
print(json.dumps({"compile_s": t1 - t0, "setup_s": t2 - t1, "eval_s": t3 - t2, "first_s": t3 - t0,
                  "jax": "jax" in sys.modules, "finite": bool(np.isfinite(out.residual_resist).all())}))
"""

BARE_JAX = "import jax; jax.numpy.zeros(1).block_until_ready()"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="psp103,bsim4")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--src", default=None, help="the va2jax src folder to run (default: this checkout's)")
    ap.add_argument("--before", default=None,
                    help="another checkout's src folder, run alongside (cases cold-before, warm-before)")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    from va2jax.osdi._compile import openvaf_command

    src = Path(args.src).resolve() if args.src else HERE.parent / "src"
    work = Path(tempfile.mkdtemp(prefix="compile-bench-"))
    base_env = {**os.environ, "PYTHONPATH": str(src), "NO_COLOR": "1"}
    srcs = [("", src)] + ([("-before", Path(args.before).resolve())] if args.before else [])
    rows = []
    try:
        for name in args.models.split(","):
            key, va, params, _vr = mb.resolve_model(name.strip())
            cases: dict[str, list[dict]] = {"openvaf-r": [], "cold": [], "warm": [], "jax": []}
            for r in range(args.repeat):
                cache = work / f"{key}-cache{r}"
                env = {**base_env, "VA2JAX_CACHE": str(cache)}
                w, rss, rc, _o, err = mb.run_measured(
                    [openvaf_command(), str(va), "-o", str(work / f"{key}.osdi"), "-I", str(va.parent)], env=env)
                if rc != 0:
                    raise SystemExit(f"openvaf-r failed on {va}:\n{err[-2000:]}")
                cases["openvaf-r"].append({"wall_s": w, "rss_mib": rss})
                for tag, s in srcs:
                    for phase in ("cold", "warm"):
                        env = {**base_env, "VA2JAX_CACHE": str(cache / tag), "PYTHONPATH": str(s)}
                        w, rss, rc, out, err = mb.run_measured(
                            [sys.executable, "-c", WORKER, str(va), json.dumps(params), str(mb.TEMPERATURE)], env=env)
                        if rc != 0:
                            raise SystemExit(f"va2jax ({phase}) failed on {va}:\n{err[-3000:]}")
                        cases.setdefault(phase + tag, []).append({"wall_s": w, "rss_mib": rss, **mb.last_json(out)})
                w, rss, rc, _o, err = mb.run_measured([sys.executable, "-c", BARE_JAX], env=base_env)
                if rc != 0:
                    raise SystemExit(f"bare jax failed:\n{err[-2000:]}")
                cases["jax"].append({"wall_s": w, "rss_mib": rss})
                shutil.rmtree(cache, ignore_errors=True)
            med = {c: statistics.median(x["wall_s"] for x in v) for c, v in cases.items()}
            rss = {c: max(x["rss_mib"] for x in v) for c, v in cases.items()}
            row = {"model": key, "src": str(src), "median_wall_s": med, "peak_rss_mib": rss,
                   "cold_over_openvaf": med["cold"] / med["openvaf-r"], "warm_over_jax": med["warm"] / med["jax"],
                   "jax_imported": {c: [x.get("jax") for x in cases[c]] for c in ("cold", "warm")},
                   "runs": cases}
            rows.append(row)
            print(f"{key}: openvaf-r {med['openvaf-r']:.2f} s ({rss['openvaf-r']:.0f} MiB) | cold "
                  f"{med['cold']:.2f} s ({rss['cold']:.0f} MiB) = {row['cold_over_openvaf']:.2f}× | warm "
                  f"{med['warm']:.2f} s ({rss['warm']:.0f} MiB) vs bare jax {med['jax']:.2f} s = "
                  f"{row['warm_over_jax']:.2f}× | JAX imported: cold {row['jax_imported']['cold']}, "
                  f"warm {row['jax_imported']['warm']}", flush=True)
            if args.before:
                print(f"  before ({args.before}): cold {med['cold-before']:.2f} s ({rss['cold-before']:.0f} MiB) = "
                      f"{med['cold-before'] / med['openvaf-r']:.2f}× | warm {med['warm-before']:.2f} s "
                      f"({rss['warm-before']:.0f} MiB) = {med['warm-before'] / med['jax']:.2f}×", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    res = {"loadavg": os.getloadavg(), "cpus": os.cpu_count(), "repeat": args.repeat, "results": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "results"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
