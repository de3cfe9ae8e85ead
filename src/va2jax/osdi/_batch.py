"""Batched evaluation: N instances, each with its own parameters and operating point."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import Va2JaxError
from ._instance import DEFAULT_ANALYSIS, DEFAULT_CALC, OsdiInstance, OsdiModel
from ._library import ModuleInfo, split_params


def _key(d: dict[str, Any]) -> tuple:
    return tuple(sorted((k.lower(), repr(v)) for k, v in d.items()))


def eval_batch(
    module: ModuleInfo,
    voltages: np.ndarray | Sequence[Sequence[float]],
    params: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    *,
    temperature: float | Sequence[float] = 300.15,
    states: np.ndarray | None = None,
    calc: int = DEFAULT_CALC,
    analysis: int = DEFAULT_ANALYSIS,
    abstime: float = 0.0,
    sim_params: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Evaluate N instances of ``module`` (a plain Python loop over :meth:`OsdiInstance.eval`).

    ``voltages``: (N, num_nodes) node voltages in V (descriptor order). ``params``: one dict for
    all rows or N dicts; each may mix model and instance parameters (routed by kind; one model is
    set up per distinct model-parameter set). ``temperature``: K, scalar or N values.
    ``states``: (N, num_states) previous states or ``None`` (zeros).

    Returns numpy arrays with a leading N axis: ``residual_resist``, ``residual_react``,
    ``lim_rhs_resist``, ``lim_rhs_react`` (N, n); ``jacobian_resist``, ``jacobian_react``
    (N, n, n); ``opvars`` (N, num_opvars; reals, non-numeric as NaN) with names in
    ``module.opvars``; ``next_states`` (N, num_states); ``bound_step`` (N,; NaN if unsupported);
    ``ret_flags`` (N,) uint32; ``finite`` (N,) bool.
    """
    v = np.asarray(voltages, dtype=float)
    if v.ndim != 2 or v.shape[1] != module.num_nodes:
        raise Va2JaxError(f"voltages must have shape (N, {module.num_nodes}), got {v.shape}")
    n_rows = v.shape[0]
    if params is None:
        plist: list[dict[str, Any]] = [{}] * n_rows
    elif isinstance(params, dict):
        plist = [params] * n_rows
    else:
        plist = list(params)
        if len(plist) != n_rows:
            raise Va2JaxError(f"got {len(plist)} parameter sets for {n_rows} rows of voltages")
    temps = np.broadcast_to(np.asarray(temperature, dtype=float), (n_rows,))
    if states is not None:
        states = np.asarray(states, dtype=float).reshape(n_rows, module.num_states)
    n, nop = module.num_nodes, len(module.opvars)
    out = {
        "residual_resist": np.zeros((n_rows, n)), "residual_react": np.zeros((n_rows, n)),
        "lim_rhs_resist": np.zeros((n_rows, n)), "lim_rhs_react": np.zeros((n_rows, n)),
        "jacobian_resist": np.zeros((n_rows, n, n)), "jacobian_react": np.zeros((n_rows, n, n)),
        "opvars": np.full((n_rows, nop), np.nan), "next_states": np.zeros((n_rows, module.num_states)),
        "bound_step": np.full(n_rows, np.nan), "ret_flags": np.zeros(n_rows, dtype=np.uint32),
        "finite": np.zeros(n_rows, dtype=bool),
    }
    models: dict[tuple, OsdiModel] = {}
    insts: dict[tuple, OsdiInstance] = {}
    for i in range(n_rows):
        mp, ip = split_params(module, plist[i])
        mk = _key(mp)
        model = models.get(mk)
        if model is None:
            model = models[mk] = OsdiModel(module, mp, sim_params=sim_params)
        ik = (mk, _key(ip), float(temps[i]))
        inst = insts.get(ik)
        if inst is None:
            inst = insts[ik] = model.instance(ip, temperature=float(temps[i]))
        r = inst.eval(v[i], states=None if states is None else states[i], calc=calc,
                      analysis=analysis, abstime=abstime)
        out["residual_resist"][i] = r.residual_resist
        out["residual_react"][i] = r.residual_react
        out["lim_rhs_resist"][i] = r.lim_rhs_resist
        out["lim_rhs_react"][i] = r.lim_rhs_react
        out["jacobian_resist"][i] = r.jacobian_resist
        out["jacobian_react"][i] = r.jacobian_react
        for k, p in enumerate(module.opvars):
            val = r.opvars.get(p.name)
            if isinstance(val, (int, float)):
                out["opvars"][i, k] = float(val)
        out["next_states"][i] = r.next_states
        if r.bound_step is not None:
            out["bound_step"][i] = r.bound_step
        out["ret_flags"][i] = r.flags.raw
        out["finite"][i] = r.finite
    return out
