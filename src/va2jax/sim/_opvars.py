"""Operating-point variables of device instances (VACASK ``save p(inst, var)``).

An opvar (an OSDI ``param_opvar`` with ``PARA_KIND_OPVAR``: a Verilog-A variable the module
marks as an output, e.g. a diode's ``gd`` in S) is a function of the instance's node voltages and
parameters. It is read from the module's OSDI library — the file the netlist loads, or the one
``openvaf-r`` compiles from the loaded ``.va`` — evaluated (``CALC_OP``) at each solution point
with the parameters and temperature of the simulation.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..errors import Va2JaxError, suggest
from .netlist import Loc, NetlistError

if TYPE_CHECKING:
    from .simulation import Simulation


def _osdi_module(sim: "Simulation", module: str, loc: Loc):
    from .. import osdi

    path = sim.library.files.get(module.lower())
    if path is None:
        raise NetlistError(loc, f"module {module} is not loaded from a Verilog-A/OSDI file (a "
                                "built-in element): it has no operating-point variables")
    if path.suffix.lower() == ".va":
        path = osdi.compile_va_to_osdi(path)
    return osdi.load_library(str(path)).module(module)


def opvar_values(sim: "Simulation", inst: str, var: str, loc: Loc, X: np.ndarray) -> np.ndarray:
    """Opvar ``var`` of instance ``inst`` at each row of ``X`` (points × unknowns of
    ``sim.system``, real)."""
    circ, system = sim.circuit, sim.system
    fi = next((i for i in circ.instances if i.name == inst), None)
    if fi is None:
        raise NetlistError(loc, f"save p({inst}, {var}): no instance {inst!r}"
                                + suggest(inst, [i.name for i in circ.instances]))
    card = circ.models.get(fi.master.lower())
    module = card.module if card is not None else fi.master
    params = {**(card.params if card is not None else {}), **fi.params}
    ref = next(((g, g.names.index(inst)) for g in system.groups if inst in g.names), None)
    if ref is None:
        raise NetlistError(loc, f"save p({inst}, {var}): {inst} is not a device with "
                                "operating-point variables (a source or a linear element)")
    grp, k = ref
    try:
        mod = _osdi_module(sim, module, loc)
        info = mod.find_param(var, include_opvars=True)
        if info.kind != "opvar":
            raise Va2JaxError(f"{var!r} is a parameter of {module}, not an operating-point "
                              "variable")
        dev = mod.instance({k2: v for k2, v in params.items() if isinstance(v, (int, float))},
                           temperature=sim.options.temp + 273.15,
                           num_terminals=len(fi.nodes))
    except Va2JaxError as exc:
        raise NetlistError(loc, f"save p({inst}, {var}): {exc}") from None
    idx = np.asarray(grp.idx[k])
    n = X.shape[1]
    out = np.empty(X.shape[0])
    names = list(grp.model.node_names)  # the simulation's node order → OSDI's, by name
    for r in range(X.shape[0]):
        v = {nm: (X[r, j] if 0 <= j < n else 0.0) for nm, j in zip(names, idx)}
        val = dev.eval(v).opvars.get(info.name)
        out[r] = float(val) if isinstance(val, (int, float)) else np.nan
    return out
