"""Readable text form of the IR (``va2jax mir FILE.va [--init]``)."""
from __future__ import annotations

from ._cfg import reverse_postorder
from ._ir import Function, ModuleIR


def _fmt_const(t: str, v: object) -> str:
    return repr(v) if t == "str" else f"{t} {v!r}"


def dump_function(fn: Function) -> str:
    lines = [f"function {fn.name} ({fn.num_instructions()} instructions, {len(fn.blocks)} blocks)"]
    for p in fn.params:
        lines.append(f"  input {p.value}: {fn.types.get(p.value, '?')}  = {p.kind} {p.name!r}")
    for k, (t, v) in sorted(fn.constants.items(), key=lambda kv: int(kv[0][1:]) if kv[0][1:].isdigit() else 0):
        lines.append(f"  const {k} = {_fmt_const(t, v)}")
    for ref, cb in fn.callbacks.items():
        lines.append(f"  callback {ref}: {cb.text}")
    order = reverse_postorder(fn)
    for bname in order + [b for b in fn.blocks if b not in set(order)]:
        b = fn.blocks[bname]
        lines.append(f"{bname}:")
        for ins in b.instrs:
            if ins.opcode == "phi":
                rhs = "phi " + ", ".join(f"[{blk}: {v}]" for blk, v in ins.phi_operands)
            elif ins.opcode == "br":
                rhs = f"br {ins.operands[0]} ? {ins.targets[0]} : {ins.targets[1]}" + (
                    "  ; loop entry" if ins.loop_entry else "")
            elif ins.opcode == "jmp":
                rhs = f"jmp {ins.targets[0]}"
            elif ins.opcode == "call":
                cb = fn.callbacks.get(ins.func_ref or "")
                rhs = f"call {cb.text if cb else ins.func_ref}(" + ", ".join(ins.operands) + ")"
            else:
                rhs = ins.opcode + " " + ", ".join(ins.operands)
            if ins.result:
                lines.append(f"    {ins.result}: {fn.types.get(ins.result, '?')} = {rhs}")
            else:
                lines.append(f"    {rhs}")
    return "\n".join(lines)


def dump_module(mod: ModuleIR, init: bool = False) -> str:
    head = [f"module {mod.name}  ({mod.source})",
            "nodes: " + ", ".join(f"{i}:{n.name}[{n.kind}]" for i, n in enumerate(mod.nodes)),
            f"terminals: {mod.num_terminals}  states: {mod.num_states}"]
    return "\n".join(head) + "\n" + dump_function(mod.init if init else mod.eval)
