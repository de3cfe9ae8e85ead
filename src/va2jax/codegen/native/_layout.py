"""Column layout of the native kernels: what each ``in``/``out``/``shared`` column means.

The output names and their order are those of the Python generator (:func:`..._generate.generate`,
``GeneratedModule.init_outputs`` / ``eval_outputs``), so that native and NumPy outputs can be
compared name by name. Effects (bound-check flags, collapse hints, ``$limit`` state stores) are
numbered in the order the Python generator's emitter visits blocks (reverse post-order, a loop's
blocks emitted together where its header is first met), reproduced by :func:`visit_order`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...mir import Function, ModuleIR, visit_order
from .._generate import _param_final_values, eval_output_values, string_ids


@dataclass
class Layout:
    """Columns of one model's kernels.

    ``init_in``/``eval_in``: MIR values (function inputs) read from each ``in`` column, eval's
    last column being the OSDI analysis flags (name ``analysis``); ``shared``: simulator
    parameter names (``$simparam``), one column each; ``init_out``/``eval_out``: output names as
    the Python backend names them; ``*_out_types``: the IR type of each output column.
    ``out_values``: output name → MIR value for value outputs; ``flag_of``/``collapse_of``/
    ``store_of``: effect call (block, instruction index) → output column.
    """

    init_in: list[str]
    eval_in: list[str]
    shared: list[str]
    init_out: list[str]
    eval_out: list[str]
    init_out_types: list[str]
    eval_out_types: list[str]
    strings: dict[str, int]
    init_values: dict[str, str] = field(default_factory=dict)
    eval_values: dict[str, str] = field(default_factory=dict)
    flag_of: dict[tuple[str, int], int] = field(default_factory=dict)
    collapse_of: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    store_of: dict[tuple[str, int], int] = field(default_factory=dict)


def make_layout(mod: ModuleIR) -> Layout:
    """The kernels' columns for ``mod`` (see :class:`Layout`)."""
    init_vals: dict[str, str] = {}
    for slot, (iv, _ep) in enumerate(mod.cache):
        init_vals[f"cache{slot}"] = iv
    finals = _param_final_values(mod.init)
    literal = {p.name.lower() for p in mod.params if p.default is not None or not p.is_instance}
    raw = {p.name: p.value for p in mod.init.params if p.kind == "param"}
    for name, v in finals.items():
        init_vals[f"param:{name}"] = raw[name] if name.lower() in literal and name in raw else v
    init_out: list[str] = list(init_vals)
    decided = {}
    for k, cp in enumerate(mod.collapsible):
        if cp.decision is not None:
            decided[k] = cp.decision[0]
            init_out.append(f"collapse{k}")
    # effects of init, in emission order
    hint_pair: dict[str, list[int]] = {}
    for k, cp in enumerate(mod.collapsible):
        for ref in cp.hints:
            hint_pair.setdefault(ref, []).append(k)
    flag_blocks: list[tuple[str, int]] = []
    hint_calls: list[tuple[tuple[str, int], list[int]]] = []
    fn = mod.init
    for b in visit_order(fn):
        for i, ins in enumerate(fn.blocks[b].instrs):
            if ins.opcode == "exit":
                flag_blocks.append((b, i))
            elif ins.opcode == "call":
                cb = fn.callbacks.get(ins.func_ref or "")
                if cb is not None and cb.kind == "Flag":
                    flag_blocks.append((b, i))
                elif cb is not None and cb.kind == "CollapseHint" and hint_pair.get(ins.func_ref or ""):
                    hint_calls.append(((b, i), hint_pair[ins.func_ref or ""]))
    for k in range(len(flag_blocks)):
        init_out.append(f"flag{k}")
    hinted: list[int] = []
    for _loc, ks in hint_calls:
        for k in ks:
            if k not in hinted:
                hinted.append(k)
    for k in hinted:
        if f"collapse{k}" not in init_out:
            init_out.append(f"collapse{k}")
    for k in hinted:
        decided.pop(k, None)
    for k, v in decided.items():
        init_vals[f"collapse{k}"] = v
    ev_vals = eval_output_values(mod)  # the Python backend's names and order
    eval_out = list(ev_vals)
    store_of: dict[tuple[str, int], int] = {}
    fn = mod.eval
    for b in visit_order(fn):
        for i, ins in enumerate(fn.blocks[b].instrs):
            if ins.opcode != "call":
                continue
            cb = fn.callbacks.get(ins.func_ref or "")
            if cb is not None and cb.kind == "StoreLimit":
                m = re.search(r"lim_state(\d+)", cb.text)
                k = int(m.group(1)) if m else 0
                if f"ns{k}" not in eval_out:
                    eval_out.append(f"ns{k}")
                store_of[(b, i)] = k
    init_col = {n: c for c, n in enumerate(init_out)}
    # only inputs something reads get a column (PSP103's eval: 2,868 inputs, ≈ 500 read)
    used_init = _used(mod.init) | set(init_vals.values())
    used_eval = _used(mod.eval) | set(ev_vals.values())
    lay = Layout(
        init_in=[p.value for p in mod.init.params if p.value in used_init],
        eval_in=[p.value for p in mod.eval.params if p.kind != "new_state" and p.value in used_eval]
        + ["analysis"],
        shared=[], init_out=init_out, eval_out=eval_out, init_out_types=[], eval_out_types=[],
        strings=string_ids(mod), init_values=init_vals, eval_values=ev_vals)
    lay.flag_of = {loc: init_col[f"flag{k}"] for k, loc in enumerate(flag_blocks)}
    lay.collapse_of = {loc: [init_col[f"collapse{k}"] for k in ks] for loc, ks in hint_calls}
    lay.store_of = store_of
    lay.init_out_types = [_out_type(mod.init, init_vals.get(n)) if n in init_vals else "bool" for n in init_out]
    lay.eval_out_types = [_out_type(mod.eval, ev_vals.get(n)) if n in ev_vals else "real" for n in eval_out]
    return lay


def _out_type(fn: Function, v: str | None) -> str:
    if v is None:
        return "real"
    if v in fn.constants:
        return fn.constants[v][0]
    return fn.types.get(v, "real")


def _used(fn: Function) -> set[str]:
    """Values read by some instruction of ``fn`` (operands and phi operands)."""
    used: set[str] = set()
    for ins in fn.instructions():
        used.update(ins.operands)
        used.update(v for _, v in ins.phi_operands)
    return used
