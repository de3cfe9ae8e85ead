"""Operating points and parameter sets that exercise every region of a compact model.

Bias sweeps are generic: the terminals are classified by name (MOS-like ``d/g/s[/b]``, BJT-like
``c/b/e``, two-terminal, or anything else) and swept within ±``vmax`` V in both polarities.
Internal nodes take the voltage of the terminal they attach to (matched by name: ``di`` → ``d``,
``bi`` → ``b``, …; unmatched internal nodes 0 V), branch-current unknowns 0 A, so series
resistances carry no drop and the intrinsic device sees the swept terminal voltages.

Parameter sets: the defaults at 27 °C, −40 °C and 150 °C, geometry variations of whichever of
W, L, NF/NFIN, AREA the model has, the opposite polarity (``TYPE = -1``) where the model has one,
then random variations; only sets accepted by the OSDI library's own setup are kept.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

T_NOM = 300.15
T_COLD = 233.15   # -40 °C
T_HOT = 423.15    # 150 °C

_ROLE_NAMES = {
    "d": ("d", "drain"), "g": ("g", "gate", "gg", "fg"), "s": ("s", "source"),
    "b": ("b", "bulk", "sub", "substrate", "base"), "c": ("c", "collector"), "e": ("e", "emitter"),
    "a": ("a", "anode", "p"), "k": ("k", "cathode", "n"),
}


@dataclass
class Segment:
    """One sweep: rows ``start:stop`` of the bias array, swept voltage values ``x`` (V)."""

    name: str
    start: int
    stop: int
    x: np.ndarray
    xlabel: str
    kind: str            # "iv" (output/transfer curve), "cv" (capacitance curve), "other"
    current_node: int    # node whose residual is plotted as current (I–V)
    swept_node: int      # node whose voltage is swept (column of the reactive Jacobian for C–V)
    family: str = ""     # label of the curve within a family (e.g. "VGS=1.2")


@dataclass
class Bias:
    """Bias points (M, n) plus the sweep segments that produced them."""

    V: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    topology: str = "generic"


def _role(name: str) -> str | None:
    nm = name.lower()
    for role, names in _ROLE_NAMES.items():
        if nm in names:
            return role
    return None


def classify(terminals: tuple[str, ...]) -> tuple[str, dict[str, int]]:
    """(topology, role → terminal index) for terminal names."""
    roles: dict[str, int] = {}
    for i, t in enumerate(terminals):
        r = _role(t)
        if r is not None and r not in roles:
            roles[r] = i
    names = {t.lower() for t in terminals}
    if {"d", "g", "s"} <= set(roles):
        return "mos", roles
    if {"c", "e"} <= set(roles) and "b" in roles:
        return "bjt", roles
    if len(terminals) == 2:
        return "two", {"a": 0, "k": 1}
    del names
    return "generic", roles


def _attach(nodes: tuple[str, ...], kinds: tuple[str, ...], nterm: int) -> list[int | None]:
    """For each node: index of the terminal it takes its voltage from (None: 0 V / 0 A)."""
    terms = [n.lower() for n in nodes[:nterm]]
    out: list[int | None] = []
    for i, (nm, kd) in enumerate(zip(nodes, kinds)):
        if i < nterm:
            out.append(i)
            continue
        if kd == "BranchCurrent":
            out.append(None)
            continue
        low = nm.lower().lstrip("_")
        best, blen = None, 0
        for j, t in enumerate(terms):
            # prefix match ("di" -> "d", "dprime" -> "d", "bi" -> "b"), longest terminal name wins
            if low.startswith(t) and len(t) > blen:
                best, blen = j, len(t)
        out.append(best)
    return out


def bias_sweeps(nodes: tuple[str, ...], kinds: tuple[str, ...], nterm: int, *, n: int = 21,
                vmax: float = 2.0) -> Bias:
    """Physically sensible sweeps over the terminals (see module docstring)."""
    terms = tuple(nodes[:nterm])
    topo, roles = classify(terms)
    attach = _attach(nodes, kinds, nterm)
    rows: list[np.ndarray] = []
    segs: list[Segment] = []

    def add(name: str, x: np.ndarray, term_v: list[dict[int, float | np.ndarray]] | dict, xlabel: str,
            kind: str, cur: int, swept: int, family: str = "") -> None:
        start = sum(len(r) for r in rows)
        tv = np.zeros((len(x), nterm))
        for j, v in term_v.items():
            tv[:, j] = v
        V = np.zeros((len(x), len(nodes)))
        for i, a in enumerate(attach):
            if a is not None:
                V[:, i] = tv[:, a]
        rows.append(V)
        segs.append(Segment(name, start, start + len(x), np.asarray(x, float), xlabel, kind, cur, swept, family))

    xs = np.linspace(-vmax, vmax, n)
    if topo == "mos":
        d, g, _s = roles["d"], roles["g"], roles["s"]
        b = roles.get("b")
        for vg in (0.0, 0.6, 1.2, vmax, -1.2):
            add(f"output VGS={vg:g}", xs, {d: xs, g: vg}, "V_DS (V)", "iv", d, d, f"VGS={vg:g}")
        for vd in (0.05, 1.5, -1.5):
            add(f"transfer VDS={vd:g}", xs, {g: xs, d: vd}, "V_GS (V)", "cv" if vd == 0.05 else "other",
                g if vd == 0.05 else d, g, f"VDS={vd:g}")
        if b is not None:
            for vg in (0.0, 1.2):
                add(f"body VGS={vg:g}", xs, {b: xs, g: vg, d: 1.0}, "V_BS (V)", "other", d, b, f"VGS={vg:g}")
            add("transfer VBS=-1", xs, {g: xs, d: 1.0, b: -1.0}, "V_GS (V)", "other", d, g, "VBS=-1")
    elif topo == "bjt":
        c, b, e = roles["c"], roles["b"], roles["e"]
        for vb in (0.5, 0.7, 0.8):   # saturation (V_CE small), forward active, reverse (V_CE < 0)
            add(f"output VBE={vb:g}", xs, {c: xs, b: vb}, "V_CE (V)", "iv", c, c, f"VBE={vb:g}")
        xb = np.linspace(0.0, 1.0, n)
        add("forward Gummel VCE=1.5", xb, {b: xb, c: 1.5}, "V_BE (V)", "cv", b, b, "forward")
        add("reverse Gummel VEC=1.5", xb, {b: xb, e: 1.5}, "V_BC (V)", "other", c, b, "reverse")
        add("base sweep VCE=0", xs, {b: xs}, "V_BE (V)", "other", b, b, "VCE=0")
    elif topo == "two":
        xf = np.linspace(-vmax, 1.0, 2 * n)  # reverse … forward for junctions
        add("V(1,2)", xf, {0: xf}, f"V({terms[0]},{terms[1]}) (V)", "iv", 0, 0)
        segs.append(Segment("C–V", segs[0].start, segs[0].stop, segs[0].x, segs[0].xlabel, "cv", 0, 0))
    else:
        first = True
        for i in range(nterm):
            for j in range(i + 1, nterm):
                add(f"V({terms[i]},{terms[j]})", xs, {i: xs}, f"V({terms[i]},{terms[j]}) (V)",
                    "iv" if first else "other", i, i)
                if first:
                    segs.append(Segment("C–V", segs[-1].start, segs[-1].stop, xs, segs[-1].xlabel, "cv", i, i))
                first = False
                if len(segs) > 24:
                    break
    V = np.concatenate(rows) if rows else np.zeros((0, len(nodes)))
    return Bias(V, segs, topo)


# ---------------------------------------------------------------------------------------------
_GEOMETRY = (("w", (0.25, 8.0)), ("l", (0.3, 5.0)), ("nf", (4.0,)), ("nfin", (4.0,)),
             ("area", (0.1, 10.0)), ("nfing", (4.0,)))


def _osdi_value(osdi_mod, p, base: dict[str, Any], temp: float) -> Any:
    inst = osdi_mod.instance(dict(base), temperature=temp)
    return inst.get(p.name) if p.kind == "instance" else inst.model.get(p.name)


def _accepted(osdi_mod, ps: dict[str, Any], temp: float) -> bool:
    try:
        osdi_mod.instance(dict(ps), temperature=temp)
    except Exception:  # OsdiInitError / Va2JaxError: OSDI's own setup rejects the set
        return False
    return True


def region_param_sets(osdi_mod, base: dict[str, Any], temp: float = T_NOM) -> list[tuple[str, dict[str, Any], float]]:
    """Named parameter sets: defaults at three temperatures, geometry, polarity (see docstring)."""
    sets: list[tuple[str, dict[str, Any], float]] = [("defaults 27°C", dict(base), temp)]
    for label, t in (("defaults -40°C", T_COLD), ("defaults 150°C", T_HOT)):
        if _accepted(osdi_mod, base, t):
            sets.append((label, dict(base), t))
    by_name = {}
    for p in osdi_mod.params:
        if p.kind in ("model", "instance") and p.length == 0:
            for nm in p.names:
                by_name.setdefault(nm.lower(), p)
    given = {k.lower() for k in base}
    for gname, factors in _GEOMETRY:
        p = by_name.get(gname)
        if p is None or p.type not in ("real", "int") or gname in given:
            continue
        try:
            val = _osdi_value(osdi_mod, p, base, temp)
        except Exception:
            continue
        if not isinstance(val, (int, float)) or not math.isfinite(val) or val <= 0:
            continue
        for f in factors:
            nv = val * f
            if p.type == "int":
                nv = int(round(nv))
                if nv == val:
                    continue
            ps = dict(base)
            ps[p.name] = nv
            if _accepted(osdi_mod, ps, temp):
                sets.append((f"{p.name}={nv:g}", ps, temp))
    for pol in ("type", "polarity"):
        p = by_name.get(pol)
        if p is None or p.type not in ("real", "int") or pol in given:
            continue
        ps = dict(base)
        ps[p.name] = -1 if p.type == "int" else -1.0
        if _accepted(osdi_mod, ps, temp):
            sets.append((f"{p.name}=-1", ps, temp))
            if _accepted(osdi_mod, ps, T_HOT):
                sets.append((f"{p.name}=-1 150°C", dict(ps), T_HOT))
        break
    return sets
