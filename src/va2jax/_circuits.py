"""Netlists shared by the demo, the examples and the tests, each kept in one file.

``data/circuits/<name>.sim`` is installed with the package (the demo runs from an installed
package); ``examples/circuits/graetz.sim`` is a link to ``data/circuits/graetz.sim``. A user that
needs a variant (another capacitor, a dc source, its own analyses) derives it with
:func:`variant`, which names every change and refuses one whose original text is not in the file
exactly once — so an edit of the shared file cannot leave a variant silently unchanged.
"""
from __future__ import annotations

from collections.abc import Mapping

from ._paths import data_dir


def circuit_text(name: str) -> str:
    """The text of the shared netlist ``data/circuits/<name>.sim``."""
    return (data_dir() / "circuits" / f"{name}.sim").read_text()


def variant(text: str, replace: Mapping[str, str] | None = None, control: str | None = None) -> str:
    """``text`` with each ``old → new`` of ``replace`` applied (every ``old`` must occur exactly
    once) and, when ``control`` is given, its ``control … endc`` block replaced by ``control``
    (``""``: dropped; the block must be the netlist's last lines)."""
    for old, new in (replace or {}).items():
        n = text.count(old)
        if n != 1:
            raise ValueError(f"netlist variant: {old!r} occurs {n} times (expected once)")
        text = text.replace(old, new)
    if control is not None:
        start = text.find("\ncontrol\n")
        if start < 0 or text.rstrip().splitlines()[-1].strip() != "endc":
            raise ValueError("netlist variant: no control block at the end of the netlist")
        text = text[:start + 1] + control
    return text
