"""Type inference for MIR values (real / int / bool / str).

Results of arithmetic, comparisons and casts have the type their opcode fixes; constants carry
theirs; function inputs get the type their consumers expect (falling back on their kind and the
parameter's declared type); phis and ``optbarrier`` take their operands' type.
"""
from __future__ import annotations

from ._ir import BOOL, INT, OPCODE_RESULT, REAL, STR, Function, ValueType

#: Operand type each opcode expects (all operands).
_OPERAND: dict[str, ValueType] = {}
for _op, _t in OPCODE_RESULT.items():
    if _t == REAL and _op not in ("ifcast", "bfcast"):
        _OPERAND[_op] = REAL
    elif _t == INT and _op not in ("ficast", "bicast"):
        _OPERAND[_op] = INT
for _op in ("feq", "fne", "flt", "fle", "fgt", "fge", "ficast", "fbcast"):
    _OPERAND[_op] = REAL
for _op in ("ieq", "ine", "ilt", "ile", "igt", "ige", "ifcast", "ibcast"):
    _OPERAND[_op] = INT
for _op in ("beq", "bne", "bnot", "bicast", "bfcast"):
    _OPERAND[_op] = BOOL
for _op in ("seq", "sne"):
    _OPERAND[_op] = STR

_KIND_TYPE: dict[str, ValueType] = {
    "param_given": BOOL, "enable_lim": BOOL, "port_connected": BOOL, "enable_integration": BOOL,
}

_CALL_RESULT: dict[str, ValueType] = {"Analysis": BOOL}


def infer_types(fn: Function, param_types: dict[str, ValueType]) -> dict[str, ValueType]:
    types: dict[str, ValueType] = {k: t for k, (t, _v) in fn.constants.items()}
    expected: dict[str, ValueType] = {}
    for ins in fn.instructions():
        exp = _OPERAND.get(ins.opcode)
        if exp is not None:
            for o in ins.operands:
                expected.setdefault(o, exp)
        if ins.opcode == "br":
            expected.setdefault(ins.operands[0], BOOL)
    for p in fn.params:
        if p.value in expected:
            types[p.value] = expected[p.value]
        elif p.kind in _KIND_TYPE:
            types[p.value] = _KIND_TYPE[p.kind]
        elif p.kind == "param":
            types[p.value] = param_types.get(p.name.lower(), REAL)
        else:
            types[p.value] = REAL
    pending = []
    for ins in fn.instructions():
        if ins.result is None:
            continue
        if ins.opcode == "call":
            cb = fn.callbacks.get(ins.func_ref or "")
            types[ins.result] = _CALL_RESULT.get(cb.kind if cb else "", REAL)
            continue
        t = OPCODE_RESULT.get(ins.opcode, "unknown")
        if t == "unknown":
            continue  # unsupported opcode: reported by the code generator with its name
        if t is None:
            pending.append(ins)
        else:
            types[ins.result] = t
    changed = True
    while pending and changed:
        changed = False
        rest = []
        for ins in pending:
            srcs = [v for _, v in ins.phi_operands] if ins.opcode == "phi" else list(ins.operands)
            known = [types[s] for s in srcs if s in types]
            if known:
                types[ins.result] = known[0]  # type: ignore[index]
                changed = True
            else:
                rest.append(ins)
        pending = rest
    for ins in pending:  # cycles through phis only: use what consumers expect
        types[ins.result] = expected.get(ins.result, REAL)  # type: ignore[index,arg-type]
    return types
