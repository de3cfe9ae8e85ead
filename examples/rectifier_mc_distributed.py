"""Monte-Carlo of a diode rectifier, lanes spread over the processes of a JAX distributed job.

``examples/circuits/rectifier_mc.sim`` (sine source, series R, SPICE diode, RC load) with N
random parameter sets (seeded, so every process draws the same table): r0, the diode's
is/n/rs (model card), the source amplitude and the load capacitor. Operating point and 2 µs
transient for every set; process 0 writes the results to ``--out`` (npz) and prints timings.

Two local processes::

    va2jax launch --processes 2 examples/rectifier_mc_distributed.py --n 1000 --out mc2.npz

One process, the ordinary vmapped sweep of the same table (the reference)::

    python examples/rectifier_mc_distributed.py --n 1000 --mode vmap --out mc1.npz

``--compare mc1.npz`` checks the result against another run lane by lane, bit for bit.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

NETLIST = Path(__file__).resolve().parent / "circuits" / "rectifier_mc.sim"


def values(n: int, seed: int) -> dict[str, np.ndarray]:
    """N parameter sets, uniform / log-uniform (the same in every process for one seed)."""
    rng = np.random.default_rng(seed)
    return {"r0": rng.uniform(50, 200, n), "dmod.is": 10 ** rng.uniform(-15, -13, n),
            "dmod.n": rng.uniform(1.0, 2.0, n), "dmod.rs": rng.uniform(1.0, 10.0, n),
            "vs.ampl": rng.uniform(1.0, 3.0, n), "cl": rng.uniform(0.5e-9, 2e-9, n)}


FIELDS = ("op_x", "op_status", "time", "x", "npoints", "status")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000, help="parameter sets (lanes)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", default="distributed", choices=("distributed", "vmap", "sharded"))
    ap.add_argument("--models", default=None, choices=("va", "builtin"),
                    help="model source for the diode (default: the netlist's)")
    ap.add_argument("--out", help="npz file for the results (written by process 0)")
    ap.add_argument("--compare", help="npz of another run: assert lane-by-lane equality")
    args = ap.parse_args(argv)

    import jax

    from va2jax.errors import Va2JaxError
    from va2jax.sim import sweep

    t0 = time.perf_counter()
    try:
        res = sweep(NETLIST, values(args.n, args.seed), ("op", "tran"), stop=2e-6, step=1e-9,
                    maxstep=20e-9, mode=args.mode, prefer=args.models, on_failure="nan")
    except Va2JaxError as exc:
        print(f"va2jax: error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    if jax.process_index() != 0:
        return 0
    op, tr = res["op"], res["tran"]
    got = {"op_x": op.x, "op_status": op.status, "time": tr.time, "x": tr.x,
           "npoints": tr.npoints, "status": tr.status}
    print(f"{args.n} lanes, mode {args.mode}, {jax.process_count()} process(es), "
          f"{len(jax.devices())} device(s): wall {wall:.2f} s (op: compile {op.compile_s:.2f} s, "
          f"run {op.run_s:.2f} s; tran: compile {tr.compile_s:.2f} s, run {tr.run_s:.2f} s); "
          f"{int(np.sum(tr.status != 0))} failed lanes, points per lane "
          f"{int(tr.npoints.min())}-{int(tr.npoints.max())}")
    if args.out:
        np.savez(args.out, **got)
    if args.compare:
        ref = dict(np.load(args.compare))
        for k in FIELDS:
            same = np.array_equal(got[k], ref[k], equal_nan=True)
            print(f"{k}: {'equal bit for bit' if same else 'DIFFERENT'}")
            if not same:
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
