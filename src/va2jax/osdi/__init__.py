"""OSDI reference interface: load OpenVAF-compiled ``.osdi`` libraries with ctypes and evaluate them.

This is the ground truth the generated JAX code is validated against. Public API::

    lib = load_library("diode.osdi")              # OsdiLibrary (cached per file)
    mod = lib.module("diode")                     # ModuleInfo: nodes, params, Jacobian, ...
    inst = mod.instance({"is": 1e-14}, temperature=300.15)   # model + instance, set up
    res = inst.eval({"A": 0.7})                   # EvalResult: residuals, Jacobians, opvars
    out = eval_batch(mod, voltages, params=[...]) # dict of numpy arrays (N, ...)
    path = compile_va_to_osdi("model.va")         # openvaf-r, cached

See ``docs/osdi.md`` for the node-collapsing convention and the simulator-parameter defaults.
"""
from __future__ import annotations

from . import _structs as flags
from ._batch import eval_batch
from ._compile import compile_va_to_osdi
from ._instance import (
    DEFAULT_ANALYSIS,
    DEFAULT_CALC,
    EvalFlags,
    EvalResult,
    NoiseResult,
    OsdiInitError,
    OsdiInstance,
    OsdiModel,
)
from ._library import (
    AttributeInfo,
    DisciplineInfo,
    JacobianEntryInfo,
    ModuleInfo,
    NatureInfo,
    NodeInfo,
    NoiseSourceInfo,
    OsdiLibrary,
    OsdiLoadError,
    ParamInfo,
    load_library,
    split_params,
)

__all__ = [
    "AttributeInfo", "DEFAULT_ANALYSIS", "DEFAULT_CALC", "DisciplineInfo", "EvalFlags", "EvalResult",
    "JacobianEntryInfo", "ModuleInfo", "NatureInfo", "NodeInfo", "NoiseResult", "NoiseSourceInfo",
    "OsdiInitError", "OsdiInstance", "OsdiLibrary", "OsdiLoadError", "OsdiModel", "ParamInfo",
    "compile_va_to_osdi", "eval_batch", "flags", "load_library", "split_params",
]
