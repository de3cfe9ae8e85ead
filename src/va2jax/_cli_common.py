"""Helpers shared by the command-line front ends of several packages (no package imports)."""
from __future__ import annotations

from .errors import Va2JaxError


def parse_kv(items: list[str] | None, option: str = "--param") -> dict[str, object]:
    """``["NAME=VALUE", ...]`` → ``{NAME: VALUE}``; a value is an ``int`` where it is written as
    one, else a ``float`` where it parses as one, else the string."""
    out: dict[str, object] = {}
    for it in items or []:
        if "=" not in it:
            raise Va2JaxError(f"{option} {it!r}: expected NAME=VALUE")
        k, v = it.split("=", 1)
        try:
            out[k.strip()] = int(v) if v.strip().lstrip("+-").isdigit() else float(v)
        except ValueError:
            out[k.strip()] = v
    return out
