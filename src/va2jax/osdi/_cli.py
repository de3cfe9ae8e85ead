"""``va2jax osdi info`` and ``va2jax osdi eval``."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any

from ..errors import Va2JaxError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``osdi`` command group to the ``va2jax`` CLI."""
    p = subparsers.add_parser("osdi", help="inspect and evaluate OSDI libraries (the reference)",
                              description="Inspect and evaluate OpenVAF-compiled OSDI libraries.")
    sub = p.add_subparsers(dest="osdi_command", metavar="SUBCOMMAND")
    sub.required = True

    pi = sub.add_parser("info", help="print a library's modules, nodes, parameters, Jacobian")
    pi.add_argument("file", metavar="FILE.osdi")
    pi.add_argument("--module", help="module name (default: the first)")
    pi.add_argument("--json", action="store_true", help="print one JSON object")
    pi.set_defaults(func=_cmd_info)

    pe = sub.add_parser("eval", help="evaluate residuals and Jacobians at given node voltages")
    pe.add_argument("file", metavar="FILE.osdi")
    pe.add_argument("--module", help="module name (default: the first)")
    pe.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="parameter (model or instance, by its kind); repeatable")
    pe.add_argument("--inst-param", action="append", default=[], metavar="NAME=VALUE",
                    help="instance parameter; repeatable")
    pe.add_argument("--temp", type=float, default=300.15, metavar="KELVIN",
                    help="device temperature in K (default 300.15)")
    pe.add_argument("--v", action="append", default=[], metavar="NODE=VOLTS",
                    help="node voltage (flow unknowns: A); nodes not given are 0; repeatable")
    pe.add_argument("--json", action="store_true", help="print one JSON object")
    pe.set_defaults(func=_cmd_eval)


def _kv(text: str, what: str) -> tuple[str, str]:
    if "=" not in text:
        raise Va2JaxError(f"{what} {text!r} must look like NAME=VALUE")
    k, v = text.split("=", 1)
    k, v = k.strip(), v.strip()
    if not k:
        raise Va2JaxError(f"{what} {text!r} has an empty name")
    return k, v


def _parse_value(p, text: str, name: str) -> Any:
    if p.type == "str":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'" else text
    if p.type == "int":
        try:
            return int(text, 0)
        except ValueError:
            try:
                f = float(text)
            except ValueError:
                raise Va2JaxError(f"parameter {name!r} expects an integer, got {text!r}") from None
            if not f.is_integer():
                raise Va2JaxError(f"parameter {name!r} expects an integer, got {text!r}") from None
            return int(f)
    try:
        return float(_si(text))
    except ValueError:
        raise Va2JaxError(f"parameter {name!r} expects a real number, got {text!r}") from None


_SI = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "meg": 1e6, "g": 1e9, "t": 1e12}


def _si(text: str) -> float:
    """Parse a number with an optional SPICE scale suffix (``1k``, ``10meg``, ``2.5p``)."""
    t = text.strip().lower()
    try:
        return float(t)
    except ValueError:
        pass
    for suf in ("meg", "f", "p", "n", "u", "m", "k", "g", "t"):
        if t.endswith(suf):
            return float(t[: -len(suf)]) * _SI[suf]
    raise ValueError(text)


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    return x


def _cmd_info(args: argparse.Namespace) -> int:
    from . import load_library

    lib = load_library(args.file)
    m = lib.module(args.module)
    if args.json:
        obj = {
            "file": str(lib.path), "osdi_version": f"{lib.version[0]}.{lib.version[1]}",
            "modules": list(lib.module_names), "module": m.name,
            "nodes": [{"name": n.name, "units": n.units, "residual_units": n.residual_units,
                       "is_flow": n.is_flow, "terminal": n.is_terminal} for n in m.nodes],
            "params": [{"names": list(p.names), "kind": p.kind, "type": p.type, "length": p.length,
                        "units": p.units, "description": p.description} for p in m.params],
            "opvars": [{"names": list(p.names), "type": p.type, "units": p.units,
                        "description": p.description} for p in m.opvars],
            "jacobian": [{"row": e.row, "col": e.col, "resist": e.resist, "react": e.react,
                          "resist_const": e.resist_const, "react_const": e.react_const}
                         for e in m.jacobian],
            "collapsible": [list(c) for c in m.collapsible],
            "noise_sources": [{"name": s.name, "nodes": [s.node1, s.node2], "type": s.type}
                              for s in m.noise_sources],
            "num_states": m.num_states, "bound_step": m.has_bound_step,
            "module_flags": m.module_flags, "lim_functions": [list(x) for x in lib.lim_functions],
        }
        print(json.dumps(obj))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"[bold]{lib.path}[/]  OSDI {lib.version[0]}.{lib.version[1]}  modules: "
              f"{', '.join(lib.module_names)}")
    con.print(f"module [bold]{m.name}[/]: {m.num_nodes} nodes ({m.num_terminals} terminals), "
              f"{len(m.params)} params, {len(m.opvars)} opvars, {len(m.jacobian)} Jacobian entries, "
              f"{m.num_states} states, bound_step={'yes' if m.has_bound_step else 'no'}")
    t = Table(title="nodes")
    for c in ("#", "name", "units", "residual", "kind"):
        t.add_column(c)
    for n in m.nodes:
        t.add_row(str(n.index), n.name, n.units, n.residual_units,
                  "terminal" if n.is_terminal else ("flow" if n.is_flow else "internal"))
    con.print(t)
    if m.collapsible:
        names = m.node_names
        con.print("collapsible: " + ", ".join(
            f"{names[a]}-{'gnd' if b < 0 else names[b]}" for a, b in m.collapsible))
    t = Table(title="parameters")
    for c in ("name (aliases)", "kind", "type", "units", "description"):
        t.add_column(c)
    for p in m.params:
        t.add_row(", ".join(p.names), p.kind, p.type + (f"[{p.length}]" if p.length else ""),
                  p.units, p.description)
    con.print(t)
    if m.opvars:
        con.print("opvars: " + ", ".join(p.name for p in m.opvars))
    if m.noise_sources:
        con.print("noise sources: " + ", ".join(f"{s.name} ({s.type})" for s in m.noise_sources))
    if lib.lim_functions:
        con.print("$limit functions: " + ", ".join(f"{n}/{k}" for n, k in lib.lim_functions))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from . import OsdiModel, load_library

    lib = load_library(args.file)
    m = lib.module(args.module)
    mp: dict[str, Any] = {}
    ip: dict[str, Any] = {}
    for item in args.param:
        k, v = _kv(item, "--param")
        p = m.find_param(k)
        (ip if p.kind == "instance" else mp)[k] = _parse_value(p, v, k)
    for item in args.inst_param:
        k, v = _kv(item, "--inst-param")
        p = m.find_param(k)
        if p.kind != "instance":
            raise Va2JaxError(f"{k!r} is a model parameter of module {m.name!r}; use --param")
        ip[k] = _parse_value(p, v, k)
    volts: dict[str, float] = {}
    for item in args.v:
        k, v = _kv(item, "--v")
        m.node_index(k)
        try:
            volts[k] = _si(v) if v.lower() not in ("nan", "inf", "-inf", "+inf") else float(v)
        except ValueError:
            raise Va2JaxError(f"voltage of node {k!r} must be a number, got {v!r}") from None
    if not math.isfinite(args.temp) or args.temp <= 0:
        raise Va2JaxError(f"--temp must be a positive temperature in K, got {args.temp}")
    model = OsdiModel(m, mp)
    inst = model.instance(ip, temperature=args.temp)
    res = inst.eval(volts)
    names = list(m.node_names)
    if args.json:
        obj = {
            "module": m.name, "nodes": names, "node_mapping": list(inst.node_mapping),
            "residual_resist": res.residual_resist, "residual_react": res.residual_react,
            "jacobian_resist": res.jacobian_resist, "jacobian_react": res.jacobian_react,
            "lim_rhs_resist": res.lim_rhs_resist, "lim_rhs_react": res.lim_rhs_react,
            "opvars": res.opvars, "bound_step": res.bound_step, "finite": res.finite,
            "flags": {"limited": res.flags.limited, "fatal": res.flags.fatal,
                      "finish": res.flags.finish, "stop": res.flags.stop},
        }
        print(json.dumps(_jsonable(obj)))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"module [bold]{m.name}[/] at T = {args.temp} K"
              + ("" if res.finite else "  [bold red]WARNING: non-finite values (finite=false)[/]"))
    t = Table(title="residuals (resist: A, react: C for potential nodes)")
    for c in ("node", "maps to", "V", "resist", "react"):
        t.add_column(c, justify="right")
    v = inst.voltages_from_dict(volts)
    for i, nm in enumerate(names):
        mp_ = inst.node_mapping[i]
        t.add_row(nm, "gnd" if mp_ < 0 else names[mp_], f"{v[i]:.6g}",
                  f"{res.residual_resist[i]:.10g}", f"{res.residual_react[i]:.10g}")
    con.print(t)
    for title, mat in (("resistive Jacobian d(resist residual)/dV", res.jacobian_resist),
                       ("reactive Jacobian d(react residual)/dV", res.jacobian_react)):
        t = Table(title=title + "  (row = residual node, column = voltage node)")
        t.add_column("")
        for nm in names:
            t.add_column(nm, justify="right")
        for i, nm in enumerate(names):
            t.add_row(nm, *[f"{x:.6g}" for x in mat[i]])
        con.print(t)
    if res.opvars:
        con.print("opvars: " + ", ".join(f"{k}={val:.6g}" if isinstance(val, float) else f"{k}={val}"
                                          for k, val in res.opvars.items()))
    if res.flags.raw:
        con.print(f"eval flags: {res.flags}")
    return 0
