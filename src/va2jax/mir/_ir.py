"""Typed IR for one OpenVAF MIR function (eval or init) and for one Verilog-A module.

The IR is a faithful, typed copy of what openvaf-py exports: SSA values named ``v<N>``, basic blocks
with explicit terminators, phis with (block, value) operands, and calls to *callbacks* (simulator
functions such as ``$simparam``, ``ddt``, noise sources, limiting, bound-check failures).
Value types are one of :data:`REAL`, :data:`INT`, :data:`BOOL`, :data:`STR`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ValueType = Literal["real", "int", "bool", "str"]
REAL: ValueType = "real"
INT: ValueType = "int"
BOOL: ValueType = "bool"
STR: ValueType = "str"

#: Result type of every value-producing opcode (``None``: same type as the first operand).
OPCODE_RESULT: dict[str, ValueType | None] = {
    # real arithmetic and functions
    **{op: REAL for op in (
        "fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "pow", "sqrt", "exp", "ln", "log", "floor",
        "ceil", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
        "asinh", "acosh", "atanh", "hypot", "fabs", "ifcast", "bfcast", "clog2f")},
    # integer arithmetic
    **{op: INT for op in (
        "iadd", "isub", "imul", "idiv", "irem", "ineg", "inot", "iand", "ior", "ixor", "ishl",
        "ishr", "ficast", "bicast", "clog2")},
    # comparisons and boolean ops
    **{op: BOOL for op in (
        "feq", "fne", "flt", "fle", "fgt", "fge", "ieq", "ine", "ilt", "ile", "igt", "ige",
        "beq", "bne", "bnot", "seq", "sne", "ibcast", "fbcast")},
    "optbarrier": None,
    "phi": None,
}

#: Opcodes that end a block.
TERMINATORS = frozenset({"br", "jmp", "exit"})


@dataclass(frozen=True)
class Instr:
    """One MIR instruction.

    ``result`` is ``None`` for terminators and for calls without a result. For ``phi``,
    ``phi_operands`` holds ``(predecessor block, value)`` pairs; for ``br`` the condition is
    ``operands[0]`` and ``targets`` is ``(true block, false block)``; for ``jmp`` ``targets`` is
    ``(destination,)``; for ``call`` ``func_ref`` names the callback.
    """

    opcode: str
    result: str | None
    operands: tuple[str, ...] = ()
    phi_operands: tuple[tuple[str, str], ...] = ()
    targets: tuple[str, ...] = ()
    func_ref: str | None = None
    loop_entry: bool = False


@dataclass
class Block:
    """A basic block: instructions in order, the last one a terminator (or none: function exit)."""

    name: str
    instrs: list[Instr] = field(default_factory=list)
    preds: list[str] = field(default_factory=list)
    succs: list[str] = field(default_factory=list)

    @property
    def terminator(self) -> Instr | None:
        if self.instrs and self.instrs[-1].opcode in TERMINATORS:
            return self.instrs[-1]
        return None


@dataclass(frozen=True)
class Param:
    """A function input: the SSA value it defines, its name and kind as openvaf-py reports them.

    Kinds seen: ``param``, ``param_given``, ``voltage``, ``current``, ``implicit_unknown``,
    ``hidden_state``, ``temperature``, ``sysfun``, ``enable_lim``, ``prev_state``, ``new_state``,
    ``port_connected``, ``enable_integration``, and ``cache`` (a value computed by init).
    """

    value: str
    name: str
    kind: str
    index: int


@dataclass(frozen=True)
class Callback:
    """A simulator function called from MIR.

    ``kind`` is the callback's family (``SimParam``, ``SimParamOpt``, ``SimParamStr``,
    ``TimeDerivative``, ``NodeDerivative``, ``StoreLimit``, ``BuiltinLimit``, ``LimDiscontinuity``,
    ``Analysis``, ``Print``, ``SetRetFlag``, ``CollapseHint``, ``WhiteNoise``, ``FlickerNoise``,
    ``NoiseTable``, ``ParamInfo`` (bound violation in init)) and ``text`` OpenVAF's full description.
    """

    name: str
    kind: str
    text: str
    num_args: int
    num_returns: int


@dataclass
class Function:
    """One MIR function: blocks (entry first, then in export order), inputs, constants, callbacks."""

    name: str
    blocks: dict[str, Block]
    entry: str
    params: list[Param]
    constants: dict[str, tuple[ValueType, float | int | bool | str]]
    callbacks: dict[str, Callback]
    types: dict[str, ValueType] = field(default_factory=dict)

    def instructions(self):
        """All instructions in block order."""
        for b in self.blocks.values():
            yield from b.instrs

    def num_instructions(self) -> int:
        return sum(len(b.instrs) for b in self.blocks.values())


@dataclass(frozen=True)
class ModuleNode:
    """An unknown of the device's equations, in OSDI descriptor order.

    ``kind`` is ``KirchoffLaw`` (a node voltage), ``BranchCurrent`` (a flow unknown, e.g.
    ``flow(NOII)``) or ``Implicit`` (an implicit-equation unknown).
    """

    name: str
    kind: str
    is_terminal: bool


@dataclass(frozen=True)
class ModuleParam:
    """A Verilog-A parameter as the OSDI descriptor lists it.

    ``type`` is ``real``/``int``/``str``; ``is_instance`` says whether it is an instance parameter.
    ``default`` is the literal default when openvaf-py knows it (else ``None``: computed in init).
    """

    name: str
    aliases: tuple[str, ...]
    type: ValueType
    is_instance: bool
    units: str
    description: str
    default: float | None


@dataclass(frozen=True)
class Residual:
    """Names of the MIR values holding one node's residual parts (``None``: identically zero)."""

    node: int
    resist: str | None
    react: str | None
    resist_lim_rhs: str | None
    react_lim_rhs: str | None


@dataclass(frozen=True)
class JacobianEntry:
    """d residual[row] / d unknown[col]; MIR values for its resistive and reactive parts."""

    row: int
    col: int
    resist: str | None
    react: str | None


@dataclass(frozen=True)
class CollapsePair:
    """Nodes ``a`` and ``b`` (``b is None``: ground) merge when init reaches one of the collapse
    hint calls in ``hints`` (init callback names). With no hints, ``decision`` — ``(value, negate)``
    naming an init MIR boolean as openvaf-py reports it — decides; with neither, the pair always
    collapses (e.g. an implicit equation or flow unknown tied to ground).
    """

    a: int
    b: int | None
    decision: tuple[str, bool] | None
    hints: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoiseSource:
    name: str
    a: int
    b: int | None


@dataclass
class ModuleIR:
    """Everything the code generator needs about one Verilog-A module."""

    name: str
    source: str
    nodes: list[ModuleNode]
    num_terminals: int
    params: list[ModuleParam]
    eval: Function
    init: Function
    cache: list[tuple[str, int]]  # (init value, eval param index)
    residuals: list[Residual]
    jacobian: list[JacobianEntry]
    collapsible: list[CollapsePair]
    noise_sources: list[NoiseSource]
    num_states: int
    has_bound_step: bool
    #: the module's name in OpenVAF's OSDI library, when it differs from ``name`` (OpenVAF drops
    #: the last character of an escaped identifier: ``\abc `` is ``ab`` there)
    osdi_name: str = ""
    #: noise variants only: probe nodes whose residual is still ``$mfactor · P`` (a form
    #: :func:`va2jax.mir.unscale_noise_residuals` does not know; their sources are refused)
    scaled_probes: tuple[str, ...] = ()
