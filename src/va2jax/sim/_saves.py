"""VACASK's ``save`` directives: which vectors an analysis writes, and in which order.

``save`` lines accumulate; an analysis writes what the ``save`` lines read before it ask for
(VACASK ``lib/an.cpp``, ``lib/core.cpp``), duplicates dropped, first occurrence kept:

=====================  =====================================================================
``default``            every unknown, sorted by name (what an analysis writes without saves)
``full``               every non-ground node sorted by name, collapsed nodes included (they
                       carry the value of the unknown they merged into; 0 V for ground)
``v(n)``               node ``n`` (op, swept op, tran, hb)
``i(inst)``            the branch current ``inst:flow(br)`` (op, swept op, tran, hb)
``p(inst, var)``       the operating-point variable ``var`` of ``inst``, vector ``inst.var``
                       (op, swept op, tran)
``dv(n)``, ``di(i)``   as ``v``/``i``, for ``ac``
``tf(s)``, ``zin(s)``  the transfer function, input impedance and admittance of source ``s``
``yin(s)``             (``dcxf``, ``acxf``; chosen by :func:`va2jax.sim._xf.xf_outputs`)
=====================  =====================================================================

A directive the analysis does not take (``v`` in ``ac``, ``dv`` in ``op``, a bare word) is
skipped, as VACASK skips it; an analysis left with no directive writes ``default``.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, replace

import numpy as np

from .netlist import Loc, NetlistError
from .results import Result

#: directive → number of arguments
_ARGS = {"default": 0, "full": 0, "v": 1, "i": 1, "p": 2, "dv": 1, "di": 1,
         "tf": 1, "zin": 1, "yin": 1}
#: analysis kind → directives it takes (others are skipped)
_TAKES = {"op": {"default", "full", "v", "i", "p"}, "dc": {"default", "full", "v", "i", "p"},
          "tran": {"default", "full", "v", "i", "p"}, "ac": {"default", "full", "dv", "di"},
          "hb": {"default", "full", "v", "i"}}  # hb: VACASK's lib/anhb.cpp


@dataclass(frozen=True)
class Save:
    """One directive: ``kind`` (lower case) and its arguments (names, quotes removed)."""

    kind: str
    args: tuple[str, ...]
    loc: Loc


_ITEM = re.compile(r'\s*([A-Za-z_$][\w$]*)\s*(\(\s*([^()]*)\))?')


def parse_saves(text: str, loc: Loc) -> list[Save]:
    """``default p(d1, gd) i(v1) v("b")`` (optionally wrapped in one pair of parentheses) →
    directives. Wrong argument counts are errors (VACASK's); unknown directive names warn."""
    s = text.strip()
    if s.startswith("(") and s.endswith(")") and not _ITEM.fullmatch(s):
        s = s[1:-1]
    out: list[Save] = []
    pos = 0
    while pos < len(s):
        if not s[pos:].strip():
            break
        m = _ITEM.match(s, pos)
        if not m:
            raise NetlistError(loc, f"save: cannot read {s[pos:].split()[0]!r} (expected "
                                    "default, full, v(node), i(instance), p(instance, opvar))")
        pos = m.end()
        kind = m.group(1)  # case-sensitive, as VACASK's (``V(a)`` is no directive there)
        args = tuple(a.strip().strip('"') for a in m.group(3).split(",")) if m.group(2) else ()
        if any(not a for a in args) or len(args) > 2:
            raise NetlistError(loc, f"save {m.group(0).strip()}: expected one or two names "
                                    "separated by a comma")
        if kind not in _ARGS:
            warnings.warn(f"{loc}: save {m.group(0).strip()}: not a save directive (default, full, "
                          "v, i, p, dv, di, tf, zin, yin); skipped, as VACASK skips it", stacklevel=2)
            continue
        if kind == "p" and len(args) == 2 and args[1] != args[1].lower():
            # VACASK lowercases a module's operating-point variables ("Output variable 'GD' of
            # instance 'd1' not found")
            raise NetlistError(loc, f"save {m.group(0).strip()}: no operating-point variable "
                                    f"{args[1]!r} (VACASK's names are lower case: {args[1].lower()!r})")
        if len(args) != _ARGS[kind]:
            raise NetlistError(loc, f"save {m.group(0).strip()}: {kind} takes {_ARGS[kind]} "
                                    f"argument{'s' if _ARGS[kind] != 1 else ''}")
        out.append(Save(kind, args, loc))
    return out


def select(res: Result, saves: tuple[Save, ...], aliases: dict[str, int], opvar=None) -> Result:
    """``res`` with the vectors ``saves`` ask for (its leading sweep/scale columns kept).

    ``aliases``: collapsed node name → index of its unknown (``-1``: ground).
    ``opvar(inst, name, X)``: values of an operating-point variable for the unknowns' rows ``X``
    (points × unknowns), or ``None`` if the analysis has no such function."""
    kind = "dc" if res.kind == "dc" else res.kind
    take = [s for s in saves if s.kind in _TAKES.get(kind, ())]
    if not take:
        return res
    lead = res.lead
    unk = list(res.names[lead:])
    X = res.data[:, lead:]
    index = {n: i for i, n in enumerate(unk)}
    names: list[str] = []
    cols: list[np.ndarray] = []
    zero = np.zeros(X.shape[0], dtype=X.dtype)

    def add(name: str, col: np.ndarray) -> None:
        if name not in names:
            names.append(name)
            cols.append(col)

    def node(name: str, s: Save) -> np.ndarray:
        if name in index:
            return X[:, index[name]]
        if name in aliases:
            return zero if aliases[name] < 0 else X[:, aliases[name]]
        raise NetlistError(s.loc, f"save {s.kind}({', '.join(s.args)}): the circuit has no "
                                  f"{'node' if s.kind in ('v', 'dv') else 'unknown'} {name!r}")

    for s in take:
        if s.kind == "default":
            for n in sorted(unk, key=str.encode):
                add(n, X[:, index[n]])
        elif s.kind == "full":
            for n in sorted(set(unk) | set(aliases), key=str.encode):
                add(n, node(n, s))
        elif s.kind in ("v", "dv"):
            add(s.args[0], node(s.args[0], s))
        elif s.kind in ("i", "di"):
            add(f"{s.args[0]}:flow(br)", node(f"{s.args[0]}:flow(br)", s))
        else:  # p
            name = f"{s.args[0]}.{s.args[1]}"
            if name in names:
                continue
            if opvar is None:
                raise NetlistError(s.loc, f"save p({', '.join(s.args)}): operating-point "
                                          f"variables are not available in analysis {res.name}")
            add(name, np.asarray(opvar(s.args[0], s.args[1], s.loc, np.real(X)), float))
    data = np.column_stack([res.data[:, :lead]] + [np.asarray(c) for c in cols]) if cols \
        else res.data[:, :lead]
    return replace(res, names=list(res.names[:lead]) + names, data=data, ordered=True)
