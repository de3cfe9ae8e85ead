"""Declared value ranges of Verilog-A parameters (``from`` / ``exclude``), read from the source.

openvaf-py exports neither OpenVAF's model-parameter setup (where the bound checks live) nor the
bounds themselves, and an OSDI library does not record them either, so va2jax reads them from the
declarations: ``parameter real IS = 1e-14 from (0:inf) exclude 5;``. The source goes through a
small preprocessor first (`` `include``, `` `define`` with and without arguments, `` `ifdef`` /
`` `ifndef`` / `` `elsif`` / `` `else`` / `` `endif``, `` `undef``), since large models declare
their parameters through macros.

The check (:func:`violations`) follows OpenVAF's semantics: a value must lie in at least one
``from`` range or set when there are any (``[``/``]`` inclusive, ``(``/``)`` exclusive, compared
as IEEE numbers, so NaN lies in no range), and in no ``exclude`` range or value. Bound
expressions may use numbers (with SI scale factors), ``inf``, arithmetic, and other parameters;
a bound this reader cannot evaluate is not checked, nor are string parameters (OpenVAF's own
check of a string set accepts only its first value).
"""
from __future__ import annotations

import ast
import functools
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class Bound:
    """One ``from`` or ``exclude`` clause of a parameter declaration.

    A range has ``lo``/``hi`` expression texts and inclusivity flags; a value (``exclude 0``) or
    a value set (``from '{"a", "b"}``) has ``values``. ``text`` is the clause as written.
    """

    kind: str  # "from" | "exclude"
    text: str
    lo: str | None = None
    hi: str | None = None
    lo_incl: bool = True
    hi_incl: bool = True
    values: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# preprocessor

_COMMENT = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.S)
_DIRECTIVE = re.compile(r"^\s*`(define|undef|ifdef|ifndef|elsif|else|endif|include)\b(.*)$")
_MACRO_USE = re.compile(r"`([A-Za-z_]\w*)")
_MAX_EXPANSIONS = 100_000


def _strip_comments(text: str) -> str:
    """Comments removed (newlines kept); string literals untouched."""
    def repl(m: re.Match) -> str:
        s = m.group(0)
        return s if s.startswith('"') else "\n" * s.count("\n")
    return _COMMENT.sub(repl, text)


def _split_args(text: str, start: int) -> tuple[list[str], int] | None:
    """Arguments of a macro call whose ``(`` is at ``start``; (args, index after ``)``)."""
    depth, i, cur, args, in_str = 0, start, [], [], False
    while i < len(text):
        c = text[i]
        if in_str:
            cur.append(c)
            in_str = c != '"'
        elif c == '"':
            in_str = True
            cur.append(c)
        elif c in "([{":
            depth += 1
            if depth > 1:
                cur.append(c)
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                args.append("".join(cur).strip())
                return args, i + 1
            cur.append(c)
        elif c == "," and depth == 1:
            args.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    return None


#: macros of OpenVAF's built-in ``constants.vams`` (also served as ``constants.h``) that bounds
#: use (values as OpenVAF's MIR has them: ``$vt`` = P_K·T/P_Q with these), defined when that file
#: is not found on disk
_BUILTIN_CONSTANTS = {"P_CELSIUS0": "273.15", "P_K": "1.3806503e-23", "P_Q": "1.602176462e-19",
                      "M_PI": "3.14159265358979323846"}


class _Pre:
    def __init__(self, include_dirs, defines: Mapping[str, Any] | None):
        self.dirs = [Path(d) for d in include_dirs]
        self.macros: dict[str, tuple[list[str] | None, str]] = {
            str(k): (None, str(v)) for k, v in (defines or {}).items()}
        self.budget = _MAX_EXPANSIONS
        self.seen: list[Path] = []

    def expand(self, line: str) -> str:
        for _ in range(64):  # nested macros
            out, pos, changed = [], 0, False
            for m in _MACRO_USE.finditer(line):
                name = m.group(1)
                if name not in self.macros or m.start() < pos:
                    continue
                params, body = self.macros[name]
                self.budget -= 1
                if self.budget < 0:
                    return line
                end = m.end()
                if params is not None:
                    j = end
                    while j < len(line) and line[j] in " \t":
                        j += 1
                    got = _split_args(line, j) if j < len(line) and line[j] == "(" else None
                    if got is None:
                        continue
                    args, end = got
                    subst = {p: (args[k] if k < len(args) else "") for k, p in enumerate(params)}
                    body = re.sub(r"\b[A-Za-z_]\w*\b", lambda t: subst.get(t.group(0), t.group(0)), body)
                out.append(line[pos:m.start()])
                out.append(body)
                pos = end
                changed = True
            if not changed:
                return line
            out.append(line[pos:])
            line = "".join(out)
        return line

    def file(self, path: Path, depth: int = 0) -> list[str]:
        rp = path.resolve()
        if depth > 32 or rp in self.seen:
            return []
        try:
            text = path.read_text(errors="replace")
        except OSError:
            return []
        self.seen.append(rp)
        try:
            return self._text(_strip_comments(text), path, depth)
        finally:
            self.seen.pop()

    def _text(self, text: str, path: Path, depth: int) -> list[str]:
        out: list[str] = []
        lines = text.split("\n")
        active = [True]  # one entry per open `if*: whether its current branch is taken
        taken = [True]  # whether some branch of that `if* was taken
        i = 0
        while i < len(lines):
            line = lines[i]
            while line.endswith("\\") and i + 1 < len(lines):  # continued `define
                line = line[:-1] + "\n" + lines[i + 1]
                i += 1
            i += 1
            m = _DIRECTIVE.match(line)
            on = all(active)
            if not m:
                if on:
                    out.append(self.expand(line))
                continue
            word, rest = m.group(1), m.group(2).strip()
            if word in ("ifdef", "ifndef"):
                name = rest.split()[0] if rest.split() else ""
                cond = (name in self.macros) == (word == "ifdef")
                active.append(cond)
                taken.append(cond)
            elif word == "elsif" and len(active) > 1:
                name = rest.split()[0] if rest.split() else ""
                cond = not taken[-1] and name in self.macros
                active[-1] = cond
                taken[-1] = taken[-1] or cond
            elif word == "else" and len(active) > 1:
                active[-1] = not taken[-1]
                taken[-1] = True
            elif word == "endif" and len(active) > 1:
                active.pop()
                taken.pop()
            elif not on:
                continue
            elif word == "define":
                dm = re.match(r"([A-Za-z_]\w*)(\(([^)]*)\))?\s?(.*)", rest, re.S)
                if dm:
                    params = [p.strip() for p in dm.group(3).split(",")] if dm.group(2) else None
                    self.macros[dm.group(1)] = (params, dm.group(4).replace("\n", " ").strip())
            elif word == "undef":
                self.macros.pop(rest.split()[0] if rest.split() else "", None)
            elif word == "include":
                im = re.match(r'"([^"]+)"', rest)
                if im:
                    for d in [path.parent, *self.dirs]:
                        cand = d / im.group(1)
                        if cand.is_file():
                            out.extend(self.file(cand, depth + 1))
                            break
                    else:
                        if Path(im.group(1)).name in ("constants.vams", "constants.h"):  # built in
                            for k, v in _BUILTIN_CONSTANTS.items():
                                self.macros.setdefault(k, (None, v))
        return out


# ---------------------------------------------------------------------------------------------
# declarations

_KEYWORD = re.compile(r"\b(from|exclude)\b")
_MODULE = re.compile(r"\b(?:module|macromodule)\s+(\\\S+|[A-Za-z_][\w$]*)(.*?)\bendmodule\b", re.S)
_PARAM = re.compile(r"\bparameter\b(.*?);", re.S)
_ATTR = re.compile(r"\(\*.*?\*\)", re.S)


def _top_level_split(text: str, sep: str) -> list[str]:
    parts, cur, depth, in_str = [], [], 0, False
    for c in text:
        if in_str:
            in_str = c != '"'
        elif c == '"':
            in_str = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(c)
    parts.append("".join(cur))
    return parts


def _clause(kind: str, text: str) -> Bound | None:
    t = text.strip()
    if not t:
        return None
    if t.startswith("'{") and t.endswith("}"):
        return Bound(kind, f"{kind} {t}", values=tuple(v.strip() for v in _top_level_split(t[2:-1], ",")))
    if t[0] in "[(" and t[-1] in "])":
        parts = _top_level_split(t[1:-1], ":")
        if len(parts) == 2:
            return Bound(kind, f"{kind} {t}", lo=parts[0].strip(), hi=parts[1].strip(),
                         lo_incl=t[0] == "[", hi_incl=t[-1] == "]")
        return None
    return Bound(kind, f"{kind} {t}", values=(t,))


def _declarations(body: str) -> dict[str, tuple[str, tuple[Bound, ...]]]:
    """Parameter name (lower case) → (default expression text, its clauses), in source order."""
    out: dict[str, tuple[str, tuple[Bound, ...]]] = {}
    for pm in _PARAM.finditer(_ATTR.sub(" ", body)):
        decl = pm.group(1)
        decl = re.sub(r"^\s*(real|integer|string)\b", "", decl)
        decl = re.sub(r"^\s*\[[^\]]*\]", "", decl)  # a range on the type (arrays: skipped below)
        for item in _top_level_split(decl, ","):
            im = re.match(r"\s*([A-Za-z_][\w$]*)\s*=(.*)$", item, re.S)
            if not im:
                continue  # array parameters, or something this reader does not know
            rest = im.group(2)
            cuts = [(m.start(), m.group(1)) for m in _KEYWORD.finditer(rest)
                    if _depth_at(rest, m.start()) == 0]
            bounds = []
            for k, (pos, kind) in enumerate(cuts):
                end = cuts[k + 1][0] if k + 1 < len(cuts) else len(rest)
                b = _clause(kind, rest[pos + len(kind):end])
                if b is not None:
                    bounds.append(b)
            out[im.group(1).lower()] = (rest[:cuts[0][0]] if cuts else rest).strip(), tuple(bounds)
    return out


def _depth_at(text: str, pos: int) -> int:
    depth, in_str = 0, False
    for c in text[:pos]:
        if in_str:
            in_str = c != '"'
        elif c == '"':
            in_str = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
    return depth if not in_str else -1


def read_bounds(path: str | Path, include_dirs=(), defines: Mapping[str, Any] | None = None
                ) -> dict[str, dict[str, tuple[str, tuple[Bound, ...]]]]:
    """Module name (lower case) → parameter name (lower case) → (default expression text, its
    ``from``/``exclude`` clauses), parameters in source order."""
    text = "\n".join(_Pre(include_dirs, defines).file(Path(path)))
    mods: dict[str, dict[str, tuple[str, tuple[Bound, ...]]]] = {}
    for mm in _MODULE.finditer(text):
        name = mm.group(1)
        name = name[1:] if name.startswith("\\") else name
        mods[name.lower()] = _declarations(mm.group(2))
    return mods


# ---------------------------------------------------------------------------------------------
# evaluation and the check

_SCALE = {"T": 1e12, "G": 1e9, "M": 1e6, "K": 1e3, "k": 1e3, "m": 1e-3, "u": 1e-6, "n": 1e-9,
          "p": 1e-12, "f": 1e-15, "a": 1e-18}
_NUM = re.compile(r"(?<![\w.])(\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)([TGMKkmunpfa])?(?![\w.])")
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_FUNCS = {"abs": abs, "min": min, "max": max, "exp": math.exp, "ln": math.log, "log": math.log10,
          "sqrt": math.sqrt, "pow": math.pow}


@functools.lru_cache(maxsize=65536)
def _parse(expr: str) -> ast.Expression | None:
    text = _NUM.sub(lambda m: repr(float(m.group(1)) * _SCALE.get(m.group(2) or "", 1.0)), expr.strip())
    try:
        return ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError):
        return None


def evaluate(expr: str, names: Mapping[str, Any]) -> Any:
    """Value of a bound expression (numbers, ``inf``, + − × ÷ ``**``, a few functions, parameter
    names from ``names``, string literals); ``None`` when it uses anything else. Never runs code:
    the expression is parsed by :mod:`ast` and only those node kinds are interpreted."""
    tree = _parse(expr)
    if tree is None:
        return None

    def ev(node: ast.AST) -> Any:
        if isinstance(node, ast.Expression):
            return ev(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id.lower() == "inf":
                return math.inf
            if node.id.lower() in names:
                return names[node.id.lower()]
            raise LookupError(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            v = ev(node.operand)
            return -v if isinstance(node.op, ast.USub) else +v
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](ev(node.left), ev(node.right))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id.lower() in _FUNCS and not node.keywords):
            return _FUNCS[node.func.id.lower()](*[ev(a) for a in node.args])
        raise LookupError(type(node).__name__)

    try:
        return ev(tree)
    except (LookupError, ArithmeticError, TypeError, ValueError):
        return None


def violations(value: np.ndarray, bounds: tuple[Bound, ...], names: Mapping[str, Any]
               ) -> tuple[np.ndarray, str]:
    """(mask of entries of ``value`` outside the declared bounds, the bounds as written)."""
    v = np.asarray(value)
    text = " ".join(b.text for b in bounds)
    is_str = v.dtype.kind in "US"

    def inside(b: Bound) -> np.ndarray | None:
        if is_str:
            # OpenVAF's compiled check of a string set refuses every value but the first (openvaf-r
            # 23.5, measured: from '{"fast", "slow"} refuses "slow"): not mirrored, not checked
            return None
        if b.values:
            vals = [evaluate(x, names) for x in b.values]
            if any(x is None for x in vals):
                return None
            hit = np.zeros(v.shape, bool)
            for x in vals:
                if isinstance(x, str) != is_str:
                    return None
                hit = hit | (v == x)  # x may be per instance (another parameter)
            return hit
        if is_str:
            return None
        lo, hi = evaluate(b.lo or "", names), evaluate(b.hi or "", names)
        if not all(isinstance(x, (int, float, np.ndarray, np.number)) and not isinstance(x, bool)
                   and np.asarray(x).dtype.kind in "iuf" for x in (lo, hi)):
            return None
        with np.errstate(invalid="ignore"):
            ok_lo = (lo <= v) if b.lo_incl else (lo < v)
            ok_hi = (v <= hi) if b.hi_incl else (v < hi)
        return ok_lo & ok_hi

    bad = np.zeros(v.shape, bool)
    froms = [inside(b) for b in bounds if b.kind == "from"]
    if froms and all(f is not None for f in froms):
        ok = np.zeros(v.shape, bool)
        for f in froms:
            ok = ok | f  # bounds naming per-instance parameters broadcast
        bad = bad | ~ok
    for b in bounds:
        if b.kind == "exclude":
            f = inside(b)
            if f is not None:
                bad = bad | f
    return bad, text
