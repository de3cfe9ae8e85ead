"""Batched-sweep benchmark: N parameter sets of one circuit, sequential loop vs vmap vs sharded.

Circuit: ``examples/circuits/rectifier_mc.sim`` (sine source, series R, SPICE diode, RC load);
swept: r0, the diode's is/n/rs (model card), the source amplitude and the load capacitor, drawn
uniformly / log-uniformly (seeded). For the DC operating point and the 2 µs transient it prints,
per mode, the XLA compile time and the run time separately:

* ``sequential``: the same single-set function, compiled once, called N times from Python
  (the reference the batched results are tested against);
* ``vmap``: ``jax.vmap`` over the N sets, one compiled computation on one device;
* ``sharded``: the batch axis split over all devices (``--devices`` forced host CPU devices,
  ``XLA_FLAGS=--xla_force_host_platform_device_count``; on a machine with accelerators, the
  real devices).

Run: ``python benchmarks/batch_bench.py [--n 1000] [--devices 4] [--models auto|builtin]``.
Wall-clock times on a shared machine are noisy; the ratios are what to read.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETLIST = ROOT / "examples" / "circuits" / "rectifier_mc.sim"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000, help="parameter sets")
    ap.add_argument("--devices", type=int, default=4, help="forced host CPU devices for 'sharded'")
    ap.add_argument("--models", default="auto", choices=("auto", "builtin", "va"))
    ap.add_argument("--analyses", default="op,tran")
    args = ap.parse_args()
    if "jax" in sys.modules:  # pragma: no cover
        raise SystemExit("batch_bench: JAX was imported before XLA_FLAGS could be set")
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={args.devices}")
    import jax
    import numpy as np

    from va2jax.sim.batch import BatchSweep

    n = args.n
    rng = np.random.default_rng(0)
    vals = {"r0": rng.uniform(50, 200, n), "dmod.is": 10 ** rng.uniform(-15, -13, n),
            "dmod.n": rng.uniform(1.0, 2.0, n), "dmod.rs": rng.uniform(1.0, 10.0, n),
            "vs.ampl": rng.uniform(1.0, 3.0, n), "cl": rng.uniform(0.5e-9, 2e-9, n)}
    bs = BatchSweep(NETLIST, list(vals), prefer=args.models)
    devs = jax.devices()
    print(f"circuit: {NETLIST.name}, N = {n} parameter sets, models: {args.models}, "
          f"{len(devs)} device(s) ({devs[0].platform}), {os.cpu_count()} CPU cores")
    rows = []
    for analysis in args.analyses.split(","):
        results = {}
        for mode in ("sequential", "vmap", "sharded"):
            if analysis == "op":
                r = bs.op(vals, mode=mode)
                extra = ""
            else:
                r = bs.tran(vals, 2e-6, 1e-9, 20e-9, mode=mode)
                extra = f"{int(r.npoints.min())}-{int(r.npoints.max())} points"
            results[mode] = r
            rows.append((analysis, mode, r.compile_s, r.run_s, extra))
        ref = results["sequential"]
        for mode in ("vmap", "sharded"):
            d = float(np.nanmax(np.abs(results[mode].x - ref.x)))
            print(f"{analysis}: max |{mode} - sequential| = {d:.2e}")
    seq = {a: run for a, m, _, run, _ in rows if m == "sequential"}
    hdr = (f"{'analysis':8s} {'mode':11s} {'compile s':>9s} {'run s':>8s} {'ms/set':>8s} "
           f"{'speed-up':>8s}  note")
    print(hdr)
    print("-" * len(hdr))
    for analysis, mode, comp, run, extra in rows:
        label = mode if mode != "sharded" else f"sharded x{len(devs)}"
        print(f"{analysis:8s} {label:11s} {comp:9.2f} {run:8.3f} {1e3 * run / n:8.3f} "
              f"{seq[analysis] / run:8.1f}  {extra}")


if __name__ == "__main__":
    main()
