"""Netlist data model shared by the VACASK and SPICE readers, and hierarchy flattening.

A reader produces a :class:`Netlist` (hierarchical, parameters as unevaluated expression text);
:func:`elaborate` flattens subcircuits, evaluates every expression and returns a
:class:`FlatCircuit` whose instances name a *master* (a model card or a device module) and carry
numeric parameters. Every object keeps its :class:`Loc` so that errors name file and line.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import Va2JaxError, suggest
from .expr import ExprError, Value, evaluate


@dataclass(frozen=True)
class Loc:
    """A place in a netlist file (1-based line)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class NetlistError(Va2JaxError):
    """A netlist mistake; the message starts with ``file:line:``."""

    def __init__(self, loc: Loc | None, msg: str):
        super().__init__(f"{loc}: {msg}" if loc else msg)
        self.loc = loc


@dataclass
class ModelCard:
    """``model NAME MODULE (params)`` / ``.model NAME TYPE (params)``."""

    name: str
    module: str
    params: dict[str, str]
    loc: Loc
    #: VACASK ``@if`` inside a subckt: used only where this expression of the subcircuit's
    #: parameters is nonzero (``""``: always)
    cond: str = ""


@dataclass
class InstanceDecl:
    """An instance line before flattening: parameter values are expression text."""

    name: str
    nodes: list[str]
    master: str
    params: dict[str, str]
    loc: Loc
    cond: str = ""  # as ModelCard.cond


@dataclass
class Subckt:
    name: str
    terminals: list[str]
    params: dict[str, str]  # defaults (expression text)
    instances: list[InstanceDecl] = field(default_factory=list)
    models: dict[str, ModelCard] = field(default_factory=dict)
    loc: Loc | None = None
    #: subcircuits defined inside this one (VACASK): name (lower case) → key in Netlist.subckts
    defs: dict[str, str] = field(default_factory=dict)


@dataclass
class AnalysisDecl:
    """``analysis NAME TYPE params`` (VACASK) or ``.tran``/``.op``/… (SPICE, named tran1, op1…)."""

    name: str
    kind: str  # op | dc | tran | ac
    params: dict[str, str]
    loc: Loc
    sweep: dict[str, str] | None = None  # DC sweep: instance, parameter, from, to, step | values
    #: VACASK: the ``sweep`` statements before the analysis, outermost first (``sweep`` is the
    #: last of them)
    sweeps: list[dict[str, str]] = field(default_factory=list)
    #: subcircuits instantiated at top level for this analysis (VACASK ``elaborate circuit(...)``
    #: in effect when the analysis was read; empty: the top level alone)
    circuit: tuple[str, ...] = ()
    #: VACASK ``save`` directives read before the analysis (``sim._saves.Save``)
    saves: tuple = ()
    #: VACASK: the ``options`` read before the analysis (name → expression text); ``None``:
    #: the netlist's options (SPICE)
    options: dict[str, str] | None = None
    #: VACASK: the control ``var`` values read before the analysis (name → expression text);
    #: ``None``: the netlist's (SPICE)
    variables: dict[str, str] | None = None
    #: VACASK: the ``alter`` commands read before the analysis since the last ``elaborate``
    #: (``sim._alter.Alter``)
    alters: tuple = ()
    #: when this analysis fails (VACASK's ``abort`` mode): ``"stop"``; ``"continue"`` (VACASK's
    #: default: the analyses after it run, the run fails at the end); ``"ignore"`` (``abort
    #: never``: it succeeds); ``None``: stop (SPICE)
    abort: str | None = None


@dataclass
class Netlist:
    title: str
    top: Subckt
    subckts: dict[str, Subckt] = field(default_factory=dict)
    loads: list[tuple[str, Loc]] = field(default_factory=list)
    analyses: list[AnalysisDecl] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)
    saves: list[str] = field(default_factory=list)
    ground: set[str] = field(default_factory=lambda: {"0"})
    dialect: str = "vacask"
    path: Path | None = None
    globals: set[str] = field(default_factory=set)  # nodes shared by all subcircuits (.global, global)
    variables: dict[str, str] = field(default_factory=dict)  # VACASK control ``var`` (text)
    overrides: dict[str, str] = field(default_factory=dict)  # swept top-level parameters (text)
    #: ``elaborate circuit("a", ...)`` statements: (subcircuit names, location)
    elaborations: list[tuple[tuple[str, ...], Loc]] = field(default_factory=list)
    control_loc: Loc | None = None  # VACASK: where the (only) control block starts


@dataclass
class FlatInstance:
    """A leaf instance after flattening: ``u1.mn (u1.x vdd 0 0) nmos w=1e-5 l=1e-6``."""

    name: str
    nodes: list[str]
    master: str  # model card name or module name (lower-case lookups done later)
    params: dict[str, Value]
    loc: Loc


@dataclass
class FlatModel:
    name: str
    module: str
    params: dict[str, Value]
    loc: Loc


@dataclass
class FlatCircuit:
    title: str
    instances: list[FlatInstance]
    models: dict[str, FlatModel]  # key: lower-case name (flattened name for subckt-local cards)
    loads: list[tuple[str, Loc]]
    analyses: list[AnalysisDecl]
    options: dict[str, Value]
    saves: list[str]
    ground: set[str]
    dialect: str
    path: Path | None
    params: dict[str, Value]  # top-level parameters
    circuit: tuple[str, ...] = ()  # the subcircuits elaborated at top level beside it


#: suffixes of netlist files: text of others (e.g. an included system file) is never quoted
NETLIST_SUFFIXES = {".sim", ".inc", ".include", ".lib", ".cir", ".sp", ".spi", ".spice", ".net",
                    ".ckt", ".mod", ".model", ".l", ".scs"}


def check_tran_times(stop: float, step: float | None = None, maxstep: float | None = None,
                     loc: Loc | None = None, what: str = "tran") -> None:
    """Refuse a transient whose ``stop`` (s), ``step`` or ``maxstep`` (s; ``None``: default) is
    not a finite number > 0 — a zero or negative step would never advance (or run backwards)."""
    for name, v in (("stop", stop), ("step", step), ("maxstep", maxstep)):
        if v is None and name != "stop":
            continue
        if v is None or not math.isfinite(float(v)) or float(v) <= 0:
            raise NetlistError(loc, f"{what}: {name} must be a finite time > 0 s, got {v!r}")


def read_include(loc: Loc, including: Path, fname: str, stack: tuple[Path, ...]) -> tuple[Path, str]:
    """Resolve ``include "fname"`` of the file ``including`` (relative to its folder) and read it.

    ``stack``: the files being read (resolved), outermost first. A file that includes itself,
    directly or through others, is an error naming it; so is binary content (NUL bytes).
    """
    inc = Path(fname) if Path(fname).is_absolute() else including.parent / fname
    if not inc.is_file():
        raise NetlistError(loc, f"included file {fname!r} not found")
    if inc.resolve() in stack:
        raise NetlistError(loc, f"recursive include of {fname}")
    try:
        data = inc.read_bytes()
    except OSError as exc:
        raise NetlistError(loc, f"cannot read included file {fname!r}: {exc.strerror}") from None
    if b"\0" in data:
        raise NetlistError(loc, f"included file {fname!r} is not a netlist (binary content)")
    return inc, data.decode("utf-8", errors="replace")  # as the top-level netlist is read


def private(exc: NetlistError, top: Path) -> NetlistError:
    """``exc`` without its text when it concerns a file other than the netlist ``top`` whose
    suffix is not a netlist's (its message would quote that file's content)."""
    loc = exc.loc
    if loc is None or Path(loc.file).suffix.lower() in NETLIST_SUFFIXES:
        return exc
    if Path(loc.file).resolve() == Path(top).resolve():
        return exc
    return NetlistError(loc, "not a netlist (cannot parse it; its content is not shown)")


def start_netlist(path: str | Path, text: str | None, dialect: str) -> tuple[Netlist, Subckt, str]:
    """Read ``path`` (unless ``text`` is given) and create its :class:`Netlist` (title = first
    line) with an empty top level. Returns (netlist, top level, text)."""
    path = Path(path)
    if text is None:
        try:
            text = path.read_text()
        except OSError as exc:
            raise NetlistError(None, f"cannot read netlist {path}: {exc.strerror}") from None
    title = text.split("\n", 1)[0].strip()
    top = Subckt("<top>", [], {}, loc=Loc(str(path), 1))
    return Netlist(title, top, dialect=dialect, path=path), top, text


def _real(v: Value) -> Value:
    """A device parameter's value: VACASK's integers become floats (devices take reals)."""
    return float(v) if isinstance(v, int) and not isinstance(v, bool) else v


def _eval(text: str, scope: dict[str, Value], loc: Loc, what: str, dialect: str) -> Value:
    try:
        return evaluate(text, scope, dialect)
    except ExprError as exc:
        raise NetlistError(loc, f"{what}: {exc}") from None


def check_elaborations(net: Netlist) -> None:
    """Every ``elaborate circuit("name", …)`` names a subcircuit without terminals (VACASK's
    rule: only definitions of the default top level, instantiated with no connections)."""
    subs = {k.lower(): s for k, s in net.subckts.items()}
    for names, loc in net.elaborations:
        for nm in names:
            sub = subs.get(nm.lower())
            if sub is None:
                raise NetlistError(loc, f"elaborate: no subcircuit named {nm!r}"
                                        + suggest(nm, net.subckts))
            if sub.terminals:
                raise NetlistError(loc, f"elaborate: subcircuit {sub.name} has terminals "
                                        f"({' '.join(sub.terminals)}); only one without "
                                        "terminals can be a top-level circuit")


def hier_sep(dialect: str) -> str:
    """The separator of hierarchical names: ``x1:n`` in VACASK (as its rawfiles name them),
    ``x1.n`` for SPICE netlists."""
    return ":" if dialect == "vacask" else "."


def _vacask_lower(params: Mapping[str, Any], loc: Loc, where: str) -> None:
    """VACASK lowercases the parameter names of a device (an OSDI module's, its own built-in
    ones') and matches a netlist's names exactly: ``IS=`` or ``Is=`` is no parameter there."""
    for k in params:
        if k != k.lower():
            raise NetlistError(loc, f"{where}: no parameter {k!r} (VACASK's device parameter names "
                                    f"are lower case: {k.lower()!r})")


def elaborate(net: Netlist, circuit: tuple[str, ...] = ()) -> FlatCircuit:
    """Flatten the hierarchy and evaluate all parameter expressions.

    Node names inside a subcircuit instance ``u1`` become ``u1:node`` (VACASK; ``u1.node`` for
    SPICE, :func:`hier_sep`) except for its terminals (replaced by the connected nets), ground
    names and ``global`` nodes. Instance names become ``u1:mn``.

    ``circuit``: names of subcircuits (without terminals) instantiated at top level beside the
    top-level instances, as VACASK's ``elaborate circuit("name", …)`` does: their instances and
    nodes keep their own names (no prefix), their parameters take their defaults evaluated
    with the top-level parameters in scope, and an instance name used twice is an error.
    """
    sep = hier_sep(net.dialect)
    top_scope: dict[str, Value] = {}
    for k, v in net.top.params.items():
        top_scope[k] = _eval(v, top_scope, net.top.loc or Loc(str(net.path), 0), f"parameter {k}", net.dialect)
    models: dict[str, FlatModel] = {}
    flat: list[FlatInstance] = []
    subckts_low = {k.lower(): s for k, s in net.subckts.items()}
    vacask = net.dialect == "vacask"
    spelled: dict[str, str] = {}  # model key → the card's name as written

    def add_models(cards: dict[str, ModelCard], scope: dict[str, Value], prefix: str) -> dict[str, str]:
        local: dict[str, str] = {}
        for card in cards.values():
            if card.cond and not _eval(card.cond, scope, card.loc, "@if condition", net.dialect):
                continue
            if vacask:
                _vacask_lower(card.params, card.loc, f"model {card.name}")
            params = {k: _real(_eval(v, scope, card.loc, f"model {card.name} parameter {k}", net.dialect))
                      for k, v in card.params.items()}
            key = (prefix + card.name).lower()
            if vacask and key in spelled and spelled[key] != card.name:
                raise NetlistError(card.loc, f"model {card.name}: a model {spelled[key]!r} is defined "
                                             "too (va2jax does not tell names apart by case; "
                                             "VACASK does)")
            models[key] = FlatModel(prefix + card.name, card.module, params, card.loc)
            local[card.name.lower()] = key
            spelled[key] = card.name
        return local

    def walk(sub: Subckt, scope: dict[str, Value], prefix: str, nodemap: dict[str, str],
             model_scope: dict[str, str], depth: int) -> None:
        if depth > 50:
            raise NetlistError(sub.loc, f"subcircuit recursion too deep in {sub.name}")
        local_models = dict(model_scope)
        local_models.update(add_models(sub.models, scope, prefix))

        def node(n: str) -> str:
            if n in net.ground:
                return "0"
            if n in net.globals:
                return n
            if n in nodemap:
                return nodemap[n]
            if n in net.globals:
                return n
            return prefix + n

        for inst in sub.instances:
            if inst.cond and not _eval(inst.cond, scope, inst.loc, "@if condition", net.dialect):
                continue
            master_low = inst.master.lower()
            nodes = [node(n) for n in inst.nodes]
            own = any(c.name.lower() == master_low for c in sub.models.values())
            child = None
            if master_low in sub.defs and not own:  # VACASK: own models, own definitions,
                child = net.subckts[sub.defs[master_low]]  # then the top level's
            elif master_low in subckts_low and master_low not in local_models:
                child = subckts_low[master_low]
            if vacask:  # VACASK's names are case-sensitive: the master as defined
                found = child.name if child is not None else spelled.get(local_models.get(master_low, ""))
                if found is not None and found != inst.master:
                    raise NetlistError(inst.loc, f"instance {inst.name}: master {inst.master!r} not "
                                                 f"found (names are case-sensitive in VACASK: "
                                                 f"{found!r} is)")
            if child is not None:
                if len(nodes) != len(child.terminals):
                    raise NetlistError(inst.loc, f"instance {inst.name} of subcircuit {child.name} "
                                                 f"has {len(nodes)} nodes, expected "
                                                 f"{len(child.terminals)} ({' '.join(child.terminals)})")
                cscope = dict(top_scope)
                for k, v in child.params.items():
                    if k not in inst.params:
                        cscope[k] = _eval(v, cscope, child.loc or inst.loc, f"parameter {k}", net.dialect)
                for k, v in inst.params.items():
                    if not any(k.lower() == p.lower() for p in child.params):
                        raise NetlistError(inst.loc, f"unknown parameter {k!r} for subcircuit "
                                                     f"{child.name}" + suggest(k, child.params))
                    if vacask and k not in child.params:
                        other = next(p for p in child.params if p.lower() == k.lower())
                        raise NetlistError(inst.loc, f"instance {inst.name}: unknown parameter {k!r} "
                                                     f"of subcircuit {child.name} (names are "
                                                     f"case-sensitive in VACASK: {other!r} is)")
                    cscope[k] = _eval(v, scope, inst.loc, f"instance {inst.name} parameter {k}", net.dialect)
                cmap = dict(zip(child.terminals, nodes))
                walk(child, cscope, prefix + inst.name + sep, cmap, local_models, depth + 1)
                continue
            if vacask:
                _vacask_lower(inst.params, inst.loc, f"instance {inst.name}")
            params = {k: _real(_eval(v, scope, inst.loc, f"instance {inst.name} parameter {k}", net.dialect))
                      for k, v in inst.params.items()}
            master = local_models.get(master_low, inst.master)
            flat.append(FlatInstance(prefix + inst.name, nodes, master, params, inst.loc))

    walk(net.top, top_scope, "", {}, {}, 0)
    top_models = {card.name.lower(): card.name.lower() for card in net.top.models.values()}
    for name in circuit:
        sub = subckts_low.get(name.lower())
        if sub is None or sub.terminals:
            raise NetlistError(net.top.loc, f"elaborate: no subcircuit {name!r} without terminals")
        scope = dict(top_scope)
        for k, v in sub.params.items():
            scope[k] = _eval(v, scope, sub.loc or net.top.loc, f"parameter {k}", net.dialect)
        walk(sub, scope, "", {}, top_models, 1)
    seen: dict[str, FlatInstance] = {}
    for fi in flat:
        first = seen.setdefault(fi.name.lower(), fi)
        if first is not fi:
            case = (f" as {first.name!r}: va2jax does not tell instance names apart by case, "
                    "VACASK does" if first.name != fi.name else "")
            raise NetlistError(fi.loc, f"an instance named {fi.name!r} already exists "
                                       f"(first defined at {first.loc}{case})")
    if net.dialect == "vacask":
        # VACASK evaluates options per analysis, with the variables then in force (the
        # simulation does so, sim.Simulation.use_options); here: those that evaluate now
        options = {}
        scope = dict(top_scope)
        for k, v in list(net.variables.items()) + list(net.options.items()):
            try:
                val = evaluate(v, scope, net.dialect)
            except ExprError:
                continue
            if k in net.options:
                options[k] = val
            else:
                scope[k] = val
    else:
        options = {k: _eval(v, top_scope, Loc(str(net.path), 0), f"option {k}", net.dialect)
                   for k, v in net.options.items()}
    return FlatCircuit(net.title, flat, models, net.loads, net.analyses, options, net.saves,
                       net.ground, net.dialect, net.path, top_scope, tuple(circuit))
