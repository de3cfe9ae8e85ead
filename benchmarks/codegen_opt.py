#!/usr/bin/env python3
"""Operation counts of generated init/eval before and after common-subexpression elimination.

Usage::

    python benchmarks/codegen_opt.py                      # diode, psp103, bsim4
    python benchmarks/codegen_opt.py path/to/model.va

"Operations" are emitted statements that trace to at least one XLA operation (copies, constants
and input reads excluded; a loop counts its body). Prints a table; asserts nothing.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent / "src") not in sys.path:
    sys.path.insert(0, str(HERE.parent / "src"))

MODELS = {"diode": "bosdi/spice/diode.va", "psp103": "bosdi/psp103v4/psp103.va", "bsim4": "bosdi/bsim4v8.va"}


def main(argv: list[str]) -> int:
    from va2jax._paths import corpus_dir
    from va2jax.codegen import _generate
    from va2jax.mir import load_modules

    names = argv or list(MODELS)
    print("| model | function | ops before CSE | ops after | replaced | generate (s) |")
    print("|---|---|---|---|---|---|")
    for nm in names:
        path = Path(nm) if nm.endswith(".va") else corpus_dir() / MODELS[nm]
        ir = load_modules(path, [], {})[0]
        t0 = time.perf_counter()
        _generate.generate(ir)
        dt = time.perf_counter() - t0
        for fn, st in _generate.OPT_STATS.items():
            print(f"| {ir.name} | {fn} | {st.ops_before:,} | {st.ops_after:,} "
                  f"({100 * (st.ops_before - st.ops_after) / max(st.ops_before, 1):.1f} % fewer) | "
                  f"{st.replaced:,} | {dt:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
