"""Reader for a SPICE (ngspice) netlist subset, mapped onto the same :class:`Netlist` model.

Elements: R C L V I D M Q X E G. Dot cards: ``.model .subckt/.ends .param .include .op .dc .tran
.ac .options .end`` (``.control`` blocks are skipped). Continuation ``+``, comments ``*`` at line
start and ``;``/``$`` inline. Names and keywords are case-insensitive (node names kept as written,
lower-cased).

Semiconductor devices use the SPICE-in-Verilog-A models of the corpus (``bosdi/spice``), loaded as
``spice/<name>.osdi`` (which the model library resolves to the ``.va`` or the OSDI library):

    D                       → sp_diode     (spice/diode)
    M level=14 or 54        → sp_bsim4v8   (spice/bsim4v8), nmos: type=1, pmos: type=-1
    M level=1 (default)     → sp_mos1      (spice/mos1)
    Q                       → sp_bjt       (spice/bjt), npn: type=1, pnp: type=-1
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
    read_include,
    start_netlist,
)

_SRC_ARGS = {
    "pulse": ["val0", "val1", "delay", "rise", "fall", "width", "period"],
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
        s = re.split(r"\s[;$]|^[;$]", s)[0] if re.search(r"(^|\s)[;$]", s) else s
        if s.lstrip().startswith("+") and out:
            prev, loc = out[-1]
            out[-1] = (prev + " " + s.lstrip()[1:], loc)
        elif s.strip():
            out.append((s.strip(), Loc(fname, i)))
    return out


def _tokens(s: str) -> list[str]:
    """Split on whitespace, keeping ``{...}``, ``'...'`` and ``name(...)`` groups together."""
    toks: list[str] = []
    i, n = 0, len(s)
    s = re.sub(r"\s*=\s*", "=", s)
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
    """Read a SPICE netlist (first line is the title)."""
    path = Path(path)
    net, top, text = start_netlist(path, text, "spice")
    net.ground.add("gnd")
    state = {"loads": set()}
    _parse(net, text, path, top, state, (path.resolve(),))
    return net


def _need(net: Netlist, state: dict, lib: str, loc: Loc) -> None:
    if lib not in state["loads"]:
        state["loads"].add(lib)
        net.loads.append((lib, loc))


def _parse(net: Netlist, text: str, path: Path, top: Subckt, state: dict,
           stack: tuple[Path, ...]) -> None:
    """Cards of ``text`` (of ``path``); ``stack``: the files being read, this one last."""
    cur = top
    in_control = False
    ntran = {"op": 0, "dc": 0, "tran": 0, "ac": 0}
    for line, loc in _lines(text, str(path), title=len(stack) == 1):
        low = line.lower()
        if in_control:
            if low.startswith(".endc"):
                in_control = False
            continue
        toks = _tokens(line)
        head = toks[0].lower()
        if head.startswith("."):
            if head == ".control":
                in_control = True
            elif head == ".end":
                break
            elif head == ".ends":
                if cur is top:
                    raise NetlistError(loc, ".ends without .subckt")
                cur = top
            elif head == ".subckt":
                if len(toks) < 2:
                    raise NetlistError(loc, ".subckt needs a name")
                nodes = [t for t in toks[2:] if "=" not in t and t.lower() != "params:"]
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
                for t in toks[1:]:
                    if "=" in t:
                        k, v = t.split("=", 1)
                        v = _expr(v)
                        net.options[k.lower()] = v if re.match(r"^[-+.\d]", v) else f'"{v}"'
            elif head == ".temp":
                net.options["temp"] = toks[1]
            elif head == ".op":
                ntran["op"] += 1
                net.analyses.append(AnalysisDecl(f"op{ntran['op']}", "op", {}, loc))
            elif head == ".tran":
                ntran["tran"] += 1
                args = [t for t in toks[1:] if t.lower() != "uic"]
                p = {"step": args[0], "stop": args[1]} if len(args) >= 2 else None
                if p is None:
                    raise NetlistError(loc, ".tran needs tstep and tstop")
                if len(args) > 2:
                    p["start"] = args[2]
                if len(args) > 3:
                    p["maxstep"] = args[3]
                if any(t.lower() == "uic" for t in toks):
                    p["icmode"] = '"uic"'
                net.analyses.append(AnalysisDecl(f"tran{ntran['tran']}", "tran", p, loc))
            elif head == ".dc":
                if len(toks) < 5:
                    raise NetlistError(loc, ".dc needs source start stop step")
                ntran["dc"] += 1
                sw = {"instance": f'"{toks[1].lower()}"', "parameter": '"dc"', "from": toks[2],
                      "to": toks[3], "step": toks[4]}
                net.analyses.append(AnalysisDecl(f"dc{ntran['dc']}", "op", {}, loc, sweep=sw))
            elif head == ".ac":
                if len(toks) < 5:
                    raise NetlistError(loc, ".ac needs dec|oct|lin points fstart fstop")
                ntran["ac"] += 1
                net.analyses.append(AnalysisDecl(f"ac{ntran['ac']}", "ac", {
                    "mode": f'"{toks[1].lower()}"', "points": toks[2], "from": toks[3],
                    "to": toks[4]}, loc))
            elif head in (".save", ".print", ".plot", ".probe", ".global", ".title"):
                pass
            else:
                raise NetlistError(loc, f"unsupported SPICE card {toks[0]!r}")
            continue
        _element(net, cur, toks, loc, state)
    if cur is not top:
        raise NetlistError(cur.loc, f".subckt {cur.name} has no .ends")


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
        raise NetlistError(loc, f"unsupported .model type {mtype!r} (d, nmos, pmos, npn, pnp)")
    if lib:
        _need(net, state, lib, loc)
    cur.models[name] = ModelCard(name, module, params, loc)


def _source(toks: list[str], loc: Loc) -> dict[str, str]:
    p: dict[str, str] = {}
    i = 0
    while i < len(toks):
        t = toks[i]
        tl = t.lower()
        fn = re.match(r"(pulse|sin|sine|pwl|exp)\s*\((.*)\)$", t, re.IGNORECASE | re.DOTALL)
        if fn:
            kind = fn.group(1).lower()
            args = [_expr(a) for a in _tokens(fn.group(2))]
            if kind == "pwl":
                p["type"] = '"pwl"'
                p["wave"] = "[" + " ".join(f"({a})" for a in args) + "]"
            else:
                kind = "sin" if kind == "sine" else kind
                p["type"] = {"pulse": '"pulse"', "sin": '"sine"', "exp": '"exp"'}[kind]
                for k, a in zip(_SRC_ARGS[kind], args):
                    p[k] = a
                if kind == "sin" and len(args) > 4:
                    p["damp"] = args[4]
            i += 1
        elif tl == "dc" and i + 1 < len(toks):
            p["dc"] = _expr(toks[i + 1])
            i += 2
        elif tl == "ac" and i + 1 < len(toks):
            p["mag"] = _expr(toks[i + 1])
            i += 2
            if i < len(toks) and re.match(r"^[-+.\d{']", toks[i]):
                p["phase"] = _expr(toks[i])
                i += 1
        elif "=" in t:
            k, v = t.split("=", 1)
            p[k.lower()] = _expr(v)
            i += 1
        elif re.match(r"^[-+.\d{']", t) and "dc" not in p:
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
        add(nd, "vsource" if kind == "v" else "isource", _source(toks[3:], loc))
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
    elif kind in "eg":
        nd = nodes(4)
        if len(toks) < 6:
            raise NetlistError(loc, f"element {name} needs a gain")
        add(nd, "vcvs" if kind == "e" else "vccs", {"gain": _expr(toks[5])})
    else:
        raise NetlistError(loc, f"unsupported SPICE element {name!r} (R C L V I D M Q X E G)")
