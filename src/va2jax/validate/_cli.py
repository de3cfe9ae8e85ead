"""``va2jax validate FILE.va``: generated JAX code vs the OSDI library, any model."""
from __future__ import annotations

import argparse
import json

from ..errors import Va2JaxError


def _parse_kv(items: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for it in items or []:
        if "=" not in it:
            raise Va2JaxError(f"--param {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = int(v) if v.strip().lstrip("+-").isdigit() else float(v)
        except ValueError:
            out[k.strip()] = v
    return out


def _run(args: argparse.Namespace) -> int:
    from ._compare import REL_TOL, ABS_FLOOR, validate_file

    res = validate_file(args.file, points=args.points, param_sets=args.param_sets, seed=args.seed,
                        params=_parse_kv(args.param), temperature=args.temp, module=args.module)
    if args.json:
        print(json.dumps(res.as_json(), default=str))
    else:
        print(f"{res.module}: {res.points} points over {len(res.param_sets)} parameter sets "
              f"(pass: relative error <= {REL_TOL:g}, absolute floor {ABS_FLOOR:g})")
        for k in res.max_rel_err:
            print(f"  {k:18s} max rel {res.max_rel_err[k]:.3e}   max abs {res.max_abs_err[k]:.3e}")
        print(f"  openvaf-r {res.openvaf_r_seconds:.2f} s, va2jax first result {res.va2jax_seconds:.2f} s")
        print("PASSED" if res.passed else "FAILED")
    return 0 if res.passed else 1


def register(sub) -> None:
    p = sub.add_parser("validate", help="compare generated JAX code with the OSDI library")
    p.add_argument("file", help="Verilog-A source")
    p.add_argument("-I", dest="include", action="append", default=[], help="include directory")
    p.add_argument("--points", type=int, default=100, help="operating points per parameter set")
    p.add_argument("--param-sets", type=int, default=3, help="number of parameter sets (>= 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--temp", type=float, default=300.15, help="temperature in K")
    p.add_argument("--module", help="module name (default: the first)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_run)
