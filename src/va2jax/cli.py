"""The ``va2jax`` command line.

Each stage registers its own sub-commands (``register(subparsers)`` in its ``_cli`` module). User
mistakes raise :class:`va2jax.errors.Va2JaxError`, printed here as one line with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings

from . import _config
from .errors import Va2JaxError

#: Modules that contribute sub-commands, in the order they are listed in ``--help``.
_COMMAND_MODULES = [
    "va2jax.osdi._cli",
    "va2jax.mir._cli",
    "va2jax.codegen._cli",
    "va2jax.validate._cli",
    "va2jax._demo",
    "va2jax.sim._cli",
    "va2jax.sim.distributed",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="va2jax",
        description="Verilog-A compact models to JAX, checked against OSDI; circuit simulation.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in _COMMAND_MODULES:
        importlib.import_module(modname).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        _config.check_all()  # a bad VA2JAX_* value stops here, before any package reads it
    except Va2JaxError as exc:
        print(f"va2jax: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # warnings meant for the user (cache fallbacks, rebuilt entries) as one line each
    warnings.formatwarning = _one_line_warning
    try:
        rc = args.func(args)
    except Va2JaxError as exc:
        print(f"va2jax: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output or cache path that cannot be written or read
        where = exc.filename if exc.filename is not None else ""
        what = exc.strerror or str(exc).splitlines()[0]
        print(f"va2jax: error: {where}{': ' if where else ''}{what}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("va2jax: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"va2jax: warning: {message}\n"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
