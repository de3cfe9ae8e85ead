"""The native Newton kernel (``codegen/native/_newton.py``) against the XLA Newton loop, beside VACASK.

``python benchmarks/native_newton_bench.py [CASE ...] [--runs K]``

For each case of VACASK's suite (``tests/data/vacask_suite``; stop reduced as in ``docs/sim.md``:
rc 100 ms, graetz 50 ms, mul 500 µs, ring 50 ns; ``--quick``: a tenth) it runs VACASK once per repeat and
va2jax with ``VA2JAX_SIM_NATIVE_NEWTON=0`` (XLA loop), ``=1`` (one native call per solve; its dense
and its sparse variant, ``VA2JAX_SIM_NEWTON_MATRIX``) and with ``VA2JAX_SIM_NATIVE_STEP=1`` as well
(one native call per chunk of steps; ``--modes`` picks), each
``Simulation.run()`` once to compile and then ``K`` times timed. Printed per mode: time points, Newton
iterations, µs per accepted step as wall time and as CPU time (the VM is shared: CPU time of the
process — VACASK: of the child, less that of a run of a few steps, its start-up and elaboration —
is the steadier figure), best of the repeats, and the ratio to VACASK's CPU time per step. This is
a measuring tool, not a test.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "sim"))

STOPS = {"rc": "100m", "graetz": "50m", "mul": "500u", "ring": "50n"}
QUICK = {"rc": "10m", "graetz": "5m", "mul": "50u", "ring": "5n"}
#: mode → (VA2JAX_SIM_NATIVE_NEWTON, VA2JAX_SIM_NATIVE_STEP, VA2JAX_SIM_NEWTON_MATRIX, label)
MODES = {"xla": ("0", "0", None, "XLA Newton loop"),
         "dense": ("1", "0", "dense", "native Newton, dense"),
         "sparse": ("1", "0", "sparse", "native Newton, sparse"),
         "step": ("1", "1", None, "native step"),
         "step-dense": ("1", "1", "dense", "native step, dense Newton"),
         "step-sparse": ("1", "1", "sparse", "native step, sparse Newton")}
TINY = {"rc": "10u", "graetz": "1u", "mul": "0.05u", "ring": "0.01n"}


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cases", nargs="*", default=list(STOPS))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--modes", nargs="+", choices=list(MODES), default=["xla", "dense", "sparse", "step"],
                    help="xla: the XLA Newton loop; dense/sparse: the native Newton kernel (that "
                         "matrix form) inside the XLA step loop; step: whole steps in the native "
                         "step kernel (the Newton kernel's default form; step-dense/step-sparse: "
                         "that form)")
    a = ap.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import suite

    from va2jax.sim import Simulation

    warnings.filterwarnings("ignore")
    tmp = Path(tempfile.mkdtemp(prefix="native_newton_bench_"))
    for case in a.cases:
        stop = (QUICK if a.quick else STOPS)[case]
        best_v = None
        for _ in range(a.runs):
            c0 = _child_cpu()
            v0 = suite.run_vacask(suite.prepare(case, tmp / case / "vacask0", stop=TINY[case]))
            c1 = _child_cpu()
            v = suite.run_vacask(suite.prepare(case, tmp / case / "vacask", stop=stop))
            cpu = ((_child_cpu() - c1) - (c1 - c0)) / (v.points - v0.points) * 1e6
            best_v = cpu if best_v is None else min(best_v, cpu)
        print(f"{case} (stop {stop}): VACASK {v.points} points, {v.iterations} iterations, "
              f"{best_v:.2f} µs/step CPU, {v.analysis_s / v.points * 1e6:.2f} µs/step (its own timer)")
        for mode in a.modes:
            newton, step, matrix, label = MODES[mode]
            os.environ["VA2JAX_SIM_NATIVE_NEWTON"] = newton
            os.environ["VA2JAX_SIM_NATIVE_STEP"] = step
            os.environ.pop("VA2JAX_SIM_NEWTON_MATRIX", None)
            if matrix:
                os.environ["VA2JAX_SIM_NEWTON_MATRIX"] = matrix
            sim = Simulation.from_file(suite.prepare(case, tmp / case / f"va2jax{mode}", stop=stop))
            t0 = time.perf_counter()
            res = sim.run()
            first = time.perf_counter() - t0
            wall = cpu = None
            for _ in range(a.runs):
                t0, p0 = time.perf_counter(), time.process_time()
                res = sim.run()
                w, c = time.perf_counter() - t0, time.process_time() - p0
                wall = w if wall is None else min(wall, w)
                cpu = c if cpu is None else min(cpu, c)
            tr = res["tran1"]
            pts = tr.stats.points
            print(f"  {label:16s} {pts} points, {tr.stats.newton_iterations} iterations, "
                  f"{wall / pts * 1e6:7.2f} µs/step wall, {cpu / pts * 1e6:7.2f} µs/step CPU "
                  f"({cpu / pts * 1e6 / best_v:.2f}× VACASK); compile {sim.engine.compile_s:.1f} s, "
                  f"first run {first:.1f} s", flush=True)
    os.environ.pop("VA2JAX_SIM_NATIVE_NEWTON", None)
    os.environ.pop("VA2JAX_SIM_NEWTON_MATRIX", None)
    os.environ.pop("VA2JAX_SIM_NATIVE_STEP", None)


if __name__ == "__main__":
    main()
