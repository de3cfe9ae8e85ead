"""Reader for VACASK ``.sim`` netlists (the subset used by its benchmark and example circuits).

Statements (one per line; a statement continues while parentheses/brackets are open or the line
ends with ``\\``)::

    Title line
    load "file.osdi" | load "file.va"
    include "file"
    ground NAME
    global NODE ...
    parameters a=1 b=2*a
    model NAME MODULE [(] p=v ... [)]
    subckt NAME (t1 t2 ...)
      parameters w=1u l=1u
      INST (n1 n2 ...) MASTER p=v ...
    ends
    INST (n1 n2 ...) MASTER p=v ...
    control
      options k=v ...
      [sweep NAME instance="v1" parameter="dc" from=.. to=.. step=..]
      elaborate circuit("sub1", ...)  (top level + these subckts for the analyses after it)
      analysis NAME op|dc|tran|ac p=v ...
      print ... | save ... | postprocess(...)
    endc
    embed "f" <<<FILE ... >>>FILE   (skipped)

Comments: ``//`` to end of line, ``/* ... */``.
"""
from __future__ import annotations

import re
from pathlib import Path

from .netlist import (
    AnalysisDecl,
    InstanceDecl,
    Loc,
    ModelCard,
    Netlist,
    NetlistError,
    Subckt,
    check_elaborations,
    read_include,
    start_netlist,
)


def _strip_comments(text: str) -> str:
    """Remove ``//`` and ``/* */`` comments (keeping newlines so line numbers stay right)."""
    out: list[str] = []
    i, n = 0, len(text)
    in_str = False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == '"':
                in_str = False
            i += 1
            continue
        if c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            seg = text[i: (n if j < 0 else j + 2)]
            out.append("\n" * seg.count("\n"))
            i = n if j < 0 else j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _statements(text: str, fname: str) -> list[tuple[str, Loc]]:
    """Join continuation lines; drop ``embed`` blocks. Returns (statement, loc of first line)."""
    lines = text.split("\n")
    stmts: list[tuple[str, Loc]] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        start = i
        if line.strip().startswith("embed"):
            m = re.search(r"<<<(\w+)", line)
            if m:
                end = ">>>" + m.group(1)
                while i < len(lines) and end not in lines[i]:
                    i += 1
            i += 1
            continue
        buf = line
        while True:
            depth = buf.count("(") - buf.count(")") + buf.count("[") - buf.count("]")
            cont = buf.rstrip().endswith("\\")
            if cont:
                buf = buf.rstrip()[:-1]
            if (depth > 0 or cont) and i + 1 < len(lines):
                i += 1
                buf += " " + lines[i]
            else:
                break
        if buf.strip():
            stmts.append((buf.strip(), Loc(fname, start + 1)))
        i += 1
    return stmts


_TOKEN = re.compile(r'\s*("[^"]*"|\(|\)|=|[^\s()="]+)')


def _split_params(text: str, loc: Loc) -> dict[str, str]:
    """Split ``a=1 b=(2 * c) wave=[0 0 1m 1] type="pulse"`` into name → expression text."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            break
        m = re.match(r"([A-Za-z_$][\w$.]*)\s*=\s*", text[i:])
        if not m:
            raise NetlistError(loc, f"expected name=value, found {text[i:].split()[0]!r}")
        name = m.group(1)
        i += m.end()
        j = i
        depth = 0
        in_str = False
        while j < n:
            c = text[j]
            if in_str:
                in_str = c != '"'
            elif c == '"':
                in_str = True
            elif c in "([{":
                depth += 1
            elif c in ")]}":
                depth -= 1
                if depth < 0:
                    break
            elif c.isspace() and depth == 0:
                # allow "a = b + c" style: continue if the next non-space is an operator
                rest = text[j:].lstrip()
                if rest[:1] in "+-*/^?:" and not re.match(r"[A-Za-z_]\w*\s*=", rest) and \
                        text[i:j].strip() and rest[:1]:
                    j += len(text[j:]) - len(rest)
                    continue
                prev = text[i:j].rstrip()
                if prev and prev[-1] in "+-*/^?:":
                    j += 1
                    continue
                break
            j += 1
        val = text[i:j].strip()
        if not val:
            raise NetlistError(loc, f"missing value for parameter {name!r}")
        params[name] = val
        i = j
    return params


def _parse_paren_list(stmt: str, loc: Loc) -> tuple[list[str], str]:
    """``(a b c) rest`` → (["a","b","c"], "rest")."""
    s = stmt.lstrip()
    if not s.startswith("("):
        raise NetlistError(loc, f"expected '(' with a node list in {stmt!r}")
    j = s.find(")")
    if j < 0:
        raise NetlistError(loc, f"unclosed '(' in {stmt!r}")
    return s[1:j].replace(",", " ").split(), s[j + 1:].strip()


def parse_vacask(path: str | Path, text: str | None = None) -> Netlist:
    """Read a VACASK netlist file (``include`` resolved relative to the including file)."""
    path = Path(path)
    net, top, text = start_netlist(path, text, "vacask")
    body = text.split("\n", 1)[1] if "\n" in text else ""
    _parse_body(net, "\n" + body, path, top, (path.resolve(),))  # line 1 is the title
    check_elaborations(net)
    return net


def _parse_elaborate(rest: str, loc: Loc) -> tuple[str, ...]:
    """``circuit("a", "b")`` (the argument of ``elaborate``) → ("a", "b")."""
    m = re.fullmatch(r'circuit\s*\((.*)\)', rest.strip(), re.S)
    if not m:
        raise NetlistError(loc, 'elaborate needs circuit("name", ...), e.g. '
                                'elaborate circuit("top")')
    args = [a.strip() for a in m.group(1).split(",") if a.strip()]
    names = []
    for a in args:
        if not re.fullmatch(r'"[^"]+"', a):
            raise NetlistError(loc, f"elaborate: subcircuit names must be quoted strings, got {a!r}")
        names.append(a[1:-1])
    return tuple(names)


def _parse_body(net: Netlist, text: str, path: Path, top: Subckt, stack: tuple[Path, ...]) -> None:
    """Statements of ``text`` (line 1 of ``text`` is line 1 of ``path``); ``stack``: the files
    being read, this one last (for include cycles)."""
    stmts = _statements(_strip_comments(text), str(path))
    cur = top
    in_control = False
    pending_sweep: dict[str, str] | None = None
    circuit: tuple[str, ...] = net.elaborations[-1][0] if net.elaborations else ()
    for stmt, loc in stmts:
        word = stmt.split(None, 1)[0]
        rest = stmt[len(word):].strip()
        low = word.lower()
        if in_control:
            if low == "endc":
                in_control = False
            elif low == "options":
                net.options.update(_split_params(rest, loc))
            elif low == "analysis":
                parts = rest.split(None, 2)
                if len(parts) < 2:
                    raise NetlistError(loc, "analysis needs a name and a type")
                params = _split_params(parts[2] if len(parts) > 2 else "", loc)
                net.analyses.append(AnalysisDecl(parts[0], parts[1].lower(), params, loc,
                                                 sweep=pending_sweep, circuit=circuit))
                pending_sweep = None
            elif low == "sweep":
                parts = rest.split(None, 1)
                pending_sweep = _split_params(parts[1] if len(parts) > 1 else "", loc)
                pending_sweep["name"] = parts[0] if parts else "sweep"
            elif low == "elaborate":
                circuit = _parse_elaborate(rest, loc)
                net.elaborations.append((circuit, loc))
            elif low == "save":
                net.saves.extend(rest.split())
            # print, postprocess, alter, var, abort, ...: not needed for simulation results
            continue
        if low == "control":
            in_control = True
        elif low in ("load", "include"):
            m = re.match(r'"([^"]*)"', rest)
            if not m:
                raise NetlistError(loc, f'{low} needs a quoted file name, e.g. {low} "file"')
            fname = m.group(1)
            if low == "load":
                net.loads.append((fname, loc))
            else:
                if len(stack) > 20:
                    raise NetlistError(loc, "include nesting too deep")
                inc, inc_text = read_include(loc, path, fname, stack)
                _parse_body(net, inc_text, inc, cur, stack + (inc.resolve(),))
        elif low == "ground":
            net.ground.update(rest.split())
        elif low == "global":
            net.globals.update(rest.split())
        elif low == "parameters":
            cur.params.update(_split_params(rest, loc))
        elif low == "model":
            parts = rest.split(None, 2)
            if len(parts) < 2:
                raise NetlistError(loc, "model needs a name and a device module")
            ptxt = parts[2].strip() if len(parts) > 2 else ""
            if ptxt.startswith("(") and ptxt.endswith(")"):
                ptxt = ptxt[1:-1]
            cur.models[parts[0]] = ModelCard(parts[0], parts[1], _split_params(ptxt, loc), loc)
        elif low == "subckt":
            if cur is not top:
                raise NetlistError(loc, "nested subckt definitions are not supported")
            m = re.match(r"([^\s(]+)\s*(.*)", rest)
            if not m:
                raise NetlistError(loc, "subckt needs a name")
            terms, tail = _parse_paren_list(m.group(2), loc)
            cur = Subckt(m.group(1), terms, {}, loc=loc)
            net.subckts[m.group(1)] = cur
            if tail:
                raise NetlistError(loc, f"unexpected {tail!r} after subckt terminals")
        elif low == "ends":
            if cur is top:
                raise NetlistError(loc, "'ends' without 'subckt'")
            cur = top
        elif low == "endc":
            raise NetlistError(loc, "'endc' without 'control'")
        else:
            m = re.match(r"([^\s(]+)\s*(\(.*)", stmt)
            if not m:
                raise NetlistError(loc, f"cannot parse statement {stmt!r} (expected "
                                        "'NAME (nodes) MASTER params')")
            nodes, tail = _parse_paren_list(m.group(2), loc)
            parts = tail.split(None, 1)
            if not parts:
                raise NetlistError(loc, f"instance {m.group(1)} has no model/device name")
            params = _split_params(parts[1] if len(parts) > 1 else "", loc)
            cur.instances.append(InstanceDecl(m.group(1), nodes, parts[0], params, loc))
    if cur is not top:
        raise NetlistError(cur.loc, f"subckt {cur.name} has no 'ends'")
    if in_control:
        raise NetlistError(None, f"{path}: 'control' block has no 'endc'")
