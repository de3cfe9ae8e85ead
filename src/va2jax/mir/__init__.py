"""OpenVAF's front end (openvaf-py) turned into va2jax's typed IR.

Public API: :func:`load_modules` (Verilog-A file → list of :class:`ModuleIR`), the IR classes,
CFG utilities and :func:`dump_module`.
"""
from ._bounds import evaluate as evaluate_bound
from ._bounds import read_bounds, violations
from ._cfg import Loop, dominators, is_reducible, natural_loops, reverse_postorder, successors, visit_order
from ._frontend import load_modules
from ._ir import (
    BOOL,
    INT,
    REAL,
    STR,
    Block,
    Callback,
    CollapsePair,
    Function,
    Instr,
    JacobianEntry,
    ModuleIR,
    ModuleNode,
    ModuleParam,
    NoiseSource,
    Param,
    Residual,
)
from ._noise import NoiseSite, noise_variant, unscale_noise_residuals
from ._text import dump_function, dump_module

__all__ = [
    "BOOL", "INT", "REAL", "STR", "Block", "Callback", "CollapsePair", "Function", "Instr",
    "JacobianEntry", "Loop", "ModuleIR", "ModuleNode", "ModuleParam", "NoiseSite", "NoiseSource", "Param",
    "Residual", "dominators", "evaluate_bound", "read_bounds", "violations", "dump_function", "dump_module",
    "is_reducible", "load_modules",
    "natural_loops", "noise_variant", "reverse_postorder", "successors", "unscale_noise_residuals",
    "visit_order",
]
