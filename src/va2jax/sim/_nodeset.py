"""VACASK's nodesets and stored solutions for the operating point (``analysis NAME op
nodeset=… store="slot"``; VACASK ``include/coreop.h``, ``lib/coreop.cpp``, ``lib/coreopnr.cpp``).

``store="slot"`` keeps the converged solution under that name; ``nodeset="slot"`` starts a
later operating point from it: every node of the slot that the circuit has is *forced* — a
conductance ``g = nr_force·‖J_i‖∞`` (``nr_force = 1e5``, ``‖J_i‖∞`` the row's largest linear
stamp, 1e-3 S at least) to the slot's value is added to its KCL row. ``nodeset=["n"; v; …]``
forces node ``n`` to ``v``, ``["n1"; "n2"; v]`` the difference ``V(n1) − V(n2)``. The forced
system is solved, then the circuit itself from that solution, so the nodesets pick the
operating point's basin without changing it. A missing slot is a warning (VACASK's), and the
operating point starts from zero.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from .mna import System
from .netlist import Loc, NetlistError

NR_FORCE = 1e5  # VACASK's option nr_force (lib/options.cpp)


def parse_nodeset(value, index: dict[str, int], stored: dict[str, dict[str, float]],
                  loc: Loc, where: str, ground: frozenset[str] = frozenset({"0"}),
                  flows: bool = False, what: str = "nodeset") -> list[tuple[int, int, float]]:
    """Nodeset parameter ``value`` (a slot name or a VACASK list) → forces ``(i, j, v)`` on
    unknowns (``j = -1``: ``x_i = v``; else ``x_i − x_j = v``); a ground node is 0 V.
    ``flows``: a slot's branch currents are forced too (VACASK's tran ``ic``)."""
    if isinstance(value, str):
        if not value:
            return []
        sol = stored.get(value)
        if sol is None:
            warnings.warn(f"{loc}: {where}: solution {value!r} not found, no {what}s applied "
                          "(as VACASK does)", stacklevel=2)
            return []
        return [(index[k], -1, v) for k, v in sol.items()
                if k in index and (flows or ":flow(" not in k)]
    if not isinstance(value, list):
        raise NetlistError(loc, f"{where}: {what} must be a solution name or a list "
                                '["node"; value; …]')
    out, k = [], 0
    while k < len(value):
        names = []
        while k < len(value) and isinstance(value[k], str):
            names.append(value[k])
            k += 1
        if not 1 <= len(names) <= 2 or k >= len(value):
            raise NetlistError(loc, f"{where}: {what} list: expected \"node\", value or "
                                    "\"node1\", \"node2\", value")
        idx = []
        for nm in names:
            if nm not in index and nm not in ground:
                raise NetlistError(loc, f"{where}: {what}: no node {nm!r}")
            idx.append(-1 if nm in ground else index[nm])
        i, j, v = idx[0], idx[1] if len(idx) == 2 else -1, float(value[k])
        if i < 0:  # V(ground) − V(n2) = v: V(n2) = −v
            i, j, v = j, -1, -v
        if i >= 0:
            out.append((i, j, v))
        k += 1
    return out


def forced(system: System, b: np.ndarray, forces: list[tuple[int, int, float]]
           ) -> tuple[System, np.ndarray]:
    """The system with the forcing conductances added, and its source vector."""
    n = system.n
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    b2 = np.array(b, float)
    if system.G is not None:
        norm = np.max(np.abs(system.G), axis=1)
    else:
        norm = np.zeros(n)
        r, _, v = system.G_coo
        np.maximum.at(norm, r, np.abs(v))

    def g(i: int) -> float:
        return NR_FORCE * max(float(norm[i]), 1e-3)

    for i, j, v in forces:
        gi = g(i)
        rows.append(i)
        cols.append(i)
        vals.append(gi)
        b2[i] += gi * v
        if j >= 0:
            gj = g(j)
            rows += [i, j, j]
            cols += [j, j, i]
            vals += [-gi, gj, -gj]
            b2[j] -= gj * v
    G = None
    if system.G is not None:
        G = system.G.copy()
        np.add.at(G, (np.array(rows), np.array(cols)), np.array(vals))
    coo = system.G_coo
    owner = system.G_owner
    if coo is not None:
        if owner is not None and len(owner) == len(coo[0]):
            # each forcing conductance its own element (VACASK's per-element residual
            # reference, sim/_resref.py): owners after the circuit's, one per force
            first = int(owner.max()) + 1 if len(owner) else 0
            ids = []
            for k, (_, j, _) in enumerate(forces):
                ids += [first + k] * (4 if j >= 0 else 1)
            owner = np.concatenate([owner, np.asarray(ids, owner.dtype)])
        else:
            owner = None
        coo = (np.concatenate([coo[0], rows]).astype(coo[0].dtype),
               np.concatenate([coo[1], cols]).astype(coo[1].dtype),
               np.concatenate([coo[2], vals]))
    return dataclasses.replace(system, G=G, G_coo=coo, G_owner=owner, _memo={}), b2


def _uic_vector(n: int, forces: list[tuple[int, int, float]]) -> np.ndarray:
    """VACASK's ``icmode="uic"`` start from an ``ic`` list (``lib/coreopnr.cpp``): unknowns
    not named are 0; ``x_i = v`` first, then each difference ``x_i − x_j = v`` sets the node not
    set yet from the other (neither set: ``x_i = v``, ``x_j = 0``)."""
    x = np.zeros(n)
    done = np.zeros(n, bool)
    for i, j, v in forces:
        if j < 0:
            x[i], done[i] = v, True
    for i, j, v in forces:
        if j < 0 or (done[i] and done[j]):
            continue
        if done[i]:
            x[j] = x[i] - v
        elif done[j]:
            x[i] = x[j] + v
        else:
            x[i], x[j] = v, 0.0
        done[i] = done[j] = True
    return x


def tran_initial(sim, decl, icmode: str) -> np.ndarray | None:
    """The start of VACASK's transient ``decl`` from its ``ic`` and ``nodeset`` parameters
    (``lib/coretran.cpp``), or ``None`` (neither given: the plain operating point / zero).

    ``icmode="op"``: the operating point at ``t = 0`` with the ``ic`` forces held (a stored
    slot forces every unknown it has, branch currents included; a list its nodes and
    differences) — the conductances of :func:`forced` stay in the system — started from the
    ``nodeset`` forces, which are released as in ``op``. ``icmode="uic"``: no operating point; a
    slot's values, or the list's (:func:`_uic_vector`), zero elsewhere. A missing slot: a
    warning, no initial conditions (VACASK's)."""
    from .engine import Engine
    from .expr import ExprError, evaluate

    params = {k.lower(): v for k, v in decl.params.items()}
    if "ic" not in params and "nodeset" not in params:
        return None
    system = sim.system
    index = {nm: i for i, nm in enumerate(system.names)}
    ground = frozenset(sim.circuit.ground) | {"0"}
    where = f"analysis {decl.name}"

    def value(key: str):
        if key not in params:
            return ""
        try:
            return evaluate(params[key], sim.scope(decl), dialect="vacask")
        except ExprError as exc:
            raise NetlistError(decl.loc, f"{where}: {key}: {exc}") from None

    ic = parse_nodeset(value("ic"), index, sim.stored, decl.loc, where, ground, flows=True,
                       what="initial condition")
    if icmode == "uic":  # VACASK's uic ignores nodeset
        return _uic_vector(system.n, ic)
    ns = parse_nodeset(value("nodeset"), index, sim.stored, decl.loc, where, ground)
    b = system.source_vector(0.0)
    if ic:
        system, b = forced(system, b, ic)
    x0 = None
    if ns:
        sys_ns, b_ns = forced(system, b, ns)
        x0 = Engine(sys_ns, sim.options).op(b_ns, what=f"{where} (nodesets)")
    eng = Engine(system, sim.options) if ic else sim.engine
    return eng.op(b, x0, what=f"transient {decl.name}: initial operating point")
