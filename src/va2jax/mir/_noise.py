"""Noise sources of a Verilog-A module made observable: a *noise variant* of the source.

openvaf-py 0.1.5 exports OpenVAF's eval function with the noise powers among its unlabelled
outputs (the ``white_noise``/``flicker_noise`` calls themselves are gone from the MIR), so the
generated code cannot tell which output is which source's power. This module writes a copy of
the source in which every noise contribution

    I(a, b) <+ white_noise(P, "name");

becomes

    begin I(a, b) <+ white_noise(P, "name"); I(__va2jax_nz3) <+ (P); end

with ``electrical __va2jax_nz3;`` declared before ``endmodule``: the resistive KCL residual of
the new internal node is ``$mfactor · P``, evaluated by OpenVAF's own front end at the same place
in the control flow (0 where the contribution is not reached, as OSDI's noise power), and labelled
by the node's name. A flicker source gets a second node ``__va2jax_nz3e`` for its exponent.
The variant is compiled like any model; :mod:`va2jax.codegen._noise` reads these residuals.

Only what OpenVAF turns into a noise source with a plain factor is rewritten: a noise call that
is a ``+``/``-`` term of a contribution's right-hand side (factor ±1, times √$mfactor for a
current contribution, 1/√$mfactor for a voltage one, as OSDI's ``load_noise`` applies it). A call
inside a macro body (one site, several expansions), scaled by an expression, or a ``noise_table``
is recorded as unsupported and named in the error when its density is asked for.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import Va2JaxError

NODE_PREFIX = "__va2jax_nz"

_CALL = re.compile(r"\b(white_noise|flicker_noise|noise_table)\s*\(")
_INCLUDE = re.compile(r'`include\s+"([^"]+)"')
_ENDMODULE = re.compile(r"\bendmodule\b")


@dataclass(frozen=True)
class NoiseSite:
    """One noise call in the source.

    ``kind``: ``white``/``flicker``/``table``; ``name``: the string literal naming it (``None``
    when it is an expression, e.g. a macro argument); ``access``: ``I`` or ``V`` (the LHS access
    function); ``lhs``: the access arguments (node or branch names, lower case); ``node``: the
    variant's node holding the power (``None``: not rewritten, see ``why``).
    """

    kind: str
    name: str | None
    access: str
    lhs: tuple[str, ...]
    file: str
    line: int
    node: str | None
    why: str = ""


def _blank_comments(text: str) -> str:
    """``text`` with comments (and string contents) replaced by spaces, offsets kept."""
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "/" and i + 1 < n and text[i + 1] == "/":
            j = text.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif c == "/" and i + 1 < n and text[i + 1] == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                out[k] = "_"  # keep a placeholder so a string argument stays non-empty
            i = j + 1
        else:
            i += 1
    return "".join(out)


def _match_paren(s: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(s)):
        if s[k] == "(":
            depth += 1
        elif s[k] == ")":
            depth -= 1
            if depth == 0:
                return k
    return -1


def _split_args(s: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Top-level comma-separated spans of ``s[lo:hi]``."""
    spans, depth, start = [], 0, lo
    for k in range(lo, hi):
        c = s[k]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            spans.append((start, k))
            start = k + 1
    spans.append((start, hi))
    return spans


def _in_macro(text: str, pos: int) -> bool:
    """Whether ``pos`` lies in a `` `define`` body (its line or a previous one continues with ``\\``)."""
    line_start = text.rfind("\n", 0, pos) + 1
    k = line_start
    while True:
        line = text[k:text.find("\n", k) if text.find("\n", k) >= 0 else len(text)]
        if re.match(r"\s*`define\b", line):
            return True
        if k == 0:
            return False
        prev_start = text.rfind("\n", 0, k - 1) + 1
        prev = text[prev_start:k - 1]
        if not prev.rstrip().endswith("\\"):
            return False
        k = prev_start


def _rewrite_text(text: str, fname: str, counter: list[int]) -> tuple[str, list[NoiseSite]]:
    """Rewrite the noise contributions of one file; ``counter`` numbers the new nodes."""
    s = _blank_comments(text)
    sites: list[NoiseSite] = []
    groups: dict[tuple[int, int], list[str]] = {}  # (LHS start, statement end) -> extra contributions
    for m in _CALL.finditer(s):
        kind = {"white_noise": "white", "flicker_noise": "flicker", "noise_table": "table"}[m.group(1)]
        line = s.count("\n", 0, m.start()) + 1
        op = m.end() - 1
        cl = _match_paren(s, op)
        if cl < 0:
            continue
        args = _split_args(s, op + 1, cl)
        lit = re.fullmatch(r'\s*"([^"]*)"\s*', text[args[-1][0]:args[-1][1]]) if len(args) >= 2 else None
        name = lit.group(1) if lit else None
        contrib = s.rfind("<+", 0, m.start())
        semi_before = s.rfind(";", 0, m.start())
        access, lhs, why = "", (), ""
        lhs_start = -1
        if contrib < 0 or semi_before > contrib:
            why = "not in a contribution statement"
        else:
            k = contrib - 1
            while k >= 0 and s[k].isspace():
                k -= 1
            depth, j = 0, k
            while j >= 0:
                if s[j] == ")":
                    depth += 1
                elif s[j] == "(":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            am = re.search(r"(\w+)\s*$", s[:j]) if j >= 0 and s[k] == ")" else None
            if am is None:
                why = "contribution target not understood"
            else:
                access = am.group(1)
                lhs_start = am.start(1)
                lhs = tuple(a.strip().lower() for a in s[j + 1:k].split(","))
        end = -1
        if not why:
            depth = 0
            for k in range(cl + 1, len(s)):
                if s[k] in "([":
                    depth += 1
                elif s[k] in ")]":
                    depth -= 1
                elif s[k] == ";" and depth == 0:
                    end = k
                    break
            before = s[contrib + 2:m.start()].rstrip()
            after = s[cl + 1:end if end >= 0 else len(s)].lstrip()
            # a top-level +/- term: nothing but a sign before it at depth 0, a sign or ; after it
            if end < 0:
                why = "no end of statement"
            elif kind == "table":
                why = "noise_table is not supported"
            elif _in_macro(text, m.start()):
                why = "inside a macro body (one call site, several expansions)"
            elif access.upper() not in ("I", "V"):
                why = f"contribution to {access}(...) (only I and V are supported)"
            elif not _plain_term(before, after):
                why = "the noise call is scaled or nested in an expression"
        node = None
        if not why:
            node = f"{NODE_PREFIX}{counter[0]}"
            counter[0] += 1
            pwr = s[args[0][0]:args[0][1]].strip()
            extra = [f"I({node}) <+ ({pwr});"]
            if kind == "flicker":
                expo = s[args[1][0]:args[1][1]].strip()
                extra.append(f"I({node}e) <+ ({expo});")
            groups.setdefault((lhs_start, end), []).extend(extra)
        sites.append(NoiseSite(kind, name, access.upper(), lhs, fname, line, node, why))
    out = text
    for (lo, hi), extra in sorted(groups.items(), reverse=True):
        out = out[:lo] + "begin " + out[lo:hi + 1] + " " + " ".join(extra) + " end" + out[hi + 1:]
    return out, sites


def _depth(s: str) -> int:
    return s.count("(") - s.count(")")


def _plain_term(before: str, after: str) -> bool:
    """Whether a call with ``before``/``after`` it in the right-hand side is a top-level ``+``/``-``
    term (factor ±1 in OpenVAF's linearisation)."""
    if after and after[0] not in "+-":
        return False
    if not before:
        return True
    if before[-1] not in "+-" or _depth(before) != 0:
        return False
    prev = before[:-1].rstrip()
    return prev == "" or prev[-1] not in "*/^?:(,<>=!&|+-"


def _includes(path: Path, dirs: list[Path], seen: list[Path]) -> None:
    if path in seen or not path.is_file():
        return
    seen.append(path)
    text = path.read_text(errors="replace")
    for m in _INCLUDE.finditer(_blank_comments_keep_strings(text)):
        for d in [path.parent, *dirs]:
            q = (d / m.group(1)).resolve()
            if q.is_file():
                _includes(q, dirs, seen)
                break


def _blank_comments_keep_strings(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", lambda m: " " * len(m.group(0)), text)


_DEFINE = re.compile(r"^[ \t]*`define[ \t]+(\w+)\(([^)]*)\)[ \t]*(.*)$", re.M)


def _noise_macros(texts: list[str]) -> dict[str, tuple[list[str], str]]:
    """Function-like macros whose body holds a noise call: name → (parameters, body on one line).

    Their call sites are expanded before rewriting (a noise call in a macro body is one site of
    several noise sources, one per expansion)."""
    out: dict[str, tuple[list[str], str]] = {}
    for text in texts:
        s = _blank_comments_keep_strings(text)
        for m in _DEFINE.finditer(s):
            body_lines = [m.group(3)]
            end = m.end()
            while body_lines[-1].rstrip().endswith("\\"):
                body_lines[-1] = body_lines[-1].rstrip()[:-1]
                nxt = s.find("\n", end + 1)
                nxt = len(s) if nxt < 0 else nxt
                body_lines.append(s[end + 1:nxt])
                end = nxt
            body = " ".join(x.strip() for x in body_lines)
            if _CALL.search(body):
                out[m.group(1)] = ([a.strip() for a in m.group(2).split(",")], body)
    return out


def _expand_macros(text: str, macros: dict[str, tuple[list[str], str]]) -> str:
    """``text`` with the call sites of ``macros`` expanded in place (on one line each)."""
    if not macros:
        return text
    s = _blank_comments(text)
    pat = re.compile(r"`(" + "|".join(re.escape(k) for k in macros) + r")\s*\(")
    edits = []
    for m in pat.finditer(s):
        if _in_macro(text, m.start()) or re.match(r"\s*`define", text[text.rfind("\n", 0, m.start()) + 1:]):
            continue
        params, body = macros[m.group(1)]
        cl = _match_paren(s, m.end() - 1)
        if cl < 0:
            continue
        args = [text[a:b].strip() for a, b in _split_args(s, m.end(), cl)]
        if len(args) != len(params):
            continue
        sub = dict(zip(params, args))
        exp = re.sub(r"\b(" + "|".join(re.escape(p) for p in params) + r")\b",
                     lambda mm: sub[mm.group(1)], body) if params else body
        edits.append((m.start(), cl + 1, exp))
    for lo, hi, exp in reversed(edits):
        text = text[:lo] + exp + text[hi:]
    return text


def noise_variant(path: str | os.PathLike[str], folder: Path, include_dirs=()) -> tuple[Path, list[NoiseSite]]:
    """Write the noise variant of ``path`` under ``folder`` (its own sub-folder keyed by content);
    returns the variant's main file and the noise call sites in include order.

    The sub-folder links every file of the source's folder and of ``include_dirs`` (first one
    wins) and holds rewritten copies of the files with noise calls, so `` `include`` resolves as
    for the original. Files outside these folders are used unchanged.
    """
    p = Path(path).resolve()
    dirs = [Path(d).resolve() for d in include_dirs]
    files: list[Path] = []
    _includes(p, dirs, files)
    counter = [0]
    rewritten: dict[str, str] = {}
    sites: list[NoiseSite] = []
    texts = {f: f.read_text(errors="replace") for f in files}
    macros = _noise_macros(list(texts.values()))
    for f in files:
        text = texts[f]
        if macros and re.search(r"`(" + "|".join(map(re.escape, macros)) + r")\b", text):
            text = _expand_macros(text, macros)
        if not _CALL.search(text):
            continue
        new, ss = _rewrite_text(text, f.name, counter)
        sites.extend(ss)
        if new != texts[f]:
            if f.parent not in [p.parent, *dirs]:
                sites = [x if x.file != f.name else NoiseSite(x.kind, x.name, x.access, x.lhs, x.file, x.line,
                                                              None, "include file outside the source's folders")
                         for x in sites]
                continue
            rewritten[f.name] = new
    # OpenVAF names a noise call without a name "unnamed1", "unnamed2", ... in source order
    k = 0
    for i, x in enumerate(sites):
        if x.name is None and not x.why.startswith("inside a macro body"):
            k += 1
            sites[i] = dataclasses.replace(x, name=f"unnamed{k}")
    n = counter[0]
    used = {x.node for x in sites if x.node}
    decl = []
    for x in sites:
        if x.node in used and x.node:
            decl.append(x.node)
            if x.kind == "flicker":
                decl.append(x.node + "e")
    main = rewritten.get(p.name, p.read_text(errors="replace"))
    if decl:
        if not _ENDMODULE.search(_blank_comments(main)):
            raise Va2JaxError(f"{p}: no endmodule in the main file; cannot add the noise probes")
        decl_text = f"electrical {', '.join(decl)};\n"
        main = _ENDMODULE.sub(lambda _m: decl_text + "endmodule", main)
    rewritten[p.name] = main
    h = hashlib.sha256(repr((str(p), [str(d) for d in dirs], sorted(rewritten.items()), n)).encode()).hexdigest()[:20]
    out = folder / h
    out.mkdir(parents=True, exist_ok=True)
    for d in [p.parent, *dirs]:
        for f in sorted(d.iterdir()):
            t = out / f.name
            if f.name in rewritten or t.exists() or t.is_symlink():
                continue
            try:
                t.symlink_to(f)
            except FileExistsError:  # another process building the same variant
                pass
    for name, text in rewritten.items():
        t = out / name
        tmp = out / f".{name}.tmp{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, t)
    return out / p.name, sites


def _unscaled(defs: dict, v: str | None, mvals: set[str]) -> str | None:
    """The operand P of ``v = [optbarrier…] fmul($mfactor, P)`` (either order), else ``None``."""
    ins = defs.get(v)
    while ins is not None and ins.opcode == "optbarrier" and len(ins.operands) == 1:
        ins = defs.get(ins.operands[0])
    if ins is None or ins.opcode != "fmul" or len(ins.operands) != 2:
        return None
    a, b = ins.operands
    return b if a in mvals else a if b in mvals else None


def _real_one(fn, taken: set[str]) -> str:
    """A value of ``fn`` holding the real constant 1.0 (added when there is none)."""
    from ._ir import REAL

    for name, (ty, val) in sorted(fn.constants.items()):
        if ty == REAL and val == 1.0 and not isinstance(val, bool):
            return name
    name = f"{NODE_PREFIX}one"
    while name in taken:
        name += "_"
    taken.add(name)
    fn.constants[name] = (REAL, 1.0)
    return name


def unscale_noise_residuals(ir):
    """``ir`` with each noise probe node's resistive residual read before OpenVAF's ``$mfactor``
    scaling (in place; returns ``ir``).

    The front end makes a node's KCL residual ``optbarrier(fmul($mfactor, P))`` in eval, or, when
    P depends on parameters only, an init value ``optbarrier(fmul($mfactor, P))`` passed to eval
    through a cache slot. Dividing that by ``$mfactor`` again is off by one rounding when
    ``$mfactor`` is not a power of 2 (one ulp of bsim3v3's ``ids`` density at ``$mfactor =
    0.9396…``), whereas OSDI's ``load_noise`` scales the power P itself: ``(P·√m)·√m``. So the
    residual of every ``__va2jax_nz…`` node becomes P (or the flicker exponent) exactly as the
    noise call received it: the multiplication's other operand, in eval, or through a new cache
    slot holding the init operand. Nodes of other modules are never touched; a residual of
    another form is left as it is and its node listed in ``ir.scaled_probes`` (not seen in the
    corpus; :mod:`va2jax.codegen._noise` refuses such a source rather than guess)."""
    nz = {i for i, n in enumerate(ir.nodes) if n.name.lower().startswith(NODE_PREFIX)}
    if not nz:
        return ir
    mvals = {p.value for p in ir.eval.params if p.kind == "sysfun"}
    minit = {p.value for p in ir.init.params if p.kind == "sysfun"}
    defs = {ins.result: ins for ins in ir.eval.instructions() if ins.result is not None}
    idefs = {ins.result: ins for ins in ir.init.instructions() if ins.result is not None}
    cache_param = {p.value: int(p.name[6:-1]) for p in ir.eval.params
                   if p.kind == "cache" and p.name.startswith("cache[") and p.name[6:-1].isdigit()}
    scaled: list[str] = []
    taken = set(defs) | set(idefs) | {p.value for p in ir.eval.params} | set(ir.eval.constants)
    for k, r in enumerate(ir.residuals):
        if r.node not in nz or r.resist is None:
            continue
        p = _unscaled(defs, r.resist, mvals)
        v = r.resist
        while v in defs and defs[v].opcode == "optbarrier" and len(defs[v].operands) == 1:
            v = defs[v].operands[0]
        if p is None and v in mvals:  # P = 1 (e.g. a fixed flicker exponent): m·1 folded to m
            p = _real_one(ir.eval, taken)
        if p is None:  # P computed in init: a cache slot carries m·P to eval
            ins, v = defs.get(r.resist), r.resist
            while ins is not None and ins.opcode == "optbarrier" and len(ins.operands) == 1:
                v, ins = ins.operands[0], defs.get(ins.operands[0])
            slot = cache_param.get(v) if ins is None else None
            pin = _unscaled(idefs, ir.cache[slot][0], minit) if slot is not None else None
            iv = ir.cache[slot][0] if slot is not None else None
            while iv in idefs and idefs[iv].opcode == "optbarrier" and len(idefs[iv].operands) == 1:
                iv = idefs[iv].operands[0]
            if pin is None and iv is not None and iv in minit:  # P = 1, computed in init
                ir.residuals[k] = dataclasses.replace(r, resist=_real_one(ir.eval, taken))
                continue
            if pin is None:
                scaled.append(ir.nodes[r.node].name)
                continue
            n = 0
            while f"{NODE_PREFIX}c{n}" in taken:
                n += 1
            p = f"{NODE_PREFIX}c{n}"
            taken.add(p)
            idx = max((q.index for q in ir.eval.params), default=-1) + 1
            ir.cache.append((pin, idx))
            ir.eval.params.append(type(ir.eval.params[0])(p, f"cache[{len(ir.cache) - 1}]", "cache", idx))
        ir.residuals[k] = dataclasses.replace(r, resist=p)
    ir.scaled_probes = tuple(scaled)
    return ir
