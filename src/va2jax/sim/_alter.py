"""VACASK's ``alter`` control command (``simulator/cmd.cpp``): change instance or model
parameters for the analyses after it::

    alter instance("r1", "r2") r=2k*q     // leaf instances (hierarchical names: "x1:r1")
    alter instance("x1") rv=7k            // a top-level subcircuit instance's parameter
    alter instance("__topinst__") rt=3k   // a top-level parameter
    alter model("d") is=1e-12

Values are expressions, evaluated when the command is read with the top-level parameters and
the control ``var`` values then in force. Changes accumulate until the next ``elaborate``
(which builds the circuit afresh, as VACASK does).

A subcircuit's or the top level's parameter change reaches the parameters *given by an
expression* below it (VACASK propagates expressions again): an earlier ``alter`` of such a
parameter under it is undone; parameters given as constants keep their altered values.
"""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from .expr import ExprError, evaluate
from .netlist import FlatCircuit, InstanceDecl, Loc, Netlist, NetlistError, Subckt, elaborate

_TOP = "__topinst__"
#: a constant parameter value in VACASK's netlist (a number with an optional scale factor, or a
#: string); anything else is an expression
_CONST = re.compile(r'[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[a-zA-Z]*|"[^"]*"')


@dataclass(frozen=True)
class Alter:
    """One ``alter`` command: ``kind`` "instance" | "model", the names, ``params`` (name →
    expression text), the control ``var`` values then in force, and where it was read."""

    kind: str
    names: tuple[str, ...]
    params: tuple[tuple[str, str], ...]
    variables: tuple[tuple[str, str], ...]
    loc: Loc


def parse_alter(rest: str, loc: Loc, variables: dict[str, str], split_params) -> Alter:
    """``instance("a", …) p=v …`` / ``model("m", …) p=v …`` → :class:`Alter`."""
    m = re.match(r"(\w+)\s*\(([^()]*)\)\s*(.*)$", rest.strip(), re.S)
    if not m or m.group(1).lower() not in ("instance", "model"):
        raise NetlistError(loc, 'alter needs instance("name", …) or model("name", …) and '
                                'parameters, e.g. alter instance("r1") r=2k')
    names = [a.strip() for a in m.group(2).split(",") if a.strip()]
    if not names or not all(re.fullmatch(r'"[^"]+"', a) for a in names):
        raise NetlistError(loc, f"alter {m.group(1)}: names must be quoted strings")
    params = split_params(m.group(3), loc)
    if not params:
        raise NetlistError(loc, "alter: no parameter to change")
    return Alter(m.group(1).lower(), tuple(a[1:-1] for a in names), tuple(params.items()),
                 tuple(variables.items()), loc)


def _decl(net: Netlist, path: str) -> tuple[InstanceDecl | None, Subckt | None]:
    """The declaration of the instance with hierarchical name ``path`` and, when it is a
    subcircuit instance, its definition."""
    subs = {k.lower(): s for k, s in net.subckts.items()}
    sub, decl, child = net.top, None, None
    for part in path.split(":"):
        if sub is None:
            return None, None
        decl = next((i for i in sub.instances if i.name == part), None)
        if decl is None:
            return None, None
        low = decl.master.lower()
        own = any(c.name.lower() == low for c in sub.models.values())
        child = None
        if low in sub.defs and not own:
            child = net.subckts[sub.defs[low]]
        elif low in subs and not own:
            child = subs[low]
        sub = child
    return decl, child


def _is_expr(text: str | None) -> bool:
    return text is not None and not _CONST.fullmatch(text.strip())


def apply_alters(net: Netlist, circuit: tuple[str, ...], alters: tuple[Alter, ...],
                 reread) -> FlatCircuit:
    """The circuit ``circuit`` of ``net`` with ``alters`` applied in order (module doc).
    ``reread(overrides)``: the netlist read again with top-level parameters set."""
    top: dict[str, str] = {}
    hier: dict[str, dict[str, str]] = {}  # top-level subckt instance → parameter → value text
    leaf: list[tuple[str, str, object, Loc]] = []
    models: list[tuple[str, str, object, Loc]] = []
    for al in alters:
        scope: dict = {}
        for k, v in list(net.top.params.items()) + [(k, top[k]) for k in top]:
            try:
                scope[k] = evaluate(v, scope, dialect="vacask")
            except ExprError:
                pass
        for k, v in al.variables:
            try:
                scope[k] = evaluate(v, scope, dialect="vacask")
            except ExprError as exc:
                raise NetlistError(al.loc, f"var {k}: {exc}") from None
        vals = {}
        for k, v in al.params:
            try:
                vals[k] = evaluate(v, scope, dialect="vacask")
            except ExprError as exc:
                raise NetlistError(al.loc, f"alter: parameter {k}: {exc}") from None
        for name in al.names:
            if al.kind == "model":
                _lower(vals, al.loc, f"model {name}")
                models += [(name, k, v, al.loc) for k, v in vals.items()]
                continue
            if name == _TOP:
                for k, v in vals.items():
                    if k not in net.top.params:
                        raise NetlistError(al.loc, f"alter: no top-level parameter {k!r}")
                    top[k] = repr(v)
                prefix = ""
            else:
                decl, sub = _decl(net, name)
                if decl is None:
                    raise NetlistError(al.loc, f"alter: no instance {name!r}")
                if sub is None:
                    _lower(vals, al.loc, f"instance {name}")
                    leaf += [(name, k, v, al.loc) for k, v in vals.items()]
                    continue
                if ":" in name:
                    raise NetlistError(al.loc, f"alter of subcircuit instance {name!r} inside "
                                               "another: not supported yet")
                for k in vals:
                    if k not in sub.params:  # VACASK's names are case-sensitive
                        other = [p for p in sub.params if p.lower() == k.lower()]
                        raise NetlistError(al.loc, f"alter: subcircuit {sub.name} has no "
                                                   f"parameter {k!r}" + (
                                                       f" (names are case-sensitive in VACASK: "
                                                       f"{other[0]!r} is)" if other else ""))
                hier.setdefault(name, {}).update({k: repr(v) for k, v in vals.items()})
                prefix = name + ":"
            # expressions below are evaluated again: earlier alters of them are undone
            leaf = [x for x in leaf if not (x[0].startswith(prefix) and
                                            _is_expr(_param_text(net, x[0], x[1])))]
            if not prefix:
                models = [x for x in models if not _is_expr(_model_text(net, x[0], x[1]))]
    n2 = reread(top) if top else net
    if hier:
        n2 = copy.deepcopy(n2)
        for name, ch in hier.items():
            decl = next(i for i in n2.top.instances if i.name == name)
            for k, v in ch.items():
                old = next((p for p in decl.params if p.lower() == k.lower()), k)
                decl.params[old] = v
    circ = elaborate(n2, circuit)
    by_name = {i.name: i for i in circ.instances}
    for name, k, v, loc in leaf:
        inst = by_name.get(name)
        if inst is None:
            raise NetlistError(loc, f"alter: no instance {name!r}")
        old = next((p for p in inst.params if p.lower() == k.lower()), k)
        inst.params[old] = v
    for name, k, v, loc in models:
        card = circ.models.get(name.lower())
        if card is None or card.name != name:  # VACASK's names are case-sensitive
            raise NetlistError(loc, f"alter: no model {name!r}" + (
                f" (names are case-sensitive in VACASK: {card.name!r} is)" if card else ""))
        old = next((p for p in card.params if p.lower() == k.lower()), k)
        card.params[old] = v
    return circ


def _lower(vals: dict, loc: Loc, where: str) -> None:
    """VACASK's device parameter names are lower case (an OSDI module's lowercased on loading)."""
    for k in vals:
        if k != k.lower():
            raise NetlistError(loc, f"alter: {where}: no parameter {k!r} (VACASK's device "
                                    f"parameter names are lower case: {k.lower()!r})")


def _param_text(net: Netlist, inst: str, param: str) -> str | None:
    decl, _ = _decl(net, inst)
    if decl is None:
        return None
    return next((v for k, v in decl.params.items() if k.lower() == param.lower()), None)


def _model_text(net: Netlist, model: str, param: str) -> str | None:
    card = next((c for c in net.top.models.values() if c.name.lower() == model.lower()), None)
    if card is None:
        return None
    return next((v for k, v in card.params.items() if k.lower() == param.lower()), None)
