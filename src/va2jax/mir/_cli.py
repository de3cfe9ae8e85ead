"""``va2jax mir FILE.va [--init] [--module NAME]``: print the typed IR."""
from __future__ import annotations

import argparse

from ..errors import Va2JaxError, suggest


def _run(args: argparse.Namespace) -> int:
    from . import dump_module, load_modules

    mods = load_modules(args.file)
    if args.module:
        sel = [m for m in mods if args.module.lower() in (m.name.lower(), (m.osdi_name or m.name).lower())]
        if not sel:
            raise Va2JaxError(f"{args.file}: no module {args.module!r}" + suggest(args.module, [m.name for m in mods]))
        mods = sel
    for m in mods:
        print(dump_module(m, init=args.init))
    return 0


def register(sub) -> None:
    p = sub.add_parser("mir", help="print OpenVAF's MIR of a Verilog-A file as va2jax's typed IR")
    p.add_argument("file", help="Verilog-A source")
    p.add_argument("--init", action="store_true", help="print the init (setup) function instead of eval")
    p.add_argument("--module", help="module name (default: all)")
    p.set_defaults(func=_run)
