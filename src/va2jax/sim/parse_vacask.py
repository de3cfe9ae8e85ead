"""Reader for VACASK ``.sim`` netlists (the subset used by its benchmark and example circuits).

Statements (one per line; a statement continues while parentheses/brackets are open or the line
ends with ``\\``)::

    Title line
    load "file.osdi" | load "file.va"
    include "file" [section=NAME]     (library: the lines between 'section NAME', 'endsection')
    ground NAME
    global NODE ...
    parameters a=1 b=2*a
    model NAME MODULE [(] p=v ... [)]
    subckt NAME (t1 t2 ...)          (nested definitions: local to the enclosing one)
      parameters w=1u l=1u
      INST (n1 n2 ...) MASTER p=v ...
    ends
    INST (n1 n2 ...) MASTER p=v ...
    @if COND / @elseif COND / @else / @end    (top-level parameters; sim/_sweep.py re-reads;
                                               inside a subckt: per-instance guards)
    control
      options k=v ...          (names va2jax does not apply: one warning each)
      var a=1 ...
      [sweep NAME instance=|model=|option=|variable= ... (nested: one per line, outermost first)]
      elaborate circuit("sub1", ...)  (top level + these subckts for the analyses after it)
      elaborate changes               (accepted: alters apply at each analysis anyway)
      analysis NAME op|tran|ac|dcinc|dcxf|acxf|noise|hb p=v ...
      save default full v(n) i(inst) p(inst, opvar) dv(n) di(inst)   (sim/_saves.py)
      alter instance("i", ...)|model("m", ...) p=v ...    (sim/_alter.py)
      clear [saves options variables] | print ... | postprocess(...)
      abort always|never|on CMD...|except CMD...   (whether a failing analysis stops the run)
    endc
    embed "f" <<<FILE ... >>>FILE   (skipped, with a warning; so is postprocess: never run)

Unknown control commands
are one-line errors naming file:line. docs/netlists.md lists every construct.

Comments: ``//`` to end of line, ``/* ... */``.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

from ._alter import parse_alter
from ._saves import parse_saves
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
            warnings.warn(f"{fname}:{i + 1}: embed: file not written (va2jax never writes or runs "
                          "files a netlist embeds)", stacklevel=2)
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
                if rest[:1] in "+-*/^?:&|" and not re.match(r"[A-Za-z_]\w*\s*=", rest) and \
                        text[i:j].strip() and rest[:1]:
                    j += len(text[j:]) - len(rest)
                    continue
                prev = text[i:j].rstrip()
                if prev and prev[-1] in "+-*/^?:&|":
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


def parse_vacask(path: str | Path, text: str | None = None,
                 overrides: dict[str, str] | None = None) -> Netlist:
    """Read a VACASK netlist file (``include`` resolved relative to the including file).
    ``overrides``: top-level parameters set to these values (expression text) wherever the
    netlist defines them — as a sweep of ``__topinst__`` sets them, ``@if`` conditions included."""
    path = Path(path)
    net, top, text = start_netlist(path, text, "vacask")
    net.overrides = dict(overrides or {})
    body = text.split("\n", 1)[1] if "\n" in text else ""
    _parse_body(net, "\n" + body, path, top, (path.resolve(),))  # line 1 is the title
    check_elaborations(net)
    return net


def _include_section(tail: str, loc: Loc) -> str | None:
    """What follows ``include "file"``: nothing (``None``) or ``section=NAME`` (VACASK's
    library include, ``lib/dfllexer.l``) → ``NAME``."""
    tail = tail.strip()
    if not tail:
        return None
    m = re.fullmatch(r"section\s*=\s*([A-Za-z_$][\w$]*)", tail)
    if not m:
        raise NetlistError(loc, f"include: unexpected {tail!r} after the file name "
                                '(include "file" [section=name])')
    return m.group(1)


def _library_section(text: str, name: str, loc: Loc, lib: Path) -> str:
    """The lines of library ``text`` between its first line ``section NAME`` and the next
    ``endsection`` (VACASK's rule: the first line starting with ``section NAME``); every other
    line blanked, so line numbers stay the library file's."""
    lines = text.split("\n")
    start = next((i for i, ln in enumerate(lines)
                  if (m := re.match(r"[ \t]*section[ \t]*([A-Za-z_$][\w$]*)", ln))
                  and m.group(1) == name), None)
    if start is None:
        raise NetlistError(loc, f"library {lib.name}: no section {name!r}")
    end = next((j for j in range(start + 1, len(lines))
                if re.match(r"\s*endsection\b", lines[j])), None)
    if end is None:
        raise NetlistError(Loc(str(lib), start + 1), f"section {name} has no endsection")
    return "\n".join([""] * (start + 1) + lines[start + 1:end] + [""] * (len(lines) - end))


def _parse_elaborate(rest: str, loc: Loc) -> tuple[str, ...]:
    """``circuit("a", "b")`` (the argument of ``elaborate``) → ("a", "b")."""
    kw = re.search(r"\b(topdef|topinst)\s*=", rest)
    if kw:  # VACASK's elaborate takes them (simulator/cmd.cpp)
        raise NetlistError(loc, f"elaborate: parameter {kw.group(1)!r} not supported yet")
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
    stmts = _conditionals(net, _statements(_strip_comments(text), str(path)), top)
    cur = top
    parents: list[Subckt] = []  # the definitions enclosing ``cur``, outermost first
    in_control = False
    pending_sweeps: list[dict[str, str]] = []
    circuit: tuple[str, ...] = net.elaborations[-1][0] if net.elaborations else ()
    saves = list(net.analyses[-1].saves) if net.analyses else []
    options = dict(net.analyses[-1].options or {}) if net.analyses else {}
    variables = dict(net.analyses[-1].variables or {}) if net.analyses else {}
    alters = list(net.analyses[-1].alters) if net.analyses else []
    abort: tuple[bool, frozenset] = (False, frozenset({"analysis"}))  # VACASK's default
    for stmt, loc, guard in stmts:
        word = stmt.split(None, 1)[0]
        rest = stmt[len(word):].strip()
        low = word.lower()
        if low in _KEYWORDS and word != low:  # VACASK's lexer: keywords in lower case only
            raise NetlistError(loc, f"{word!r}: VACASK's keywords are lower case ({low!r}); an "
                                    "instance of that name is not read by va2jax either")
        if in_control:
            if low == "endc":
                in_control = False
            elif low == "options":  # they apply to the analyses after them (VACASK)
                opts = _split_params(rest, loc)
                _lower_names(opts, loc, "options")
                options.update(opts)
                net.options.update(options)
            elif low == "analysis":
                parts = rest.split(None, 2)
                if len(parts) < 2:
                    raise NetlistError(loc, "analysis needs a name and a type")
                _check_analysis_kind(parts[1], loc)
                params = _split_params(parts[2] if len(parts) > 2 else "", loc)
                _check_analysis_params(parts[0], parts[1].lower(), params, bool(pending_sweeps),
                                       loc)
                net.analyses.append(AnalysisDecl(parts[0], parts[1].lower(), params, loc,
                                                 sweep=pending_sweeps[-1] if pending_sweeps
                                                 else None, sweeps=pending_sweeps, circuit=circuit,
                                                 saves=tuple(saves), options=dict(options),
                                                 variables=dict(variables),
                                                 alters=tuple(alters),
                                                 abort=_on_failure(abort)))
                pending_sweeps = []
            elif low == "sweep":
                parts = rest.split(None, 1)
                sw = _split_params(parts[1] if len(parts) > 1 else "", loc)
                _check_sweep(parts[0] if parts else "", sw, loc)
                sw["name"] = parts[0] if parts else "sweep"
                pending_sweeps.append(sw)
            elif low == "elaborate" and rest.strip().lower() == "changes":
                pass  # VACASK: apply pending alters now; va2jax applies them at each analysis
            elif low == "elaborate":
                circuit = _parse_elaborate(rest, loc)
                net.elaborations.append((circuit, loc))
                alters = []  # the circuit is built afresh (VACASK)
            elif low == "alter":
                alters.append(parse_alter(rest, loc, variables, _split_params))
            elif low == "clear":  # VACASK: no keyword clears all three
                what = set(rest.lower().split()) or {"saves", "options", "variables"}
                if not what <= {"saves", "options", "variables"}:
                    raise NetlistError(loc, f"clear: unknown keyword(s) "
                                            f"{' '.join(sorted(what - {'saves', 'options', 'variables'}))}"
                                            " (saves, options, variables)")
                saves = [] if "saves" in what else saves
                options = {} if "options" in what else options
                variables = {} if "variables" in what else variables
            elif low == "var":  # the analyses after it see these values (VACASK)
                variables.update(_split_params(rest, loc))
                net.variables.update(variables)
            elif low == "save":
                saves.extend(parse_saves(rest, loc))
                net.saves.extend(rest.split())
            elif low == "abort":
                abort = _parse_abort(rest, loc)
            elif low.startswith("postprocess"):
                warnings.warn(f"{loc}: postprocess: not run (va2jax never runs a netlist's "
                              "scripts)", stacklevel=2)
            else:
                _control_command(net, low, rest, loc)
            continue
        if cur is not top and low in _TOP_ONLY:
            raise NetlistError(loc, f"'{low}' inside subckt {cur.name}: allowed in the toplevel "
                                    "circuit only (as in VACASK)")
        if low == "control":
            if net.control_loc is not None:
                raise NetlistError(loc, f"a second control block (the first is at "
                                        f"{net.control_loc}); VACASK allows one")
            net.control_loc = loc
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
                section = _include_section(rest[m.end():], loc)
                if section is None:
                    inc, inc_text = read_include(loc, path, fname, stack)
                    key = inc.resolve()
                else:  # a library section: the same file may include its other sections
                    inc, inc_text = read_include(loc, path, fname,
                                                 tuple(k for k in stack if isinstance(k, tuple)))
                    key = (inc.resolve(), section)
                    if key in stack:
                        raise NetlistError(loc, f"recursive include of {fname} section={section}")
                    inc_text = _library_section(inc_text, section, loc, inc)
                _parse_body(net, inc_text, inc, cur, stack + (key,))
        elif low in ("section", "endsection"):
            raise NetlistError(loc, f"'{low}' outside a library section (a library file is read "
                                    'with include "file" section=name, as in VACASK)')
        elif low == "ground":
            net.ground.update(rest.split())
        elif low == "global":
            net.globals.update(rest.split())
        elif low == "parameters":
            cur.params.update(_split_params(rest, loc))
            if cur is top:
                _apply_overrides(net, top)
        elif low == "model":
            parts = rest.split(None, 2)
            if len(parts) < 2:
                raise NetlistError(loc, "model needs a name and a device module")
            ptxt = parts[2].strip() if len(parts) > 2 else ""
            if ptxt.startswith("(") and ptxt.endswith(")"):
                ptxt = ptxt[1:-1]
            key = parts[0] if not guard else f"{parts[0]}\0{len(cur.models)}"
            cur.models[key] = ModelCard(parts[0], parts[1], _split_params(ptxt, loc), loc, guard)
        elif low == "subckt":
            m = re.match(r"([^\s(]+)\s*(.*)", rest)
            if not m:
                raise NetlistError(loc, "subckt needs a name")
            terms, tail = _parse_paren_list(m.group(2), loc)
            if tail:
                raise NetlistError(loc, f"unexpected {tail!r} after subckt terminals")
            sub = Subckt(m.group(1), terms, {}, loc=loc)
            key = ":".join(p.name for p in parents + [cur] if p is not top)
            key = f"{key}:{m.group(1)}" if key else m.group(1)
            net.subckts[key] = sub
            if cur is not top:  # VACASK: seen by the instances of the enclosing definition only
                cur.defs[m.group(1).lower()] = key
            parents.append(cur)
            cur = sub
        elif low == "ends":
            if cur is top:
                raise NetlistError(loc, "'ends' without 'subckt'")
            cur = parents.pop()
        elif low == "endc":
            raise NetlistError(loc, "'endc' without 'control'")
        elif low in _CONTROL_ONLY:
            raise NetlistError(loc, f"'{low}' is a control statement: put it between 'control' "
                                    "and 'endc'")
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
            cur.instances.append(InstanceDecl(m.group(1), nodes, parts[0], params, loc, guard))
    if cur is not top:
        raise NetlistError(cur.loc, f"subckt {cur.name} has no 'ends'")
    if in_control:
        raise NetlistError(None, f"{path}: 'control' block has no 'endc'")
    if pending_sweeps:
        raise NetlistError(None, f"{path}: sweep {pending_sweeps[-1]['name']} is not followed by "
                                 "an analysis")


#: VACASK's analysis types va2jax runs (a DC sweep is a ``sweep`` around ``op``; VACASK has no
#: ``dc`` analysis)
_ANALYSES_DONE = {"op", "ac", "tran", "dcinc", "dcxf", "acxf", "noise", "hb"}
#: VACASK's other analysis types (include/an*.h): parsed, refused until implemented
_ANALYSES_PLANNED: set[str] = set()
#: control commands VACASK has (simulator/cmd.cpp) that va2jax does not carry out yet
_COMMANDS_PLANNED: set[str] = set()
#: statements VACASK allows in the toplevel circuit only (lib/dflparser.y)
_TOP_ONLY = {"load", "ground", "global", "control", "embed"}
#: statements a conditional block may not hold (VACASK: instances, models, nested blocks only)
_NOT_IN_BLOCK = {"load", "include", "ground", "global", "parameters", "subckt", "ends",
                 "control", "endc", "embed"}
#: VACASK's statement keywords (lib/dfllexer.l, simulator/cmd.cpp), lower case only there
_KEYWORDS = {"load", "include", "ground", "global", "parameters", "model", "subckt", "ends",
             "control", "endc", "embed", "section", "endsection", "analysis", "sweep", "options",
             "var", "alter", "abort", "clear", "print", "save", "elaborate", "postprocess"}
#: statements valid only inside ``control``
_CONTROL_ONLY = {"analysis", "sweep", "options", "var", "alter", "abort", "clear", "print"}


#: VACASK's parameters of each analysis (lib/coreop.cpp, coreac.cpp, coretran.cpp): (all, those
#: va2jax applies); ``method`` of tran is va2jax's (VACASK: the option ``tran_method``)
_ANALYSIS_PARAMS = {
    "op": ({"nodeset", "store", "write"}, {"nodeset", "store"}),
    "ac": ({"from", "to", "step", "mode", "points", "values", "writeop", "write", "nodeset",
            "store"}, {"from", "to", "step", "mode", "points", "values", "writeop", "nodeset",
                       "store"}),
    "tran": ({"step", "stop", "start", "maxstep", "icmode", "nodeset", "ic", "store", "write",
              "method"}, {"step", "stop", "start", "maxstep", "icmode", "method", "nodeset", "ic",
                          "store"}),
    "hb": ({"freq", "nharm", "immax", "truncate", "samplefac", "tstart", "nper", "sample",
            "shift", "write", "nodeset", "store"},
           {"freq", "nharm", "immax", "truncate", "samplefac", "tstart", "nper", "sample",
            "shift", "nodeset", "store"}),
}


def _check_analysis_params(name: str, kind: str, params: dict[str, str], swept: bool,
                           loc: Loc) -> None:
    """Refuse a parameter the analysis type does not have (unknown) or va2jax does not apply
    yet (a swept tran's ``ic``/``store``):
    one line naming it."""
    _lower_names(params, loc, f"analysis {name}")
    if kind not in _ANALYSIS_PARAMS:
        return
    known, done = _ANALYSIS_PARAMS[kind]
    for k in params:
        low = k.lower()
        if low not in known:
            raise NetlistError(loc, f"analysis {name}: unknown parameter {k!r} of {kind} "
                                    f"(VACASK's: {', '.join(sorted(known - {'method'}))})")
        if low == "write" and kind in ("op", "ac", "tran", "hb"):
            continue  # write=0: no rawfile (the CLI's job; VACASK's)
        # under a sweep: op/ac store each point's operating point (the last stays), nodeset
        # starts the first point (sim._sweep); tran's ic/store (the installed VACASK crashes
        # on them): not yet
        if low not in done or (swept and kind == "tran" and low in ("ic", "store")):
            what = "of a swept analysis " if swept and low in done else ""
            raise NetlistError(loc, f"analysis {name}: {kind} parameter {k!r} {what}not "
                                    "supported yet")


#: the parameters of VACASK's sweep (include/answeep.h, SweepSettings)
_SWEEP_PARAMS = {"instance", "model", "parameter", "option", "variable", "component", "from",
                 "to", "step", "mode", "points", "values", "continuation"}


def _lower_names(params: dict[str, str], loc: Loc, where: str) -> None:
    """VACASK's parameter names of analyses, sweeps and options are lower case and matched
    exactly: ``RELTOL=``, ``FROM=`` are no parameters there."""
    for k in params:
        if k != k.lower():
            raise NetlistError(loc, f"{where}: no parameter {k!r} (VACASK's names are lower "
                                    f"case: {k.lower()!r})")


def _check_sweep(name: str, sw: dict[str, str], loc: Loc) -> None:
    """Refuse a sweep parameter VACASK does not have, and ``component=`` (VACASK: "vector
    component sweeps are not supported yet")."""
    if not name or "=" in name:
        raise NetlistError(loc, "sweep needs a name, e.g. sweep s1 instance=\"v1\" "
                                "parameter=\"dc\" from=0 to=1 step=0.1")
    _lower_names(sw, loc, f"sweep {name}")
    # a device's or an option's name is lower case in VACASK (a top-level parameter's: as written)
    for key in ("parameter", "option"):
        val = sw.get(key, "").strip().strip('"')
        top = sw.get("instance", "").strip().strip('"') == "__topinst__"
        if val != val.lower() and not (key == "parameter" and top):
            raise NetlistError(loc, f"sweep {name}: no {key} {val!r} (VACASK's names are lower "
                                    f"case: {val.lower()!r})")
    for k in sw:
        if k.lower() not in _SWEEP_PARAMS:
            raise NetlistError(loc, f"sweep {name}: unknown parameter {k!r} (VACASK's: "
                                    f"{', '.join(sorted(_SWEEP_PARAMS))})")
    if any(k.lower() == "component" for k in sw):
        raise NetlistError(loc, f"sweep {name}: component= (a sweep of one component of a "
                                "vector parameter) not supported (VACASK does not support it "
                                "either)")


#: VACASK's control commands (simulator/cmd.cpp) and ``analysis``: what ``abort on|except`` names
_COMMANDS = {"analysis", "abort", "clear", "save", "var", "options", "alter", "elaborate",
             "print", "postprocess"}


def _parse_abort(rest: str, loc: Loc) -> tuple[bool, frozenset]:
    """VACASK's ``abort always|never|on CMD…|except CMD…`` → (abort on a match, commands):
    a failing command stops the run when it is in the set and the mode is "on", or it is not
    and the mode is "except"/"always" (VACASK's default: ``except analysis``)."""
    words = rest.replace(",", " ").split()
    if not words:
        raise NetlistError(loc, "abort needs always, never, on CMD… or except CMD…")
    kw, cmds = words[0].lower(), [w.lower() for w in words[1:]]
    bad = [c for c in cmds if c not in _COMMANDS]
    if kw not in ("always", "never", "on", "except") or bad or \
            (kw in ("always", "never") and cmds):
        what = f"unknown command {bad[0]!r}" if bad else f"unknown keyword {words[0]!r}" \
            if kw not in ("always", "never", "on", "except") else f"{kw} takes no commands"
        raise NetlistError(loc, f"abort: {what} (abort always|never|on CMD…|except CMD…)")
    if kw == "always":
        return False, frozenset()
    if kw == "never":
        return True, frozenset()
    return kw == "on", frozenset(cmds)


def _on_failure(mode: tuple[bool, frozenset]) -> str:
    """What a failing analysis does under ``mode`` (:class:`~.netlist.AnalysisDecl` ``abort``):
    VACASK stops, or goes on — va2jax then ends with the failure's error unless the mode is
    ``never`` (VACASK's exit status is 0 either way)."""
    on_match, cmds = mode
    if ("analysis" in cmds) == on_match:
        return "stop"
    return "ignore" if mode == (True, frozenset()) else "continue"


def _check_analysis_kind(kind: str, loc: Loc) -> None:
    """Refuse an analysis type va2jax does not run: one line naming it (VACASK has it: "not
    supported yet"; otherwise: unknown)."""
    low = kind.lower()
    if kind != low and low in _ANALYSES_DONE | _ANALYSES_PLANNED:
        raise NetlistError(loc, f"unknown analysis type {kind!r} (VACASK's names are "
                                f"case-sensitive: {low!r})")
    if low in _ANALYSES_DONE:
        return
    if low in _ANALYSES_PLANNED:
        raise NetlistError(loc, f"analysis {low!r} not supported yet (va2jax runs op, ac, tran, "
                                "dcinc, dcxf, acxf, noise and swept op)")
    hint = "; a DC sweep is a sweep around op" if low == "dc" else ""
    raise NetlistError(loc, f"unknown analysis type {kind!r} (VACASK's: op, ac, tran, noise, "
                            f"hb, acxf, dcxf, dcinc{hint})")


def _control_command(net: Netlist, low: str, rest: str, loc: Loc) -> None:
    """A control-block command other than options/analysis/sweep/save/postprocess: ``var``
    stores variables (expression text, usable in analysis and sweep parameters), ``print``
    (``stats``, ``devices``, …: informational output) is accepted without printing; VACASK's
    other commands are refused by name, so are unknown words."""
    if low == "var":
        net.variables.update(_split_params(rest, loc))
    elif low == "print" or low.startswith("print("):
        return  # informational output (stats, devices, …): changes no result
    elif low in _COMMANDS_PLANNED or low.startswith("elaborate"):
        raise NetlistError(loc, f"control command {low.split('(')[0]!r} not supported yet")
    else:
        raise NetlistError(loc, f"unknown control command {low!r} (VACASK's: analysis, sweep, "
                                "options, save, var, print, alter, elaborate, abort, clear, "
                                "postprocess)")


def _conditionals(net: Netlist, stmts: list[tuple[str, Loc]], top: Subckt
                  ) -> list[tuple[str, Loc, str]]:
    """Resolve ``@if COND`` / ``@elseif COND`` / ``@else`` / ``@end`` blocks: keep the
    statements of the first branch whose condition (an expression of the top-level
    ``parameters`` seen so far and the control ``var`` values) is nonzero. Blocks nest.

    Inside a ``subckt`` the conditions are on its own parameters and decided per instance (as
    VACASK does): each statement is kept with its *guard*, an expression that is nonzero where
    its branch is taken (``!(c1) && (c2)`` for an ``@elseif c2`` after ``@if c1``); ``""`` is
    no guard. Returns (statement, location, guard). As in VACASK (``lib/dflparser.y``), a block
    holds instances, models and nested blocks only."""
    from .expr import ExprError, evaluate

    out: list[tuple[str, Loc, str]] = []
    # each open block: [taking now, some branch taken already, parent taking, loc,
    #                   subckt: conditions so far, this branch's guard]
    stack: list[list] = []
    in_sub = 0  # depth of (nested) subckt definitions
    if not any(s.startswith("@") for s, _ in stmts):
        return [(s, loc, "") for s, loc in stmts]

    def scope() -> dict:
        env: dict = {}
        for k, v in {**top.params, **net.variables}.items():
            try:
                env[k] = evaluate(v, env, "vacask")
            except ExprError:
                pass
        return env

    def cond(text: str, loc: Loc) -> bool:
        if not text.strip():
            raise NetlistError(loc, "@if/@elseif needs a condition")
        try:
            return bool(evaluate(text, scope(), "vacask"))
        except ExprError as exc:
            raise NetlistError(loc, f"condition {text.strip()!r}: {exc}") from None

    in_control = False
    for stmt, loc in stmts:
        word = stmt.split(None, 1)[0]
        rest = stmt[len(word):].strip()
        low = word.lower()
        taking = all(b[0] for b in stack)
        if low.startswith("@") and in_control:
            raise NetlistError(loc, f"{word} inside control (VACASK allows conditional blocks "
                                    "in the circuit description only)")
        if low == "control":
            in_control = True
        elif low == "endc":
            in_control = False
        if low in ("@if", "@elseif") and not rest.strip():
            raise NetlistError(loc, f"{low} needs a condition")
        if in_sub and low in ("@if", "@elseif", "@else"):
            if low == "@if":
                stack.append([taking, False, taking, loc, [], ""])
            elif not stack:
                raise NetlistError(loc, f"{low} without @if")
            b = stack[-1]
            prev = " && ".join(f"!({c})" for c in b[4])
            if low == "@else":
                b[5] = prev or "1"
            else:
                b[5] = f"{prev} && ({rest})" if prev else f"({rest})"
                b[4].append(rest)
            continue
        if low == "@if":
            t = taking and cond(rest, loc)
            stack.append([t, t, taking, loc, [], ""])
        elif low == "@elseif":
            if not stack:
                raise NetlistError(loc, "@elseif without @if")
            b = stack[-1]
            t = b[2] and not b[1] and cond(rest, loc)
            b[0] = t
            b[1] = b[1] or t
        elif low == "@else":
            if not stack:
                raise NetlistError(loc, "@else without @if")
            b = stack[-1]
            b[0] = b[2] and not b[1]
            b[1] = True
        elif low == "@end":
            if not stack:
                raise NetlistError(loc, "@end without @if")
            stack.pop()
        elif low.startswith("@"):
            raise NetlistError(loc, f"unknown directive {word!r} (@if, @elseif, @else, @end)")
        elif stack and (low in _NOT_IN_BLOCK or low in _CONTROL_ONLY):
            raise NetlistError(loc, f"'{low}' inside @if (a conditional block holds instances, "
                                    "models and nested @if blocks only, as in VACASK)")
        elif taking:
            if low == "subckt":
                in_sub += 1
            elif low == "ends":
                in_sub = max(in_sub - 1, 0)
            elif low == "parameters" and not in_sub:
                top.params.update(_split_params(rest, loc))
                _apply_overrides(net, top)
            elif low == "var":
                net.variables.update(_split_params(rest, loc))
            guard = " && ".join(b[5] for b in stack if b[5])
            out.append((stmt, loc, guard))
    if stack:
        raise NetlistError(stack[-1][3], "@if without @end")
    return out


def reread_with(path: Path):
    """``reread`` for :func:`._alter.apply_alters`: the netlist at ``path`` read again with
    top-level parameters set (``overrides``)."""
    def reread(overrides: dict[str, str]) -> Netlist:
        return parse_vacask(path, overrides=overrides)
    return reread


def _apply_overrides(net: Netlist, top: Subckt) -> None:
    """Set the swept top-level parameters (``parse_vacask(overrides=…)``) where defined."""
    for k, v in getattr(net, "overrides", {}).items():
        if k in top.params:
            top.params[k] = v
