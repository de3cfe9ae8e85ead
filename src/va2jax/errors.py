"""Errors that va2jax reports to users as one line (the CLI prints them without a traceback)."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class Va2JaxError(Exception):
    """A user-facing error: bad input, a missing file, an unsupported construct.

    The message is a single line naming the file/line/parameter concerned. The CLI prints it as
    ``va2jax: error: <message>`` and exits with status 2.
    """


class CacheWarning(UserWarning):
    """A cache could not be used (va2jax then runs without it), or a damaged or changed cache
    entry was found and rebuilt. Results are unaffected; only speed is."""


def suggest(name: str, candidates: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean: a, b?)"`` with the nearest candidate names, or ``""``."""
    cands = [c for c in candidates if c.lower() != name.lower()]  # never suggest the name itself
    low = {c.lower(): c for c in cands}
    close = difflib.get_close_matches(name.lower(), list(low), n=n, cutoff=0.5)
    if not close:
        return ""
    return " (did you mean: " + ", ".join(low[c] for c in close) + "?)"
