"""Value-preserving optimisation of emitted statements: common-subexpression elimination.

Works on the straight-line :class:`~._emit.Stmt` list of one function after dead-code elimination.
Every top-level statement runs unconditionally (control flow is already data flow), so a
statement whose right-hand side is *textually* the same as an earlier one's — after replacing each
name by its representative (copies ``v = w`` and equal literal constants resolve to one name) —
computes the same bits: all emitted operations are deterministic functions of their operands.
The later statement becomes a copy ``v = first`` (no operation when traced), and the names it
read may then die (a second :func:`~._emit.eliminate_dead` pass removes them).

No algebraic rewriting is done (no reassociation, no ``x * 1``/``x + 0`` folding): results stay
bit-identical to the unoptimised code, hence to OpenVAF's.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ._emit import Stmt

_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*) = (.*)$", re.S)
_NAME = re.compile(r"(?<![.'\"\w])([A-Za-z_][A-Za-z_0-9]*)(?![\w'\"(])")
#: a Python string literal as ``ascii()`` writes it (the only strings in emitted statements)
_STRING = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


@dataclass
class CseStats:
    """Counts of one :func:`cse` run: operations (non-copy, non-constant statements) before and
    after, and the number of statements turned into copies."""

    ops_before: int = 0
    ops_after: int = 0
    replaced: int = 0


def _rhs_key(rhs: str) -> str | None:
    """The expression without a trailing ``  # comment``; ``None`` when it cannot be split safely."""
    if "#" not in rhs:
        return rhs.strip()
    head, _sep, _tail = rhs.partition("  #")
    if "#" in head or head.count("'") % 2 or head.count('"') % 2:
        return None
    return head.strip()


def _is_copy(rhs: str) -> bool:
    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z_0-9]*", rhs))


def count_ops(stmts: list[Stmt]) -> int:
    """Statements that trace to at least one operation: not copies, constants or input reads."""
    n = 0
    for st in stmts:
        if st.body is not None:
            n += 1 + count_ops(st.body)
            continue
        if st.remat or not st.defs:
            continue
        m = _ASSIGN.match(st.text)
        if m is not None and _is_copy((_rhs_key(m.group(2)) or "")):
            continue
        n += 1
    return n


def cse(stmts: list[Stmt], stats: CseStats | None = None) -> list[Stmt]:
    """Common-subexpression elimination over top-level statements (loop bodies untouched).

    Returns a new list, same length and order; duplicates become copies of their first
    occurrence. Names assigned more than once (state chains) are left alone. ``stats`` (optional)
    receives the operation counts.
    """
    counts: dict[str, int] = {}
    for st in stmts:
        for d in st.defs:
            counts[d] = counts.get(d, 0) + 1
    multi = {d for d, c in counts.items() if c > 1}  # re-assigned chains ($limit states, hints)
    rep: dict[str, str] = {}  # name -> representative name
    first: dict[str, str] = {}  # canonical right-hand side -> name defining it first
    out: list[Stmt] = []
    replaced = 0

    def canon(expr: str) -> str:
        # names outside string literals only: a literal's text (a Verilog-A string) is data
        parts = _STRING.split(expr)
        for k in range(0, len(parts), 2):
            parts[k] = _NAME.sub(lambda m: rep.get(m.group(1), m.group(1)), parts[k])
        return "".join(parts)

    for st in stmts:
        if st.body is not None or st.keep or len(st.defs) != 1 or "\n" in st.text:
            out.append(st)
            continue
        m = _ASSIGN.match(st.text)
        if m is None or m.group(1) != st.defs[0]:
            out.append(st)
            continue
        name, rhs = m.group(1), _rhs_key(m.group(2))
        if rhs is None or name in multi or any(n in multi for n in _NAME.findall(rhs)):
            out.append(st)
            continue
        if _is_copy(rhs):
            rep[name] = rep.get(rhs, rhs)
            out.append(st)
            continue
        key = canon(rhs)
        prev = first.get(key)
        if prev is None:
            first[key] = name
            out.append(st)
        elif st.remat:
            rep[name] = prev  # an equal constant or the same input: keep it (re-emitted per part)
            out.append(st)
        else:
            rep[name] = prev
            out.append(Stmt((name,), (prev,), f"{name} = {prev}  # = {prev} (common subexpression)"))
            replaced += 1
    if stats is not None:
        stats.ops_before = count_ops(stmts)
        stats.ops_after = count_ops(out)
        stats.replaced = replaced
    return out
