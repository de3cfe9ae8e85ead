"""VACASK's ``sweep`` statements around an analysis (``include/answeep.h``, ``lib/answeep.cpp``).

``sweep NAME instance="i"|model="m"|option="o"|variable="v"|instance="__topinst__"
parameter="p" from=a to=b step=h | mode="lin|dec|oct" points=n | values=[...]
[continuation=0]`` — each sweep
statement before an ``analysis`` wraps it, the first one outermost. Points:

* ``step=h``: ``a + k·h`` for ``k = 0 … K−1``, ``K = ⌈(b − a)/h⌉``, plus one more when
  ``a + K·h ≤ b`` (``b`` itself only when it lies on the grid);
* ``mode="lin" points=n``: ``n`` intervals, ``n + 1`` points from ``a`` to ``b``;
* ``mode="dec"|"oct" points=n``: ``n`` points per factor 10 | 2:
  ``K = ⌈n·|ln(b/a)/ln(factor)|⌉ + 1`` points equally spaced in ``ln`` from ``a`` to ``b``;
* ``values=[v0, v1, …]``.

A swept ``op`` writes one plot "Operating Point" whose first vectors are the sweep values, one
per sweep, named after the sweeps (outermost first), then the unknowns (sorted by name in the
rawfile, as VACASK writes them). A swept ``ac``/``tran`` writes one plot of its kind: the sweep
vectors, the scale (``frequency``/``time``), the unknowns, each point's whole run after the
previous one's; a swept ``acxf`` or ``noise`` likewise, ``dcinc``/``dcxf`` one row per point (sweep vectors,
then the analysis' vectors). Sweeping a source's
``dc`` changes its value in place; any other instance/model parameter, an option or a top-level
parameter rebuilds the circuit for that point (a fresh compile); a ``variable`` only changes the
values the inner sweeps and the analysis read.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .engine import Engine, Options
from .expr import ExprError, evaluate
from .mna import build_system
from .netlist import AnalysisDecl, NetlistError, elaborate
from .parse_vacask import parse_vacask
from .results import Result, Stats

if TYPE_CHECKING:
    from .simulation import Simulation

_TOP = "__topinst__"


def _text(sw: dict[str, str], key: str) -> str | None:
    v = sw.get(key)
    return None if v is None else v.strip().strip('"')


def sweep_points(sw: dict[str, str], scope: dict, decl: AnalysisDecl) -> np.ndarray:
    """The values of one sweep statement (module doc), expressions evaluated in ``scope``."""
    where = f"sweep {sw.get('name')}"

    def num(key: str) -> float | None:
        if key not in sw:
            return None
        try:
            v = evaluate(sw[key], scope, "vacask")  # sweeps: VACASK only
        except ExprError as exc:
            raise NetlistError(decl.loc, f"{where}: {key}: {exc}") from None
        return v

    if "values" in sw:
        vals = num("values")
        arr = np.atleast_1d(np.asarray(vals, dtype=float))
        if arr.ndim != 1 or arr.size == 0:
            raise NetlistError(decl.loc, f"{where}: values must be a nonempty vector of numbers")
        return arr
    a, b = num("from"), num("to")
    if a is None or b is None:
        raise NetlistError(decl.loc, f"{where}: needs from= and to= (or values=[...])")
    a, b = float(a), float(b)
    mode = _text(sw, "mode")
    if mode is None:
        h = num("step")
        if h is None:
            raise NetlistError(decl.loc, f"{where}: needs step= or mode= with points=")
        h = float(h)
        if not ((a <= b and h > 0) or (a > b and h < 0)):
            raise NetlistError(decl.loc, f"{where}: bad stepped sweep range (from, to, step)")
        k = max(math.ceil((b - a) / h), 1)
        if (a + k * h <= b) if h > 0 else (a + k * h >= b):
            k += 1
        return a + h * np.arange(k)
    pts = num("points")
    if pts is None:
        raise NetlistError(decl.loc, f"{where}: mode={mode!r} needs points=")
    pts = int(pts)
    if mode == "lin":
        if pts < 0:
            raise NetlistError(decl.loc, f"{where}: points (intervals) must be ≥ 0")
        k = pts + 1
        return np.array([a]) if k < 2 else a + (b - a) / (k - 1) * np.arange(k)
    if mode in ("dec", "oct"):
        if pts <= 0 or a <= 0 or b <= 0:
            raise NetlistError(decl.loc, f"{where}: a {mode} sweep needs points > 0 and from, to > 0")
        k = math.ceil(abs(pts * math.log(b / a) / math.log(10.0 if mode == "dec" else 2.0))) + 1
        if k < 2:
            return np.array([a])
        return np.exp(math.log(a) + (math.log(b) - math.log(a)) / (k - 1) * np.arange(k))
    raise NetlistError(decl.loc, f"{where}: unknown mode {mode!r} (lin, dec, oct)")


def _check_not_expression(net, sw: dict[str, str], decl: AnalysisDecl) -> None:
    """VACASK refuses to sweep an instance or model parameter the netlist gives as an
    expression ("parameter 'r' of instance 'r1' is bound to an expression"); so does va2jax."""
    from ._alter import _is_expr, _model_text, _param_text

    par = _text(sw, "parameter")
    if net is None or not par:
        return
    if "instance" in sw and _text(sw, "instance") != _TOP:
        what, name = "instance", _text(sw, "instance")
        text = _param_text(net, name, par)
    elif "model" in sw:
        what, name = "model", _text(sw, "model")
        text = _model_text(net, name, par)
    else:
        return
    if _is_expr(text):
        raise NetlistError(decl.loc, f"sweep {sw['name']}: parameter {par!r} of {what} "
                                     f"{name!r} is bound to an expression ({text}); VACASK "
                                     "does not sweep it")


def run_swept(sim: "Simulation", decl: AnalysisDecl) -> Result:
    """Run ``decl`` (an ``op``) at every point of its nested sweeps (module doc)."""
    if decl.kind not in ("op", "dc", "ac", "tran", "dcinc", "dcxf", "acxf", "noise", "hb"):
        raise NetlistError(decl.loc, f"analysis {decl.name}: sweeps of a {decl.kind!r} analysis "
                                     "not supported yet")
    is_op = decl.kind in ("op", "dc")
    inner = AnalysisDecl(decl.name, decl.kind, decl.params, decl.loc, saves=decl.saves,
                         circuit=decl.circuit, alters=decl.alters)
    continued = replace(inner, params={k: v for k, v in inner.params.items()
                                       if k.lower() != "nodeset"})
    head: list[str] = []  # the inner analysis' scale and unknowns (ac, tran)
    net = sim.netlist
    base_scope = dict(sim.circuit.params)
    variables = decl.variables if decl.variables is not None else \
        (net.variables if net is not None else {})
    if variables:
        for k, v in variables.items():
            try:
                base_scope[k] = evaluate(v, base_scope, sim.circuit.dialect)
            except ExprError as exc:
                raise NetlistError(decl.loc, f"var {k}: {exc}") from None
    sweeps = decl.sweeps
    for sw in sweeps:
        targets = [k for k in ("instance", "model", "option", "variable") if k in sw]
        if len(targets) != 1:
            raise NetlistError(decl.loc, f"sweep {sw['name']}: give one of instance=, model=, "
                                         "option=, variable=")
        if targets[0] in ("instance", "model") and "parameter" not in sw:
            raise NetlistError(decl.loc, f"sweep {sw['name']}: {targets[0]}= needs parameter=")
        if "component" in sw:
            raise NetlistError(decl.loc, f"sweep {sw['name']}: component= not supported yet")
        _check_not_expression(net, sw, decl)
    names = [sw["name"] for sw in sweeps]
    # continuation=0 (VACASK): each point's operating point starts afresh, not from the last
    try:
        cont = all(float(evaluate(sw.get("continuation", "1"), base_scope, dialect="vacask")) != 0
                   for sw in sweeps)
    except (ExprError, TypeError, ValueError) as exc:
        raise NetlistError(decl.loc, f"analysis {decl.name}: sweep continuation: {exc}") from None
    rows: list[np.ndarray] = []
    row_sims: list = []  # the simulation (circuit) of each row
    t_stats = Stats()
    state = {"sim": sim, "key": None}

    def rebuild(changes: list[tuple[dict[str, str], float]]) -> "Simulation":
        """The simulation for this point's circuit changes (not source dc, not variables)."""
        key = tuple((sw["name"], v) for sw, v in changes)
        if state["key"] == key:
            return state["sim"]
        if not changes:
            state["key"], state["sim"] = key, sim
            return sim
        circ = sim.circuit
        opts_d = dict(circ.options)
        top_changes = {}
        for sw, v in changes:
            if "option" in sw:
                opts_d[_text(sw, "option")] = v
            elif _text(sw, "instance") == _TOP:
                top_changes[_text(sw, "parameter")] = v
        if top_changes:
            if net is None:
                raise NetlistError(decl.loc, "sweep of a top-level parameter needs the netlist")
            for p in top_changes:
                if p not in net.top.params:
                    raise NetlistError(decl.loc, f"sweep: no top-level parameter {p!r}")
            # read again: the value reaches every expression and @if condition that uses it
            n2 = parse_vacask(net.path, overrides={p: repr(float(v))
                                                   for p, v in top_changes.items()})
            if decl.alters:
                from ._alter import apply_alters
                from .parse_vacask import reread_with

                circ = apply_alters(n2, decl.circuit, decl.alters, reread_with(net.path))
            else:
                circ = elaborate(n2, decl.circuit)
        else:
            circ = copy.deepcopy(circ)
        for sw, v in changes:
            par = _text(sw, "parameter")
            if "instance" in sw and _text(sw, "instance") != _TOP:
                inst = next((i for i in circ.instances if i.name == _text(sw, "instance")), None)
                if inst is None:
                    raise NetlistError(decl.loc, f"sweep {sw['name']}: no instance "
                                                 f"{_text(sw, 'instance')!r}")
                old = next((k for k in inst.params if k.lower() == par.lower()), par)
                inst.params[old] = float(v)
            elif "model" in sw:
                card = circ.models.get(_text(sw, "model").lower())
                if card is None:
                    raise NetlistError(decl.loc, f"sweep {sw['name']}: no model "
                                                 f"{_text(sw, 'model')!r}")
                old = next((k for k in card.params if k.lower() == par.lower()), par)
                card.params[old] = float(v)
        opts = Options.from_dict(opts_d)
        try:
            system = build_system(circ, sim.library.resolve, temperature=opts.temp + 273.15)
        except NetlistError as exc:  # e.g. a swept parameter the device lacks: name the sweep
            msg = str(exc)[len(str(exc.loc)) + 2:] if exc.loc else str(exc)
            raise NetlistError(decl.loc, f"sweep {', '.join(sw['name'] for sw, _ in changes)}: "
                                         f"{msg}") from None
        if system.names != sim.system.names:
            raise NetlistError(decl.loc, f"analysis {decl.name}: a sweep point changes the "
                                         "circuit's unknowns (not supported)")
        new = copy.copy(sim)
        circ.options = opts_d
        new.circuit = circ  # this point's parameters (opvars are read with them)
        new.system, new.options, new.engine = system, opts, Engine(system, opts)
        state["key"], state["sim"] = key, new
        return new

    def source(s: "Simulation", sw: dict[str, str]):
        if "instance" not in sw or (_text(sw, "parameter") or "").lower() != "dc":
            return None
        nm = _text(sw, "instance")  # a waveform's dc is not its op value (VACASK): rebuild
        return next((x for x in s.system.sources if x.name == nm and x.wave.kind == "dc"), None)

    def walk(level: int, scope: dict, changes: list, dc_sets: list, vals: list, x0):
        if level == len(sweeps):
            s = rebuild(changes)
            olds = []
            for sw, v in dc_sets:
                src = source(s, sw)
                olds.append((src, src.wave.dc))
                src.wave.dc = float(v) * src.wave.m
            try:
                eng = s.engine
                eng.iterations = 0
                # VACASK's nodeset: in start mode only, the first point or, with
                # continuation=0, every point (a continued point ignores it: lib/coreop.cpp)
                start = not state.get("started") or not cont
                state["started"] = True
                if is_op:
                    b = eng.sys.source_vector(None, dc=True)
                    x = s._op_nodeset(decl) if start else None
                    if x is None:
                        x = eng.op(b, x0 if s is state.get("prev") and cont else None,
                                   what=f"analysis {decl.name} at " + ", ".join(
                                       f"{n}={v:g}" for n, v in zip(names, vals)))
                    state["prev"] = s
                    s._store(decl, x)  # VACASK's store=: each point's, the last one stays
                else:  # the analysis itself, its parameters seeing this point's variables
                    s2 = copy.copy(s)
                    s2.circuit = copy.copy(s.circuit)
                    s2.circuit.params = {**s.circuit.params, **scope}
                    r = s2._run_analysis(inner if start else continued)
                    x = None
                t_stats.newton_iterations += eng.iterations
            finally:
                for src, old in olds:
                    src.wave.dc = old
            if is_op:
                rows.append(np.concatenate([np.asarray(vals, float), np.asarray(x, float)]))
                row_sims.append(s)
            elif r.scale is None:  # one point (dcinc, dcxf)
                head[:] = list(r.names)
                state["lead"] = r.lead
                rows.append(np.concatenate([np.asarray(vals, float), r.data[0]]))
                row_sims.append(s)
            else:
                head[:] = [r.scale_name] + list(r.names)
                state["lead"] = 1 + r.lead
                n = len(r.scale)
                rows.extend(np.column_stack([np.tile(np.asarray(vals, float), (n, 1)),
                                             np.asarray(r.scale, float), r.data]))
                row_sims.extend([s] * n)
            return x
        sw = sweeps[level]
        for v in sweep_points(sw, scope, decl):
            v = float(v)
            sc = dict(scope)
            ch, ds = changes, dc_sets
            if "variable" in sw:
                sc[_text(sw, "variable")] = v
            elif source(sim, sw) is not None:
                ds = dc_sets + [(sw, v)]
            else:
                ch = changes + [(sw, v)]
            x0 = walk(level + 1, sc, ch, ds, vals + [v], x0)
        return x0

    t0 = time.perf_counter()
    walk(0, base_scope, [], [], [], None)
    data = np.array(rows)
    t_stats.points = len(rows)
    t_stats.run_s = time.perf_counter() - t0
    if is_op:
        res = Result(decl.name, "op", None, None, names + list(sim.system.names), data, t_stats,
                     lead=len(names))
    else:
        res = Result(decl.name, decl.kind, None, None, names + head, data, t_stats,
                     lead=len(names) + state["lead"])
    res.point_sims = row_sims  # for save p(...): each row's opvars with its own circuit
    return res

