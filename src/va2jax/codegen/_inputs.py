"""The generated eval's inputs and outputs for a batch: which input comes from where
(:func:`input_table`), a batch of voltages and setup results → eval's inputs
(:func:`batch_inputs`), eval's outputs → dense collapsed residuals and Jacobians
(:func:`batch_assemble`). Shared by every backend; ``xp`` is ``numpy`` or ``jax.numpy``.

Functions taking ``self`` are :class:`~va2jax.codegen.Model` methods (bound there).
"""
from __future__ import annotations

import re
from typing import Any, Mapping

import numpy as np

from ..errors import Va2JaxError
from ..mir import ModuleIR
from ._rt_ops import ANALYSIS_BITS
from ._state import VOLT_DYNAMIC, EvalInput


def input_table(ir: ModuleIR, used: set[str]) -> list[tuple[str, EvalInput, Any]]:
    """Each input of the generated eval as ``(value, how, data)`` (see :class:`EvalInput`), in
    the order of ``ir.eval.params``. ``used``: the eval values read (an unmappable input that is
    read is an error; one that is not is 0)."""
    names = {nd.name: i for i, nd in enumerate(ir.nodes)}
    lower = {nd.name.lower(): i for i, nd in enumerate(ir.nodes)}
    names_t = tuple(nd.name for nd in ir.nodes)

    def node(nm: str) -> int:
        if nm in names:
            return names[nm]
        if nm.lower() in lower:
            return lower[nm.lower()]
        return -1

    implicit = [i for i, nd in enumerate(ir.nodes) if nd.kind == "Implicit"]
    # eval inputs: how each is obtained
    table: list[tuple[str, EvalInput, Any]] = []  # (value, how, data)
    for p in ir.eval.params:
        if p.kind == "new_state":
            continue
        how: EvalInput
        data: Any = None
        if p.kind == "voltage":
            a, b = _pair(p.name)
            ia, ib = node(a), (node(b) if b is not None else -1)
            if ia < 0 or (b is not None and ib < 0):
                if p.value in used:
                    raise Va2JaxError(f"{ir.source}: cannot map probe {p.name} to unknowns {names_t}")
                how = EvalInput.ZERO
            else:
                how, data = EvalInput.VOLT, (ia, ib)
        elif p.kind == "current":
            a, b = _pair(p.name)
            flow = node(f"flow({a},{b})" if b is not None else f"flow({a})")
            if flow < 0:
                if p.value in used:
                    raise Va2JaxError(f"{ir.source}: branch current probe {p.name} has no flow unknown")
                how = EvalInput.ZERO
            else:
                how, data = EvalInput.VOLT, (flow, -1)
        elif p.kind == "implicit_unknown":
            k = int(re.sub(r"\D", "", p.name) or 0)
            how, data = EvalInput.VOLT, (implicit[k], -1)
        elif p.kind == "param":
            how, data = EvalInput.PARAM, p.name
        elif p.kind == "param_given":
            how, data = EvalInput.GIVEN, p.name
        elif p.kind == "temperature":
            how = EvalInput.TEMP
        elif p.kind == "sysfun":
            how = EvalInput.MFACTOR
        elif p.kind == "cache" and p.name.startswith("cache["):
            how, data = EvalInput.CACHE, int(re.sub(r"\D", "", p.name))
        elif p.kind == "cache":
            # an eval input beyond the declared function parameters (openvaf-py exports a few,
            # e.g. PSP103's S–SI Jacobian entries); validated against OSDI as zero
            how = EvalInput.ZERO
        elif p.kind == "enable_lim":
            how = EvalInput.ENABLE_LIM
        elif p.kind == "prev_state":
            how, data = EvalInput.PREV_STATE, int(re.sub(r"\D", "", p.name))
        elif p.kind == "port_connected":  # a flag of the setup state, as $param_given's
            how, data = EvalInput.GIVEN, f"$port_connected({p.name})"
        elif p.kind == "enable_integration":
            how = EvalInput.ENABLE_INTEGRATION
        elif p.kind == "hidden_state":
            if p.value in used:
                raise Va2JaxError(f"{ir.source}: eval input kind {p.kind!r} ({p.name}) is not supported yet")
            how = EvalInput.ZERO
        else:
            if p.value in used:
                raise Va2JaxError(f"{ir.source}: eval input kind {p.kind!r} ({p.name}) is not supported")
            how = EvalInput.ZERO
        table.append((p.value, how, data))
    return table


def batch_inputs(self, inp: dict[str, Any], nb: int, xp, only: Any = None,
                  which: str = "all", dynamic: frozenset[EvalInput] | None = None) -> tuple[dict[str, Any], Any]:
    """Batch of voltages and setup results → the generated eval's inputs (arrays (N,)).

    ``xp`` is ``numpy`` or ``jax.numpy``; returns (inputs, node labels with ground → n).
    ``only``: the input names wanted (default all); ``which``: ``"volt"`` for the inputs that
    change from call to call (kinds in ``dynamic``, default the node voltages: ``inp`` then
    needs just ``V``, ``labels`` and, for the limiting kinds, ``prev_state``/``enable_lim``),
    ``"static"`` for all others (no ``V`` needed), ``"all"``.
    """
    dynamic = VOLT_DYNAMIC if dynamic is None else dynamic
    n = self._n
    labels = xp.asarray(inp["labels"])
    lab = xp.where(labels < 0, n, labels)
    if which != "static":
        V = xp.asarray(inp["V"], xp.float64)
        vext = xp.concatenate([V, xp.zeros((nb, 1))], axis=1)
        vused = xp.take_along_axis(vext, lab, axis=1)
    init = inp.get("init", {})
    ein: dict[str, Any] = {} if which == "volt" else {"analysis": inp["analysis"]}
    sel = self._selected_inputs.get((only, which, dynamic))
    if sel is None:  # PSP103: 2,868 eval inputs, ≈ 500 of them read
        sel = self._selected_inputs[(only, which, dynamic)] = [
            (value, how, data) for value, how, data in self._eval_inputs
            if (only is None or value in only) and (which == "all" or (how in dynamic) == (which == "volt"))]
    for value, how, data in sel:
        if how is EvalInput.VOLT:
            a, b = data
            ein[value] = vused[:, a] - vused[:, b] if b >= 0 else vused[:, a]
        elif how is EvalInput.PARAM:
            ein[value] = init[f"param:{data}"] if f"param:{data}" in init else inp["extra"][data]
        elif how is EvalInput.GIVEN:
            ein[value] = inp["given"][data]
        elif how is EvalInput.TEMP:
            ein[value] = inp["temperature"]
        elif how is EvalInput.MFACTOR:
            ein[value] = inp["mfactor"]
        elif how is EvalInput.CACHE:
            ein[value] = init[f"cache{data}"]
        elif how is EvalInput.ENABLE_LIM:
            ein[value] = inp["enable_lim"]
        elif how is EvalInput.PREV_STATE:
            ein[value] = inp["prev_state"][:, data]
        elif how is EvalInput.ENABLE_INTEGRATION:
            ein[value] = enable_integration(inp, nb, xp)
        else:
            ein[value] = xp.zeros(nb)
    return ein, lab


def batch_assemble(self, out: dict[str, Any], lab, nb: int, xp) -> dict[str, Any]:
    """Generated eval outputs (arrays (N,) or scalars) → dense, collapsed (N, n[, n]) arrays.

    Contributions of collapsed nodes are added at their representative, in Jacobian-entry
    order (the order OSDI's load functions add them in); ground (index n) is dropped.
    """
    n = self._n
    rows = xp.arange(nb)

    def full(v):
        return xp.broadcast_to(xp.asarray(v, xp.float64), (nb,))

    def add(arr, idx, v):
        if xp is np:
            np.add.at(arr, idx, v)
            return arr
        return arr.at[idx].add(v)

    def vec(prefix, f=lambda x: x):
        r = xp.zeros((nb, n + 1))
        for i in range(n):
            if f"{prefix}{i}" in out:
                r = add(r, (rows, lab[:, i]), f(full(out[f"{prefix}{i}"])))
        return r[:, :n]

    def mat(prefix, f=lambda x: x):
        m = xp.zeros((nb, n + 1, n + 1))
        for k, i, j in self._jr:
            if f"{prefix}{k}" in out:
                m = add(m, (rows, lab[:, i], lab[:, j]), f(full(out[f"{prefix}{k}"])))
        return m[:, :n, :n]

    states = xp.stack([full(out.get(f"ns{k}", 0.0)) for k in range(self.num_states)], axis=1) \
        if self.num_states else xp.zeros((nb, 0))
    res = {"residual_resist": vec("rr"), "residual_react": vec("rq"),
           "jacobian_resist": mat("jr"), "jacobian_react": mat("jq"),
           # OSDI's load_limit_rhs_* load the negated MIR value: J·(v − v_lim) of the limited
           # branches, added to the residual by the simulator
           "lim_rhs_resist": vec("lr", lambda x: -x), "lim_rhs_react": vec("lq", lambda x: -x),
           "states": states}
    if self._with_scales:
        res.update(scale_residual_resist=vec("rr", xp.abs), scale_residual_react=vec("rq", xp.abs),
                   scale_jacobian_resist=mat("jr", xp.abs), scale_jacobian_react=mat("jq", xp.abs))
    return res


def enable_integration(inp: Mapping[str, Any], nb: int, xp) -> Any:
    """OSDI's ``enable_integration`` eval input, (N,) bool: whether ``idt`` states integrate.

    OpenVAF lowers ``idt(x, ic)`` to an implicit unknown y with resistive residual −x and
    reactive residual y (so dy/dt = x) when integration is enabled, else y − ic and 0. OSDI's eval
    sets it to ``CALC_REACT_JACOBIAN and not ANALYSIS_IC``; eval always computes the reactive
    Jacobian, so it is ``not ANALYSIS_IC`` unless the caller overrides it (``inp`` key
    ``enable_integration``, e.g. False for a DC operating point as SPICE simulators do).
    """
    if inp.get("enable_integration") is not None:
        return xp.broadcast_to(xp.asarray(inp["enable_integration"], bool), (nb,))
    return (xp.asarray(inp["analysis"]) & ANALYSIS_BITS["ic"]) == 0


def _pair(name: str) -> tuple[str, str | None]:
    inner = name[name.index("(") + 1: name.rindex(")")]
    parts = [s.strip() for s in inner.split(",")]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _used_values(fn) -> set[str]:
    used: set[str] = set()
    for ins in fn.instructions():
        used.update(ins.operands)
        used.update(v for _, v in ins.phi_operands)
    return used


def used_values(fn) -> set[str]:
    """The values read by the instructions of ``fn`` (an IR function)."""
    used: set[str] = set()
    for ins in fn.instructions():
        used.update(ins.operands)
        used.update(v for _, v in ins.phi_operands)
    return used


