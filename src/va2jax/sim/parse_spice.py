"""Reader for a SPICE (ngspice) netlist subset, mapped onto the same :class:`Netlist` model.

Elements: R C L V I D M Q X E G N. Dot cards: ``.model .subckt/.ends .param .include .op .dc .tran .tf
.ac .noise .options .temp .control/.endc .end``. Continuation ``+``, comments ``*`` at line start and
``;``/``$``/``//`` inline. Names and keywords are case-insensitive (node names kept as written,
lower-cased). What each construct means (ngspice batch semantics for ``.control``, the source
defaults taken from the transient, the ``.options`` mapping) is in ``docs/sim.md``.

Semiconductor devices use the SPICE-in-Verilog-A models of the corpus (``bosdi/spice``), loaded as
``spice/<name>.osdi`` (which the model library resolves to the ``.va`` or the OSDI library):

    D                       → sp_diode     (spice/diode)
    M level=14 or 54        → sp_bsim4v8   (spice/bsim4v8), nmos: type=1, pmos: type=-1
    M level=1 (default)     → sp_mos1      (spice/mos1)
    Q                       → sp_bjt       (spice/bjt), npn: type=1, pnp: type=-1
"""
from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

from .expr import parse_number
from .netlist import (
    AnalysisDecl,
    InstanceDecl,
    Loc,
    ModelCard,
    Netlist,
    NetlistError,
    Subckt,
    read_include,
    start_netlist,
)

_SRC_ARGS = {
    "pulse": ["val0", "val1", "delay", "rise", "fall", "width", "period"],
    # ngspice sin(VO VA FREQ TD THETA PHASE): THETA is the damping (1/s), PHASE in degrees
    "sin": ["sinedc", "ampl", "freq", "delay", "damp", "sinephase"],
    "exp": ["val0", "val1", "td1", "tau1", "td2", "tau2"],
}
_MOS_LEVELS = {"14": ("sp_bsim4v8", "spice/bsim4v8.osdi"), "54": ("sp_bsim4v8", "spice/bsim4v8.osdi"),
               "1": ("sp_mos1", "spice/mos1.osdi"), "2": ("sp_mos2", "spice/mos2.osdi"),
               "3": ("sp_mos3", "spice/mos3.osdi"), "8": ("sp_bsim3v3", "spice/bsim3v3.osdi"),
               "49": ("sp_bsim3v3", "spice/bsim3v3.osdi")}


def _lines(text: str, fname: str, title: bool = True) -> list[tuple[str, Loc]]:
    """Logical lines with their place (``title``: line 1 is the title, skipped; an included
    file has none)."""
    raw = text.split("\n")
    out: list[tuple[str, Loc]] = []
    first = 1 if title else 0
    for i, line in enumerate(raw[first:], start=first + 1):
        s = line.rstrip("\r")
        if not s.strip() or s.lstrip().startswith("*"):
            continue
        s = re.split(r"(?:^|\s)(?:[;$]|//)", s)[0]  # inline comments: ; $ and // (ngspice)
        if s.lstrip().startswith("+") and out:
            prev, loc = out[-1]
            out[-1] = (prev + " " + s.lstrip()[1:], loc)
        elif s.strip():
            out.append((s.strip(), Loc(fname, i)))
    return out


def _tokens(s: str) -> list[str]:
    """Split on whitespace, keeping ``{...}``, ``'...'`` and ``name(...)`` groups together."""
    toks: list[str] = []
    s = re.sub(r"\s*=\s*", "=", s)
    i, n = 0, len(s)
    while i < n:
        if s[i].isspace() or s[i] == ",":
            i += 1
            continue
        j = i
        depth = 0
        quote = False
        while j < n:
            c = s[j]
            if c == "'":
                quote = not quote
            elif not quote and c in "({":
                depth += 1
            elif not quote and c in ")}":
                depth -= 1
            elif not quote and depth == 0 and (c.isspace() or c == ","):
                break
            j += 1
        toks.append(s[i:j])
        i = j
    return toks


def _expr(tok: str) -> str:
    t = tok.strip()
    if t.startswith("{") and t.endswith("}"):
        return t[1:-1]
    if t.startswith("'") and t.endswith("'"):
        return t[1:-1]
    return t


def _kv(toks: list[str], loc: Loc) -> dict[str, str]:
    out: dict[str, str] = {}
    for t in toks:
        if "=" not in t:
            raise NetlistError(loc, f"expected name=value, found {t!r}")
        k, v = t.split("=", 1)
        out[k.lower()] = _expr(v)
    return out


def parse_spice(path: str | Path, text: str | None = None) -> Netlist:
    """Read a SPICE netlist (first line is the title).

    Analyses follow ngspice's batch mode: without a ``.control`` block the dot cards (``.op``,
    ``.tran``, …) are the analyses; with one, its ``op``/``dc``/``ac``/``tran`` commands are, in
    order (``run`` stands for the dot cards, ``quit`` ends the block).
    """
    path = Path(path)
    net, top, text = start_netlist(path, text, "spice")
    net.ground.add("gnd")
    state: dict = {"loads": set(), "dot": [], "control": None, "waves": [], "method": None,
                   "maxord": None, "osdi": False, "osdi_models": []}
    _parse(net, text, path, top, state, (path.resolve(),))
    if not state["osdi"] and state["osdi_models"]:
        mtype, loc = state["osdi_models"][0]
        raise NetlistError(loc, f"unsupported .model type {mtype!r} (d, nmos, pmos, npn, pnp, "
                                "or a module of an OSDI file loaded with pre_osdi)")
    runs = state["dot"] if state["control"] is None else state["control"]
    count: dict[str, int] = {}
    for a in runs:  # named as ngspice names its plots: tran1, tran2, op1, … in run order
        kind = "dc" if a.sweep is not None else ("noise" if a.kind.startswith("noise") else a.kind)
        count[kind] = count.get(kind, 0) + 1
        net.analyses.append(dataclasses.replace(a, name=f"{kind}{count[kind]}"))
    _integration(net, state)
    # (``tran_control=vacask`` only) the first step a tenth of min(tstep, tmax), VACASK's a quarter
    net.options.setdefault("tran_fs", "0.1")
    # ngspice's step control (sim/_tran_ngspice.py) for SPICE netlists
    net.options.setdefault("tran_control", '"ngspice"')
    _wave_defaults(net, state)
    return net


def _need(net: Netlist, state: dict, lib: str, loc: Loc) -> None:
    if lib not in state["loads"]:
        state["loads"].add(lib)
        net.loads.append((lib, loc))


def _warn(loc: Loc, msg: str) -> None:
    warnings.warn(f"{loc}: {msg}", stacklevel=3)


def _analysis(cmd: str, toks: list[str], loc: Loc, state: dict) -> AnalysisDecl:
    """``tran``/``op``/``dc``/``ac`` (dot card or ``.control`` command; ``cmd`` without the dot)
    → :class:`AnalysisDecl` (named when the runs are known, see :func:`parse_spice`)."""
    if cmd == "op":
        return AnalysisDecl("op", "op", {}, loc)
    if cmd == "tran":
        # tran tstep tstop [tstart [tmax]] [uic]
        args = [t for t in toks if t.lower() != "uic"]
        if len(args) < 2:
            raise NetlistError(loc, f"{cmd} needs tstep and tstop")
        if len(args) > 4:
            raise NetlistError(loc, f"{cmd}: unexpected {args[4]!r} (tstep tstop [tstart [tmax]] [uic])")
        p = {"step": _expr(args[0]), "stop": _expr(args[1])}
        if len(args) > 2:
            p["start"] = _expr(args[2])
        if len(args) > 3:
            p["maxstep"] = _expr(args[3])
        else:  # ngspice's default: tmax = min(tstep, (tstop − tstart)/50)
            p["maxstep"] = f"min(({p['step']}), (({p['stop']}) - ({p.get('start', '0')}))/50)"
        if any(t.lower() == "uic" for t in toks):
            p["icmode"] = '"uic"'
        return AnalysisDecl("tran", "tran", p, loc)
    if cmd == "dc":
        if len(toks) < 4:
            raise NetlistError(loc, f"{cmd} needs source start stop step")
        if len(toks) > 4:
            raise NetlistError(loc, f"{cmd}: a second swept source ({toks[4]!r}) is not supported")
        sw = {"instance": f'"{toks[0].lower()}"', "parameter": '"dc"', "from": _expr(toks[1]),
              "to": _expr(toks[2]), "step": _expr(toks[3])}
        return AnalysisDecl("dc", "op", {}, loc, sweep=sw)
    if cmd == "ac":
        if len(toks) < 4 or toks[0].lower() not in ("dec", "oct", "lin"):
            raise NetlistError(loc, f"{cmd} needs dec|oct|lin points fstart fstop")
        return AnalysisDecl("ac", "ac", {
            "mode": f'"{toks[0].lower()}"', "points": _expr(toks[1]), "from": _expr(toks[2]),
            "to": _expr(toks[3])}, loc)
    if cmd == "tf":  # tf V(n[,m])|I(vsrc) insrc (run by sim/_xf.py::run_tf)
        if len(toks) != 2:
            raise NetlistError(loc, f"{cmd} needs an output V(n[,m]) or I(vsrc) and an input source")
        return AnalysisDecl("tf", "tf", {"out": toks[0].lower(), "in": toks[1].lower()}, loc)
    raise AssertionError(cmd)


_NOISE_OUT = re.compile(r"^\s*v\s*\(\s*([^,\s()]+)\s*(?:,\s*([^,\s()]+)\s*)?\)\s*$",
                        re.IGNORECASE)


def _noise_decls(toks: list[str], loc: Loc) -> list[AnalysisDecl]:
    """``.noise V(out[,ref]) src dec|oct|lin n fstart fstop [pts_per_summary]`` (or the ``noise``
    control command) tokens after the keyword → the spectrum analysis (run by
    ``sim/_noise_spice.py``) and, unless ``fstart`` and ``fstop`` are the same literal, the
    integrated one (both carry the same parameters; the second reuses the first's solution)."""
    if len(toks) not in (6, 7):
        raise NetlistError(loc, "noise needs V(out[,ref]) src dec|oct|lin points fstart fstop "
                                "[pts_per_summary]")
    m = _NOISE_OUT.match(toks[0])
    if not m:
        raise NetlistError(loc, f"noise: output must be V(node[,node]), not {toks[0]!r}")
    nodes = [nd.lower() for nd in m.groups() if nd is not None]
    nodes = ["0" if nd in ("0", "gnd") else nd for nd in nodes]
    mode = toks[2].lower()
    if mode not in ("dec", "oct", "lin"):
        raise NetlistError(loc, f"noise: sweep type must be dec, oct or lin, not {toks[2]!r}")
    p = {"out": "[" + ", ".join(f'"{nd}"' for nd in nodes) + "]", "in": f'"{toks[1].lower()}"',
         "mode": f'"{mode}"', "points": _expr(toks[3]), "from": _expr(toks[4]),
         "to": _expr(toks[5]), "summary": _expr(toks[6]) if len(toks) == 7 else "0"}
    out = [AnalysisDecl("noise", "noise", dict(p), loc)]
    if p["from"].strip().lower() != p["to"].strip().lower():
        out.append(AnalysisDecl("noise", "noise_int", dict(p), loc))
    return out


#: analyses of ngspice that va2jax does not run (a dot card or control command naming one is an error)
_OTHER_ANALYSES = {"pz", "sens", "disto", "sp", "pss", "hb", "four", "fourier"}
#: ``.control`` commands that change the circuit or the control flow: ignoring them would give
#: other results than ngspice, so they are errors
_CONTROL_UNSUPPORTED = {"alter", "altermod", "alterparam", "reset", "foreach", "while", "repeat",
                        "dowhile", "if", "else", "end", "break", "continue", "goto", "label",
                        "source", "shell", "compose", "linearize", "mc_source", "circbyline",
                        "remcirc", "setcirc", "destroy", "unlet", "optran", "stop", "step",
                        "resume", "iplot", "trace", "save_all"}
#: ``.options`` passed on to :class:`~va2jax.sim.engine.Options` (ngspice meaning = va2jax meaning)
_OPT_MAPPED = {"reltol", "abstol", "vntol", "chgtol", "trtol", "itl1", "itl4", "temp"}
#: ``.options`` that choose ngspice's linear solver or its output/accounting: no effect on results
_OPT_NO_EFFECT = {"klu", "sparse", "kluonly", "acct", "noacct", "norefvalue", "nopage", "noinit",
                  "list", "nomod", "node", "opts", "warn", "keepopinfo", "savecurrents", "numdgt"}


def _options(net: Netlist, toks: list[str], loc: Loc, state: dict) -> None:
    """``.options`` words and ``name=value`` pairs (see the module docstring for the mapping)."""
    for t in toks:
        k, v = t.split("=", 1) if "=" in t else (t, "")
        k = k.lower()
        v = _expr(v)
        if k in _OPT_NO_EFFECT:
            continue
        if k == "method":
            if v.lower() not in ("trap", "trapezoidal", "gear"):
                raise NetlistError(loc, f"option method={v}: unknown method (trap, gear)")
            state["method"] = ("trap" if v.lower().startswith("trap") else "gear", loc)
        elif k == "maxord":
            try:
                state["maxord"] = (int(float(v)), loc)
            except ValueError:
                raise NetlistError(loc, f"option maxord={v}: expected an integer") from None
        elif k == "tran_control":  # va2jax's: the step control of the transient
            if v.lower() not in ("ngspice", "vacask"):
                raise NetlistError(loc, f"option tran_control={v}: unknown step control "
                                        "(ngspice, vacask)")
            net.options[k] = f'"{v.lower()}"'
        elif k in _OPT_MAPPED and v:
            net.options[k] = v
        else:
            _warn(loc, f"ngspice option {k!r} is not supported by va2jax (ignored)")


def _integration(net: Netlist, state: dict) -> None:
    """``method`` and ``maxord`` → ``tran_method``: ngspice's default (trap, maxord 2) is the
    trapezoidal rule; gear with maxord 2 (its default) is BDF2 (va2jax ``gear2``); maxord=1 is
    backward Euler with either method. Higher gear orders are not implemented."""
    method, mloc = state["method"] or ("trap", None)
    maxord, oloc = state["maxord"] or (2, None)
    if maxord < 1:
        raise NetlistError(oloc, f"option maxord={maxord}: must be ≥ 1")
    if maxord > 2 and method == "gear":
        raise NetlistError(oloc, f"option maxord={maxord}: va2jax integrates with gear up to "
                                 "order 2 (maxord=1 or 2)")
    if state["method"] is None and state["maxord"] is None:
        return
    net.options["tran_method"] = '"be"' if maxord == 1 else ('"gear2"' if method == "gear" else '"trap"')


def _wave_defaults(net: Netlist, state: dict) -> None:
    """ngspice's source defaults that depend on the transient (``tstep``, ``tstop``): pulse
    rise/fall = tstep and width/period = tstop when absent or 0; sin freq = 1/tstop; exp
    td1 = tau1 = tau2 = tstep, td2 = td1 + tstep. Taken from the first ``tran`` that runs."""
    tran = next((a for a in net.analyses if a.kind == "tran"), None)
    if tran is None:
        return
    step, stop = f"({tran.params['step']})", f"({tran.params['stop']})"

    def positive_or(p: dict[str, str], key: str, default: str) -> None:
        v = p.get(key)
        if v is None:
            p[key] = default
            return
        n = parse_number(v)
        if n is None:
            p[key] = f"(({v}) > 0 ? ({v}) : {default})"
        elif n <= 0:
            p[key] = default

    for p, kind in state["waves"]:
        if kind == "pulse":
            positive_or(p, "rise", step)
            positive_or(p, "fall", step)
            positive_or(p, "width", stop)
            positive_or(p, "period", stop)
        elif kind == "sin":
            positive_or(p, "freq", f"1/{stop}")
        elif kind == "exp":
            p.setdefault("td1", step)
            p.setdefault("tau1", step)
            p.setdefault("td2", f"({p['td1']}) + {step}")
            p.setdefault("tau2", step)


def _control(net: Netlist, cmd: str, toks: list[str], loc: Loc, state: dict) -> bool:
    """One ``.control`` command; returns False after ``quit``/``exit`` (ngspice runs nothing
    after it)."""
    ctl = state["control"]
    if cmd in ("tran", "op", "dc", "ac", "tf"):
        ctl.append(_analysis(cmd, toks, loc, state))
    elif cmd == "noise":  # spectrum noiseK and integrated noiseK+1, as ngspice
        ctl.extend(_noise_decls(toks, loc))
    elif cmd == "run":
        ctl.extend(state["dot"])
    elif cmd in ("quit", "exit"):
        return False
    elif cmd == "save":
        net.saves.extend(toks)
    elif cmd == "pre_osdi":
        if len(toks) != 1:
            raise NetlistError(loc, "pre_osdi needs one OSDI file name")
        _need(net, state, toks[0].strip("'\""), loc)
        state["osdi"] = True
    elif cmd in ("option", "options"):
        _options(net, toks, loc, state)
    elif cmd in _OTHER_ANALYSES:
        raise NetlistError(loc, f"ngspice analysis {cmd!r} is not supported (op, dc, ac, tran, "
                                "tf, noise)")
    elif cmd in _CONTROL_UNSUPPORTED:
        raise NetlistError(loc, f".control command {cmd!r} is not supported (it would change "
                                "the circuit or the control flow)")
    else:
        _warn(loc, f".control command {cmd!r} ignored")
    return True


def _parse(net: Netlist, text: str, path: Path, top: Subckt, state: dict,
           stack: tuple[Path, ...]) -> None:
    """Cards of ``text`` (of ``path``); ``stack``: the files being read, this one last."""
    cur = top
    in_control = False
    running = True
    for line, loc in _lines(text, str(path), title=len(stack) == 1):
        toks = _tokens(line)
        head = toks[0].lower()
        if in_control:
            if head == ".endc":
                in_control = False
            elif running:
                running = _control(net, head, toks[1:], loc, state)
            continue
        if head.startswith("."):
            if head == ".control":
                if state["control"] is not None:
                    raise NetlistError(loc, "a second .control block is not supported")
                state["control"] = []
                in_control = True
            elif head == ".endc":
                raise NetlistError(loc, ".endc without .control")
            elif head == ".end":
                break
            elif head == ".ends":
                if cur is top:
                    raise NetlistError(loc, ".ends without .subckt")
                cur = top
            elif head == ".subckt":
                if len(toks) < 2:
                    raise NetlistError(loc, ".subckt needs a name")
                # terminals, also in parentheses as ngspice accepts: .subckt inv (in out) w=1u
                nodes = [n for t in toks[2:] if "=" not in t and t.lower() != "params:"
                         for n in (t[1:-1].split() if t.startswith("(") and t.endswith(")") else [t])]
                params = _kv([t for t in toks[2:] if "=" in t], loc)
                cur = Subckt(toks[1].lower(), [n.lower() for n in nodes], params, loc=loc)
                net.subckts[cur.name] = cur
            elif head in (".param", ".params"):
                cur.params.update(_kv(toks[1:], loc))
            elif head in (".include", ".inc", ".lib"):
                if len(toks) < 2:
                    raise NetlistError(loc, f"{head} needs a file name")
                fname = toks[1].strip("'\"")
                if len(stack) > 20:
                    raise NetlistError(loc, "include nesting too deep")
                inc, inc_text = read_include(loc, path, fname, stack)
                _parse(net, inc_text, inc, cur, state, stack + (inc.resolve(),))
            elif head == ".model":
                _model(net, cur, toks, loc, state)
            elif head == ".options" or head == ".option":
                _options(net, toks[1:], loc, state)
            elif head == ".temp":
                net.options["temp"] = toks[1]
            elif head[1:] in ("op", "tran", "dc", "ac", "tf"):
                state["dot"].append(_analysis(head[1:], toks[1:], loc, state))
            elif head == ".noise":
                state["dot"].extend(_noise_decls(toks[1:], loc))
            elif head == ".global":
                net.globals.update(t.lower() for t in toks[1:])
            elif head in (".save", ".print", ".plot", ".probe", ".title"):
                pass
            elif head in (".meas", ".measure", ".width"):  # post-processing of the results
                _warn(loc, f"ngspice card {toks[0]!r} ignored")
            elif head[1:] in _OTHER_ANALYSES:
                raise NetlistError(loc, f"ngspice analysis {toks[0]!r} is not supported "
                                        "(.op, .dc, .ac, .tran, .tf, .noise)")
            else:
                raise NetlistError(loc, f"unsupported SPICE card {toks[0]!r}")
            continue
        _element(net, cur, toks, loc, state)
    if cur is not top:
        raise NetlistError(cur.loc, f".subckt {cur.name} has no .ends")
    if in_control:
        raise NetlistError(None, f"{path}: .control block has no .endc")


def _model(net: Netlist, cur: Subckt, toks: list[str], loc: Loc, state: dict) -> None:
    if len(toks) < 3:
        raise NetlistError(loc, ".model needs a name and a type")
    name = toks[1].lower()
    rest = " ".join(toks[2:])
    m = re.match(r"(\w+)\s*\(?(.*?)\)?\s*$", rest)
    assert m
    mtype = m.group(1).lower()
    params = _kv(_tokens(m.group(2)), loc)
    if mtype == "d":
        module, lib = "sp_diode", "spice/diode.osdi"
    elif mtype in ("nmos", "pmos"):
        level = params.pop("level", "1")
        level = str(int(float(level)))
        if level not in _MOS_LEVELS:
            raise NetlistError(loc, f"MOSFET level {level} is not supported "
                                    f"(levels {', '.join(sorted(_MOS_LEVELS, key=int))})")
        module, lib = _MOS_LEVELS[level]
        params["type"] = "1" if mtype == "nmos" else "-1"
        params.pop("version", None)
    elif mtype in ("npn", "pnp"):
        module, lib = "sp_bjt", "spice/bjt.osdi"
        params["type"] = "1" if mtype == "npn" else "-1"
    elif mtype in ("r", "c", "l"):
        module, lib = {"r": "resistor", "c": "capacitor", "l": "inductor"}[mtype], ""
    else:
        # with ``pre_osdi`` (its .control command may come later) a type names an OSDI module
        module, lib = mtype, ""
        state["osdi_models"].append((mtype, loc))
    if lib:
        _need(net, state, lib, loc)
    cur.models[name] = ModelCard(name, module, params, loc)


_VALUE = re.compile(r"^[-+.\d{']")
#: source functions of ngspice that va2jax does not implement
_SRC_UNSUPPORTED = ("am", "sffm", "trnoise", "trrandom", "pat", "distof1", "distof2", "ext")


def _source(toks: list[str], loc: Loc, state: dict) -> dict[str, str]:
    """``[[dc] v] [ac mag [phase]] [func]`` of an independent source → ``vsource``/``isource``
    parameters. ``func`` is ``pulse``, ``sin``, ``exp`` or ``pwl`` with its arguments in
    parentheses or, as ngspice also reads them, without (``pulse 0 1 1u 1u 1u 1m 2m``): the
    values up to the next keyword. ``pwl`` may be followed by ``td=`` (delay)."""
    p: dict[str, str] = {}
    i = 0
    while i < len(toks):
        t = toks[i]
        tl = t.lower()
        fn = re.match(r"(\w+)\s*\((.*)\)$", t, re.DOTALL)
        kind = (fn.group(1) if fn else t).lower()
        if kind in ("pulse", "sin", "sine", "pwl", "exp"):
            if fn:
                args = [_expr(a) for a in _tokens(fn.group(2))]
                i += 1
            elif i + 1 < len(toks) and toks[i + 1].startswith("("):
                args = [_expr(a) for a in _tokens(toks[i + 1][1:-1])]
                i += 2
            else:
                i += 1
                args = []
                while i < len(toks) and _VALUE.match(toks[i]):
                    args.append(_expr(toks[i]))
                    i += 1
            if "type" in p:
                raise NetlistError(loc, f"a source has one function, found {kind!r} after another")
            kind = "sin" if kind == "sine" else kind
            if kind == "pwl":
                if len(args) < 2 or len(args) % 2:
                    raise NetlistError(loc, "pwl needs pairs of time and value")
                delay = None
                while i < len(toks) and "=" in toks[i] and toks[i].split("=")[0].lower() in ("td", "r"):
                    k, v = toks[i].split("=", 1)
                    if k.lower() == "r":
                        raise NetlistError(loc, "pwl r= (repeat) is not supported")
                    delay = _expr(v)
                    i += 1
                p["type"] = '"pwl"'
                pts = [f"({a}) + ({delay})" if delay and j % 2 == 0 else f"({a})"
                       for j, a in enumerate(args)]
                p["wave"] = "[" + " ".join(pts) + "]"
            else:
                if len(args) > len(_SRC_ARGS[kind]):
                    raise NetlistError(loc, f"{kind} takes at most {len(_SRC_ARGS[kind])} values, "
                                            f"found {len(args)}")
                p["type"] = {"pulse": '"pulse"', "sin": '"sine"', "exp": '"exp"'}[kind]
                for k, a in zip(_SRC_ARGS[kind], args):
                    p[k] = a
            state["waves"].append((p, kind))
        elif kind in _SRC_UNSUPPORTED:
            raise NetlistError(loc, f"source function {kind!r} is not supported (pulse, sin, exp, pwl)")
        elif tl == "dc" and i + 1 < len(toks):
            p["dc"] = _expr(toks[i + 1])
            i += 2
        elif tl == "ac" and i + 1 < len(toks):
            p["mag"] = _expr(toks[i + 1])
            i += 2
            if i < len(toks) and _VALUE.match(toks[i]):
                p["phase"] = _expr(toks[i])
                i += 1
        elif "=" in t:
            k, v = t.split("=", 1)
            p[k.lower()] = _expr(v)
            i += 1
        elif _VALUE.match(t) and "dc" not in p:
            p["dc"] = _expr(t)
            i += 1
        else:
            raise NetlistError(loc, f"cannot parse source specification {t!r}")
    return p


def _element(net: Netlist, cur: Subckt, toks: list[str], loc: Loc, state: dict) -> None:
    name = toks[0]
    kind = name[0].lower()
    lname = name.lower()

    def nodes(k: int) -> list[str]:
        if len(toks) < k + 1:
            raise NetlistError(loc, f"element {name} needs {k} nodes")
        return [t.lower() for t in toks[1:k + 1]]

    def add(nds: list[str], master: str, params: dict[str, str]) -> None:
        cur.instances.append(InstanceDecl(lname, nds, master, params, loc))

    if kind in "rcl":
        nd = nodes(2)
        rest = toks[3:]
        main = {"r": "r", "c": "c", "l": "l"}[kind]
        module = {"r": "resistor", "c": "capacitor", "l": "inductor"}[kind]
        params: dict[str, str] = {}
        for t in rest:
            if "=" in t:
                k, v = t.split("=", 1)
                k = k.lower()
                params[main if k in (main, "value") else k] = _expr(v)
            elif main not in params:
                params[main] = _expr(t)
            else:
                # model name (semiconductor R/C): not supported
                raise NetlistError(loc, f"element {name}: unexpected {t!r}")
        if main not in params:
            raise NetlistError(loc, f"element {name}: missing value")
        params.pop("tc1", None)
        params.pop("tc2", None)
        add(nd, module, params)
    elif kind in "vi":
        nd = nodes(2)
        add(nd, "vsource" if kind == "v" else "isource", _source(toks[3:], loc, state))
    elif kind == "d":
        nd = nodes(2)
        if len(toks) < 4:
            raise NetlistError(loc, f"diode {name} needs a model name")
        p = _kv([t for t in toks[4:] if "=" in t], loc)
        pos = [t for t in toks[4:] if "=" not in t and t.lower() != "off"]
        if pos:
            p["area"] = _expr(pos[0])
        add(nd, toks[3].lower(), p)
    elif kind == "m":
        nd = nodes(4)
        if len(toks) < 6:
            raise NetlistError(loc, f"MOSFET {name} needs a model name")
        add(nd, toks[5].lower(), _kv(toks[6:], loc))
    elif kind == "q":
        # c b e [s] model
        rest = toks[1:]
        plain = [t for t in rest if "=" not in t]
        if len(plain) < 4:
            raise NetlistError(loc, f"BJT {name} needs 3 nodes and a model")
        if len(plain) >= 5 and plain[4].lower() in cur.models or len(plain) >= 5 and \
                plain[4].lower() in net.top.models:
            nds, model = plain[:4], plain[4]
        else:
            nds, model = plain[:3] + ["0"], plain[3]
        add([n.lower() for n in nds], model.lower(), _kv([t for t in rest if "=" in t], loc))
    elif kind == "x":
        plain = [t for t in toks[1:] if "=" not in t and t.lower() != "params:"]
        if not plain:
            raise NetlistError(loc, f"subcircuit instance {name} needs a subcircuit name")
        add([n.lower() for n in plain[:-1]], plain[-1].lower(),
            _kv([t for t in toks[1:] if "=" in t], loc))
    elif kind == "n":
        # N: an instance of a device loaded with pre_osdi: nodes… model params
        plain = [t for t in toks[1:] if "=" not in t]
        if len(plain) < 2:
            raise NetlistError(loc, f"OSDI instance {name} needs nodes and a model name")
        add([n.lower() for n in plain[:-1]], plain[-1].lower(),
            _kv([t for t in toks[1:] if "=" in t], loc))
    elif kind in "eg":
        nd = nodes(4)
        if len(toks) < 6:
            raise NetlistError(loc, f"element {name} needs a gain")
        add(nd, "vcvs" if kind == "e" else "vccs", {"gain": _expr(toks[5])})
    else:
        raise NetlistError(loc, f"unsupported SPICE element {name!r} (R C L V I D M Q X E G N)")
