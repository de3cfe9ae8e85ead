"""``va2jax compile FILE.va -o DIR``: write the generated Python/JAX module."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import Va2JaxError


def _run(args: argparse.Namespace) -> int:
    from .._cli_common import parse_kv
    from .._paths import path_inside, safe_stem
    from ._code_cache import atomic_write
    from ._compile import compile_va

    model = compile_va(args.file, args.module, include_dirs=args.include, defines=parse_kv(args.define))
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise Va2JaxError(f"{out}: exists and is not a directory")
    if not out.exists():
        raise Va2JaxError(f"{out}: output directory does not exist")
    # the module name comes from the source: only a sanitised form of it names the file
    target = path_inside(out, f"{safe_stem(model.name)}.py")
    atomic_write(target, model.source.encode(), user_file=True)
    print(f"{target}  ({model.source.count(chr(10))} lines; nodes: {', '.join(model.nodes)})")
    if args.native:
        from .native._kernel import write_artifact

        for f in write_artifact(model, out):
            print(f)
    return 0


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile a Verilog-A module to a Python/JAX module")
    p.add_argument("file", help="Verilog-A source")
    p.add_argument("-o", "--output", default=".", help="output directory (default: .)")
    p.add_argument("--module", help="module name (default: the first)")
    p.add_argument("-I", dest="include", action="append", default=[], help="include directory")
    p.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                   help="define a macro (`define NAME VALUE)")
    p.add_argument("--native", action="store_true",
                   help="also write the native CPU kernel (MODULE.native.o, with its layout in MODULE.native.json)")
    p.set_defaults(func=_run)
