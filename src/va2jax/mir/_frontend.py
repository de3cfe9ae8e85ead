"""openvaf-py (OpenVAF's front end) → va2jax's typed IR.

:func:`load_modules` compiles a Verilog-A file with ``openvaf_py.compile_va`` and converts every
module into a :class:`~va2jax.mir._ir.ModuleIR`. Front-end diagnostics (printed by OpenVAF on the
process's stderr) are captured and turned into a one-line :class:`~va2jax.errors.Va2JaxError`
naming file and line.

Two facts of openvaf-py 0.1.5 shape this module:

* the init function exports no callback table and no string constants. Its callbacks are
  identified by their call shape (see :func:`_classify_init_call`) and the names passed to
  ``$simparam`` are recovered from the Verilog-A source (matched by their default value, then
  by source order); anything that cannot be identified is an error, never a silent zero;
* the eval function's extra inputs beyond ``param_names`` are the cache slots written by init
  (``get_cache_mapping``).
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path

from .._vasource import check_source, redact
from ..errors import Va2JaxError
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
    ValueType,
)
from ._types import infer_types

_GROUND = 4294967295


@contextlib.contextmanager
def _capture_fd2():
    """Capture what native code writes to file descriptor 2 (OpenVAF's diagnostics)."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            box: list[str] = []
            yield box
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            box.append(tmp.read().decode("utf-8", "replace"))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_error(diag: str, path: Path) -> str:
    """The first ``error`` diagnostic of OpenVAF's output as ``file:line:col: message``."""
    text = _ANSI.sub("", diag)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"\s*error(\[\w+\])?:\s*(.*)", line)
        if not m:
            continue
        msg = m.group(2).strip()
        for follow in lines[i + 1:i + 6]:
            loc = re.match(r"\s*-->\s*(.+?):(\d+):(\d+)", follow)
            if loc:
                return f"{loc.group(1)}:{loc.group(2)}:{loc.group(3)}: {msg}"
        return f"{path}: {msg}"
    return f"{path}: Verilog-A front end failed"


def compile_openvaf_py(path: str | os.PathLike[str]):
    """Run ``openvaf_py.compile_va`` and return its modules; errors become one-line Va2JaxErrors."""
    import openvaf_py

    p = Path(path)
    if not p.is_file():
        raise Va2JaxError(f"{p}: no such Verilog-A file")
    check_source(p)
    panic = None
    with _capture_fd2() as box, tempfile.TemporaryDirectory(prefix="va2jax-openvaf-") as tmp:
        old_tmp = os.environ.get("TMPDIR")
        os.environ["TMPDIR"] = tmp  # where a crash log would go: removed with the folder
        try:
            mods = openvaf_py.compile_va(str(p))
        except (ValueError, RuntimeError) as exc:
            err = exc
        except BaseException as exc:  # pyo3's PanicException derives from BaseException
            if type(exc).__name__ != "PanicException":
                raise
            err = panic = exc
        else:
            err = None
        finally:
            if old_tmp is None:
                os.environ.pop("TMPDIR", None)
            else:
                os.environ["TMPDIR"] = old_tmp
    diag = box[0] if box else ""
    if panic is not None:
        # openvaf-py panicked while rendering its diagnostic: openvaf-r gives the message
        from ..osdi import compile_va_to_osdi

        compile_va_to_osdi(p)  # raises the compiler's file:line:col message
        raise Va2JaxError(f"{p}: OpenVAF's front end failed ({str(panic).splitlines()[0]})")
    if err is not None:
        if "resolve path" in str(err) or "No such file" in diag:
            m = re.search(r"-->\s*(.+?):(\d+)", _ANSI.sub("", diag))
            where = f"{m.group(1)}:{m.group(2)}" if m else str(p)
            raise Va2JaxError(f"{where}: missing include file or unreadable source ({err})")
        raise Va2JaxError(redact(_first_error(diag, p), p))
    if not mods:
        raise Va2JaxError(f"{p}: no module in the file (nothing to compile)")
    return mods


# ---------------------------------------------------------------------------------------------
# $simparam names in the source (init exports no string constants)

_SIMPARAM_RE = re.compile(r'\$simparam(\$str)?\s*\(\s*"([^"]*)"\s*(?:,\s*([^;]*?))?\)\s*[;)+\-*/]')
_INCLUDE_RE = re.compile(r'`include\s+"([^"]+)"')


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def _source_simparams(path: Path, seen: set[Path] | None = None) -> list[tuple[str, float | None]]:
    """``$simparam("name", default)`` calls in textual order, following `` `include``."""
    seen = seen if seen is not None else set()
    if path in seen or not path.is_file():
        return []
    seen.add(path)
    text = _strip_comments(path.read_text(errors="replace"))
    out: list[tuple[int, str, float | None]] = []
    for m in _SIMPARAM_RE.finditer(text):
        default: float | None
        try:
            default = float(m.group(3)) if m.group(3) else None
        except ValueError:
            default = None
        out.append((m.start(), m.group(2), default))
    res: list[tuple[str, float | None]] = []
    inc_positions = [(m.start(), m.group(1)) for m in _INCLUDE_RE.finditer(text)]
    events = sorted([(pos, "sp", (name, d)) for pos, name, d in out]
                    + [(pos, "inc", name) for pos, name in inc_positions], key=lambda e: e[0])
    for _, kind, data in events:
        if kind == "sp":
            res.append(data)  # type: ignore[arg-type]
        else:
            res.extend(_source_simparams((path.parent / data).resolve(), seen))  # type: ignore[operator]
    return res


_IDENT = r"(?:\b[A-Za-z_]\w*\b|\\\S+\s)"  # simple or escaped identifier
_STRCMP_RE = re.compile(rf'(?:({_IDENT})\s*(?:==|!=)\s*"([^"]*)")|(?:"([^"]*)"\s*(?:==|!=)\s*({_IDENT}))')


def _ident_name(token: str) -> str:
    """The name OpenVAF gives an identifier token (an escaped one loses its ``\\``, the white
    space ending it and — OpenVAF's quirk, see :func:`_declared_name` — its last character)."""
    return token[1:].rstrip()[:-1] if token.startswith("\\") else token


def _source_text(path: Path, seen: set[Path] | None = None) -> str:
    """Comment-free text of ``path`` and (recursively) the files it `` `include``s."""
    seen = seen if seen is not None else set()
    if path in seen or not path.is_file():
        return ""
    seen.add(path)
    text = _strip_comments(path.read_text(errors="replace"))
    parts = [text]
    for m in _INCLUDE_RE.finditer(text):
        parts.append(_source_text((path.parent / m.group(1)).resolve(), seen))
    return "\n".join(parts)


def _value_number(v: str) -> int:
    m = re.search(r"(\d+)$", v)
    return int(m.group(1)) if m else -1


def _source_string_compares(source: Path) -> list[tuple[str, str]]:
    """``(identifier, literal)`` of every ``ident == "lit"`` / ``"lit" != ident`` in source order."""
    out: list[tuple[str, str]] = []
    for m in _STRCMP_RE.finditer(_source_text(source)):
        ident, lit = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
        out.append((_ident_name(ident).lower(), lit))
    return out


def _recover_init_strings(fn: Function, source: Path) -> dict[str, str]:
    """Values of init's string constants, which openvaf-py 0.1.5 does not export; {value: text}.

    Init only compares strings (``seq``/``sne``). An undefined operand compared with a string
    *parameter* ``P`` is one of the literals the source compares ``P`` with (``P == "lit"`` or
    ``"lit" != P``). OpenVAF lowers the analog block in source order, numbering values as it
    creates them and interning constants (one value per distinct literal, shared between
    parameters), so the unexported operands sorted by value number are the distinct literals
    compared with these parameters in order of first appearance. The pairing is accepted only
    when the counts match and every parameter gets only literals the source compares it with;
    otherwise an error names the parameter (never a guess).
    """
    defined = {p.value for p in fn.params} | set(fn.constants)
    for ins in fn.instructions():
        if ins.result:
            defined.add(ins.result)
    pname = {p.value: p.name for p in fn.params if p.kind == "param"}
    unknown: dict[str, set[str]] = {}  # unexported operand -> parameters compared with it
    for ins in fn.instructions():
        if ins.opcode not in ("seq", "sne"):
            continue  # other unexported strings are $strobe formats or $simparam names
        for u in ins.operands:
            if u in defined:
                continue
            other = [o for o in ins.operands if o != u]
            if not other or other[0] not in pname:
                raise Va2JaxError(
                    f"{source}: the init function compares value {u}, a string constant that "
                    f"openvaf-py does not export, with a computed string; va2jax cannot translate it")
            unknown.setdefault(u, set()).add(pname[other[0]].lower())
    if not unknown:
        return {}
    names = set().union(*unknown.values())
    compares = [(ident, lit) for ident, lit in _source_string_compares(source) if ident in names]
    literals = list(dict.fromkeys(lit for _ident, lit in compares))
    per_param: dict[str, set[str]] = {}
    for ident, lit in compares:
        per_param.setdefault(ident, set()).add(lit)
    ordered = sorted(unknown, key=_value_number)
    found = dict(zip(ordered, literals)) if len(ordered) == len(literals) else {}
    for u, params in unknown.items():
        for name in sorted(params):
            if u not in found or found[u] not in per_param.get(name, set()):
                raise Va2JaxError(
                    f"{source}: cannot recover the strings that parameter {name!r} is compared "
                    f"with in the init function (literals in the source: "
                    f"{sorted(per_param.get(name, set())) or 'none'}); openvaf-py does not export "
                    f"init string constants")
    return found


# ---------------------------------------------------------------------------------------------

_EVAL_CALLBACK_KIND = re.compile(r"^([A-Za-z]+)")


def _callback_kind(text: str) -> str:
    m = _EVAL_CALLBACK_KIND.match(text)
    return m.group(1) if m else text


def _constants(d: dict) -> dict[str, tuple[ValueType, object]]:
    consts: dict[str, tuple[ValueType, object]] = {}
    for k, v in (d.get("constants") or {}).items():
        consts[k] = (REAL, float(v))
    for k, v in (d.get("int_constants") or {}).items():
        consts[k] = (INT, int(v))
    for k, v in (d.get("bool_constants") or {}).items():
        consts[k] = (BOOL, bool(v))
    return consts


def _build_blocks(d: dict) -> tuple[dict[str, Block], str]:
    raw_blocks = d.get("blocks") or {}
    blocks: dict[str, Block] = {}
    first_block = None
    for ins in d["instructions"]:
        bname = ins["block"]
        if first_block is None:
            first_block = bname
        op = ins["opcode"]
        if op == "br":
            instr = Instr("br", None, (ins["condition"],), targets=(ins["true_block"], ins["false_block"]),
                          loop_entry=bool(ins.get("loop_entry")))
        elif op == "jmp":
            instr = Instr("jmp", None, targets=(ins["destination"],))
        elif op == "phi":
            instr = Instr("phi", ins["result"],
                          phi_operands=tuple((po["block"], po["value"]) for po in ins["phi_operands"]))
        elif op == "call":
            instr = Instr("call", ins.get("result"), tuple(ins.get("operands") or ()), func_ref=ins["func_ref"])
        else:
            instr = Instr(op, ins.get("result"), tuple(ins.get("operands") or ()))
        blocks.setdefault(bname, Block(bname)).instrs.append(instr)
    for bname, info in raw_blocks.items():
        b = blocks.setdefault(bname, Block(bname))
        b.preds = list(info.get("predecessors") or [])
        b.succs = list(info.get("successors") or [])
    entries = [b for b in blocks.values() if not b.preds]
    if first_block is not None and not blocks[first_block].preds:
        entry = first_block
    elif len(entries) == 1:
        entry = entries[0].name
    elif entries:
        entry = entries[0].name
    else:  # pragma: no cover - malformed export
        raise Va2JaxError("MIR function has no entry block")
    ordered = {entry: blocks[entry]}
    ordered.update((k, v) for k, v in blocks.items() if k != entry)
    return ordered, entry


def _classify_init_call(instr: Instr, consts: dict, str_values: set[str]) -> str:
    """Identify an init-function callback from its call shape.

    * ``(name, default) -> real``: ``SimParamOpt`` (name is an unexported string constant);
    * ``(name) -> real``: ``SimParam``;
    * no operands, no result: ``Flag`` — a bound-check failure (``ParamInfo``) or a collapse hint;
      collapse decisions come from the exported decision values, so only its predicate is kept;
    * operands, no result, first operand a string: ``Print`` (``$strobe``/``$warning``/…).
    """
    ops = instr.operands
    has_res = instr.result is not None
    if has_res and len(ops) == 2 and ops[0] not in consts and consts.get(ops[1], (None,))[0] in (REAL, INT):
        return "SimParamOpt"
    if has_res and len(ops) == 1 and ops[0] not in consts:
        return "SimParam"
    if not has_res and not ops:
        return "Flag"
    if not has_res and ops and ops[0] not in consts:
        return "Print"
    raise Va2JaxError(
        f"init function calls an unidentified simulator callback {instr.func_ref} with "
        f"{len(ops)} operand(s) and {'a' if has_res else 'no'} result; va2jax cannot translate it")


def _function(name: str, d: dict, param_names: list[str], param_kinds: list[str],
              cache_params: dict[int, str] | None = None) -> Function:
    blocks, entry = _build_blocks(d)
    consts = _constants(d)
    params: list[Param] = []
    for i, v in enumerate(d.get("params") or []):
        if i < len(param_names):
            params.append(Param(v, param_names[i], param_kinds[i], i))
        else:
            slot = (cache_params or {}).get(i)
            params.append(Param(v, f"cache[{slot}]" if slot is not None else f"extra{i}", "cache", i))
    callbacks: dict[str, Callback] = {}
    for ref, info in (d.get("function_decls") or {}).items():
        callbacks[ref] = Callback(ref, _callback_kind(info["name"]), info["name"],
                                  int(info.get("num_args", 0)), int(info.get("num_returns", 0)))
    return Function(name, blocks, entry, params, consts, callbacks)


def _resolve_init_callbacks(fn: Function, source: Path) -> dict[str, str]:
    """Give init's callbacks kinds and recover ``$simparam`` names; return {value: name}."""
    defined = {p.value for p in fn.params} | set(fn.constants)
    for ins in fn.instructions():
        if ins.result:
            defined.add(ins.result)
        for _, _v in ins.phi_operands:
            pass
    str_values: set[str] = set()
    kinds: dict[str, str] = {}
    calls = [i for i in fn.instructions() if i.opcode == "call"]
    for ins in calls:
        kind = _classify_init_call(ins, fn.constants, str_values)
        prev = kinds.get(ins.func_ref)  # type: ignore[arg-type]
        if prev and prev != kind:
            raise Va2JaxError(f"init callback {ins.func_ref} used with two shapes ({prev}, {kind})")
        kinds[ins.func_ref] = kind  # type: ignore[index]
        fn.callbacks[ins.func_ref] = Callback(ins.func_ref, kind, kind, len(ins.operands),  # type: ignore[index]
                                              int(ins.result is not None))
    # recover simparam names from the source, matched by default value, then by order
    names: dict[str, str] = {}
    wanted = [i for i in calls if kinds[i.func_ref] in ("SimParamOpt", "SimParam")]  # type: ignore[index]
    if wanted:
        src = _source_simparams(source)
        used = [False] * len(src)
        for ins in wanted:
            sval = ins.operands[0]
            if sval in names:
                continue
            default = None
            if len(ins.operands) > 1:
                default = float(fn.constants[ins.operands[1]][1])  # type: ignore[arg-type]
            pick = None
            for j, (_nm, dft) in enumerate(src):
                if used[j]:
                    continue
                if default is None and dft is None or (
                        default is not None and dft is not None and
                        (dft == default or abs(dft - default) <= 1e-12 * abs(default))):
                    pick = j
                    break
            if pick is None:
                raise Va2JaxError(
                    f"{source}: cannot recover the name of a $simparam call in the init function "
                    f"(default {default!r}); openvaf-py does not export init string constants")
            used[pick] = True
            names[sval] = src[pick][0]
    return names


def _node_pair_from_name(name: str) -> tuple[str, str | None]:
    inner = name[name.index("(") + 1:name.rindex(")")]
    parts = [s.strip() for s in inner.split(",")]
    return parts[0], (parts[1] if len(parts) > 1 else None)


def _value_or_none(var: str | None, zero_values: set[str]) -> str | None:
    if var is None:
        return None
    v = var[4:] if var.startswith("mir_") else var
    v = v if v.startswith("v") else f"v{v}"
    return None if v in zero_values else v


def _cache_mapping(m) -> list[tuple[int, int]]:
    """Cache slot k → (init value, eval parameter index).

    openvaf-py 0.1.5's ``get_cache_mapping()`` is wrong for some large models (PSP103, BSIM4,
    BSIM3, HiSIM2, …): several slots name the same eval parameter and as many eval parameters are
    named by none. Eval's inputs are its named parameters followed by the cache slots in slot
    order, so when the exported mapping is not a bijection onto those positions the slots are
    mapped by position instead (validated against OSDI).
    """
    cm = [(int(iv), int(ep)) for iv, ep in m.get_cache_mapping()]
    n = len(m.param_names)
    eps = [ep for _, ep in cm]
    if sorted(eps) == list(range(n, n + len(cm))):
        return cm
    # Slots that share an exported parameter are consecutive eval parameters (JUNCAP200: slots
    # 102..105 = h1, h2, h1, h2 of two hypfunction5 calls, exported 484, 485, 484, 485, are eval
    # parameters 484, 486, 485, 487): a stable sort by the exported index gives the positions;
    # where nothing is shared this is the position order.
    order = sorted(range(len(cm)), key=lambda k: (eps[k], k))
    pos = {k: n + r for r, k in enumerate(order)}
    return [(iv, pos[k]) for k, (iv, _ep) in enumerate(cm)]


def convert_module(m, source: Path) -> ModuleIR:
    """Convert one openvaf-py ``VaModule`` into :class:`ModuleIR`."""
    ev = m.get_mir_instructions()
    it = m.get_init_mir_instructions()
    cache_map = _cache_mapping(m)  # (init value idx, eval param idx)
    cache_params = {ep: slot for slot, (_iv, ep) in enumerate(cache_map)}
    evalf = _function("eval", ev, list(m.param_names), list(m.param_kinds), cache_params)
    initf = _function("init", it, list(m.init_param_names), list(m.init_param_kinds))
    # string constants of eval
    strs = m.get_str_constants()
    for k, s in strs.items():
        evalf.constants[k] = (STR, s)
    simparam_names = _resolve_init_callbacks(initf, source)
    for k, s in simparam_names.items():
        initf.constants[k] = (STR, s)
    for k, s in _recover_init_strings(initf, source).items():
        initf.constants[k] = (STR, s)

    dae = m.get_dae_system()
    desc = m.get_osdi_descriptor()
    nt = int(dae["num_terminals"])
    nodes = [ModuleNode(n["name"], n["kind"], i < nt) for i, n in enumerate(dae["nodes"])]
    zero_values = {k for k, (t, v) in evalf.constants.items() if t == REAL and v == 0.0}
    residuals = [Residual(int(r["node_idx"]), _value_or_none(r.get("resist_var"), zero_values),
                          _value_or_none(r.get("react_var"), zero_values),
                          _value_or_none(r.get("resist_lim_rhs_var"), zero_values),
                          _value_or_none(r.get("react_lim_rhs_var"), zero_values))
                 for r in dae["residuals"]]
    jac = [JacobianEntry(int(j["row_node_idx"]), int(j["col_node_idx"]),
                         _value_or_none(j.get("resist_var"), zero_values) if j.get("has_resist") else None,
                         _value_or_none(j.get("react_var"), zero_values) if j.get("has_react") else None)
           for j in dae["jacobian"]]
    collapsible = []
    for cp in dae.get("collapsible_pairs") or []:
        dv = cp.get("decision_var")
        decision = None
        if dv:
            neg = dv.startswith("!")
            decision = (dv.lstrip("!"), neg)
        b = int(cp["node2_idx"])
        collapsible.append(CollapsePair(int(cp["node1_idx"]), None if b == _GROUND else b, decision))
    _mark_collapse_hints(initf, collapsible)
    collapsible = _attach_hints(evalf, initf, collapsible, jac)
    defaults = m.get_param_defaults()
    params: list[ModuleParam] = []
    for p in desc["params"]:
        flags = int(p["flags"])
        ty: ValueType = {0: REAL, 1: INT, 2: STR}.get(flags & 3, REAL)
        dft = defaults.get(p["name"].lower())
        params.append(ModuleParam(p["name"], tuple(p.get("aliases") or ()), ty, bool(p["is_instance"]),
                                p.get("units") or "", p.get("description") or "",
                                None if dft is None else float(dft)))
    noise = []
    for ns in desc.get("noise_sources") or []:
        b = ns["node2"]
        b = None if b in ("gnd", "ground", _GROUND, str(_GROUND)) else int(b)
        noise.append(NoiseSource(ns["name"], int(ns["node1"]), b))
    name = _declared_name(m.name, source)
    mod = ModuleIR(
        name=name, osdi_name=m.name if name != m.name else "", source=str(source), nodes=nodes, num_terminals=nt,
        params=params,
        eval=evalf, init=initf,
        cache=[(f"v{iv}" if not str(iv).startswith("v") else str(iv), ep) for iv, ep in cache_map],
        residuals=residuals, jacobian=jac, collapsible=collapsible, noise_sources=noise,
        num_states=int(m.num_states), has_bound_step=bool(m.has_bound_step),
    )
    ptypes = {p.name.lower(): p.type for p in params}
    for fn in (evalf, initf):
        fn.types = infer_types(fn, ptypes)
    return mod


_ESCAPED_MODULE_RE = re.compile(r"\b(?:macro)?module\s+\\(\S+)")


def _declared_name(name: str, source: Path) -> str:
    """The module's name as declared in the source.

    A Verilog-A escaped identifier is ``\\`` followed by printable characters up to the next
    white space, which ends it and is not part of the name (IEEE 1364 §3.7.1). openvaf-py (and
    openvaf-r) drop its last character (``module \\escaped_evil (a);`` is named ``escaped_evi``);
    the escaped declaration whose text less its last character is ``name`` gives the real name.
    """
    found = {m.group(1) for m in _ESCAPED_MODULE_RE.finditer(_source_text(source))
             if m.group(1)[:-1] == name}
    return found.pop() if len(found) == 1 else name


def _mark_collapse_hints(fn: Function, pairs: list[CollapsePair]) -> None:
    """Re-label init ``Flag`` callbacks that are collapse hints.

    A collapse hint is a no-operand call reached when a collapse decision value holds (its block
    is the target of a branch on that value); bound-check failures are the other ``Flag`` calls.
    """
    decisions = {cp.decision[0] for cp in pairs if cp.decision is not None}
    if not decisions:
        return
    branch_into: dict[str, str] = {}
    for b in fn.blocks.values():
        t = b.terminator
        if t is not None and t.opcode == "br":
            for tgt in t.targets:
                branch_into[tgt] = t.operands[0]
    for b in fn.blocks.values():
        for ins in b.instrs:
            if ins.opcode == "call" and fn.callbacks.get(ins.func_ref or "") is not None:
                cb = fn.callbacks[ins.func_ref]  # type: ignore[index]
                if cb.kind == "Flag" and branch_into.get(b.name) in decisions:
                    fn.callbacks[cb.name] = Callback(cb.name, "CollapseHint", "CollapseHint", 0, 0)


_HINT_RE = re.compile(r"CollapseHint\(node(\d+),\s*(?:Some\(node(\d+)\)|None)\)")


def _ref_number(ref: str) -> int:
    m = re.search(r"(\d+)$", ref)
    return int(m.group(1)) if m else 0


def _attach_hints(evalf: Function, initf: Function, pairs: list[CollapsePair],
                  jac: list[JacobianEntry] | None = None) -> list[CollapsePair]:
    """Tie each collapsible pair to the init collapse-hint calls that collapse it.

    openvaf-py 0.1.5 attaches its exported decision values to the wrong pairs when a pair
    without a hint (an implicit equation tied to ground) comes first. The pair of each init hint
    call is recovered instead: init's hint callbacks, in declaration order, correspond to eval's
    ``CollapseHint(nodeA, Some(nodeB))`` declarations in order.
    """
    eval_hints = sorted(((_ref_number(cb.name), cb.text) for cb in evalf.callbacks.values()
                         if cb.kind == "CollapseHint"))
    init_hints = sorted((cb.name for cb in initf.callbacks.values() if cb.kind == "CollapseHint"),
                        key=_ref_number)
    if not init_hints or len(eval_hints) != len(init_hints):
        return pairs
    by_nodes = {(p.a, p.b): k for k, p in enumerate(pairs)}
    hints: dict[int, list[str]] = {}
    for ref, (_num, text) in zip(init_hints, eval_hints):
        m = _HINT_RE.search(text)
        if not m:
            return pairs
        a, b = int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)
        k = by_nodes.get((a, b), by_nodes.get((b, a)) if b is not None else None)
        if k is None:
            return pairs
        hints.setdefault(k, []).append(ref)
    # An implicit-equation or flow unknown tied to ground has no hint of its own: it goes with
    # the hinted pair of the branch whose equation it is (its Jacobian row touches both nodes).
    for k, p in enumerate(pairs):
        if k in hints or p.b is not None or jac is None:
            continue
        touched = {j.col for j in jac if j.row == p.a}
        cands = [h for h in hints if pairs[h].b is not None and {pairs[h].a, pairs[h].b} <= touched]
        if len(cands) == 1:
            hints[k] = list(hints[cands[0]])
    return [CollapsePair(p.a, p.b, None, tuple(hints.get(k, ()))) for k, p in enumerate(pairs)]


def load_modules(path: str | os.PathLike[str], include_dirs=(), defines=None) -> list[ModuleIR]:
    """Compile ``path`` with openvaf-py and return the IR of every module in it.

    openvaf-py resolves `` `include`` only relative to the including file and takes no macro
    definitions, so with ``include_dirs`` or ``defines`` the source is compiled from a temporary
    folder holding links to the files of its own folder and of each include folder (first one
    wins, the source's folder first) and a wrapper that `` `define``s the macros and includes it.
    Messages name the original files.
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise Va2JaxError(f"{path}: no such Verilog-A file")
    incs = [Path(d).resolve() for d in include_dirs]
    defs = {str(k): str(v) for k, v in (defines or {}).items()}
    if not incs and not defs:
        return [convert_module(m, p) for m in compile_openvaf_py(p)]
    for d in incs:
        if not d.is_dir():
            raise Va2JaxError(f"{d}: include directory does not exist")
    with tempfile.TemporaryDirectory(prefix="va2jax-src-") as tmp:
        t = Path(tmp)
        for d in [p.parent, *incs]:
            for f in d.iterdir():
                if not (t / f.name).exists():
                    (t / f.name).symlink_to(f)
        wrapper = t / "__va2jax_wrapper__.va"
        wrapper.write_text("".join(f"`define {k} {v}\n" for k, v in defs.items())
                           + f'`include "{p.name}"\n')
        try:
            mods = compile_openvaf_py(wrapper)
        except Va2JaxError as exc:
            msg = str(exc).replace(str(wrapper), str(p))
            for d in [p.parent, *incs]:
                msg = msg.replace(str(t) + os.sep, str(d) + os.sep, 1) if str(t) in msg else msg
            raise Va2JaxError(msg) from None
        return [convert_module(m, p) for m in mods]
