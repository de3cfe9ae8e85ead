"""ModuleIR → one readable Python/JAX module with ``init(inp, sp)`` and ``eval(inp, sp)``.

``init`` is OpenVAF's init function (parameter defaults, bounds checks, temperature-dependent
pre-computation); ``eval`` the bias-dependent part (residuals and Jacobians). Both work on one
instance (scalars) and are ``vmap``-ed by :class:`va2jax.Model`. Inputs are dicts keyed by MIR value
name (``inp``) plus the simulator parameters (``sp``, a dict of float64 scalars); outputs are dicts:

* init: ``cache<k>`` (cache slots for eval), ``param:<name>`` (parameter values after defaults),
  ``collapse<k>`` (collapse decision of pair k), ``flag<k>`` (bound violation k fired);
* eval: ``rr<i>``/``rq<i>`` (resistive/reactive residual of node i), ``jr<k>``/``jq<k>``
  (Jacobian entry k), ``lr<i>``/``lq<i>`` (limiting RHS), ``ns<k>`` (state k stored by ``$limit``).
"""
from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field

from .. import _config
from ..errors import Va2JaxError
from ..mir import REAL, STR, Function, Instr, ModuleIR
from ..simparams import DEFAULT_SIM_PARAMS
from ._emit import FunctionEmitter, Stmt, _names_in, eliminate_dead, render
from ._opt import CseStats, cse

GENERATOR_VERSION = "1"


@dataclass
class InitFlag:
    """A bound-violation (or ``$finish`` in setup) event of init, with the parameters it concerns."""

    output: str
    params: tuple[str, ...]
    kind: str  # "bound" or "exit"


@dataclass
class GeneratedModule:
    """What the generator produced for one module."""

    source: str
    init_outputs: list[str]
    eval_outputs: list[str]
    flags: list[InitFlag]
    strings: dict[str, int]
    simparams: list[str]
    noise_outputs: list[str] = field(default_factory=list)
    eval_output_vars: dict[str, str] = field(default_factory=dict)
    eval_output_consts: dict[str, float] = field(default_factory=dict)


class _Lowering:
    """Callback lowering shared by init and eval."""

    def __init__(self, fn: Function, strings: dict[str, int], is_init: bool, mod: ModuleIR):
        self.fn = fn
        self.strings = strings
        self.is_init = is_init
        self.mod = mod
        self.flags: list[InitFlag] = []
        self.simparams: set[str] = set()
        self.stores: dict[int, str] = {}  # state index -> current chain variable
        self.new_state_params = {p.name: p.value for p in fn.params if p.kind == "new_state"}
        self.hint_pair: dict[str, list[int]] = {}
        for k, cp in enumerate(mod.collapsible):
            for ref in cp.hints:
                self.hint_pair.setdefault(ref, []).append(k)
        self.collapse: dict[int, str] = {}
        self._defs: dict[str, Instr] | None = None

    def _str(self, v: str) -> str:
        t, val = self.fn.constants.get(v, (None, None))
        if t != STR:
            raise Va2JaxError(f"{self.mod.source}: string argument {v} of a callback is unknown")
        return str(val)

    def _simparam(self, em: FunctionEmitter, ins: Instr, with_default: bool) -> list[Stmt]:
        name = self._str(ins.operands[0])
        r = ins.result
        if name in DEFAULT_SIM_PARAMS:
            self.simparams.add(name)
            return [Stmt((r,), (), f"{r} = sp[{name!a}]  # $simparam({_comment(name)})")]  # type: ignore[arg-type]
        if with_default:
            d = ins.operands[1]
            cast = "rt.ifcast" if em.type_of(d) != REAL else ""
            return [Stmt((r,), (d,), f"{r} = {cast}({d})  # $simparam({_comment(name)}, default): "  # type: ignore[arg-type]
                         "not a known simulator parameter")]
        raise Va2JaxError(f"{self.mod.source}: $simparam({name!r}) has no default and is not a simulator "
                          "parameter va2jax knows")

    def lower(self, em: FunctionEmitter, ins: Instr, block: str) -> list[Stmt]:
        cb = self.fn.callbacks.get(ins.func_ref or "")
        kind = cb.kind if cb else "?"
        r = ins.result
        out: list[Stmt] = []
        if kind == "SimParamOpt":
            return self._simparam(em, ins, True)
        if kind == "SimParam":
            return self._simparam(em, ins, False)
        if kind == "CollapseHint" and self.is_init:
            ks = self.hint_pair.get(ins.func_ref or "", [])
            if not ks:
                return []
            pred = em.global_pred(block, out)
            for k in ks:
                prev = self.collapse.get(k)
                var = f"_collapse{k}"
                expr = f"({prev}) | ({pred})" if prev else f"rt.BOOL(True) & ({pred})"
                out.append(Stmt((var,), tuple(_names_in(expr)), f"{var} = {expr}  # collapse hint: pair {k}"))
                self.collapse[k] = var
            return out
        if kind in ("Print", "CollapseHint", "LimDiscontinuity"):
            return []
        if kind == "Flag":
            pred = em.global_pred(block, out)
            k = len(self.flags)
            name = f"_flag{k}"
            params = self._flag_params(em, block)
            self.flags.append(InitFlag(f"flag{k}", params, "bound"))
            out.append(Stmt((name,), tuple(_names_in(pred)),
                            f"{name} = rt.BOOL(True) & ({pred})  # bound check failed: "
                            f"{_comment(', '.join(params)) or '?'}"))
            return out
        if kind == "Analysis":
            name = self._str(ins.operands[0])
            return [Stmt((r,), ("analysis",), f"{r} = rt.analysis(analysis, {name!a})")]  # type: ignore[arg-type]
        if kind == "StoreLimit":
            m = re.search(r"lim_state(\d+)", cb.text)  # type: ignore[union-attr]
            k = int(m.group(1)) if m else 0
            a = ins.operands[0]
            pred = em.global_pred(block, out)
            prev = self.stores.get(k, "rt.F64(0.0)")
            var = f"_ns{k}"
            self.stores[k] = var
            uses = (a,) + tuple(_names_in(pred)) + ((prev,) if not prev.startswith("rt.") else ())
            out.append(Stmt((var,), uses, f"{var} = jnp.where({pred}, {a}, {prev})  # $limit state {k}"))
            pname = self.new_state_params.get(f"new_state_{k}")
            if pname:
                out.append(Stmt((pname,), (var,), f"{pname} = {var}"))
            if r:
                out.append(Stmt((r,), (a,), f"{r} = {a}"))
            return out
        if kind in ("WhiteNoise", "FlickerNoise", "NoiseTable"):
            # a noise source contributes nothing to the large-signal residual
            return [Stmt((r,), (), f"{r} = rt.F64(0.0)  # {_comment(cb.text)}")] if r else []  # type: ignore[union-attr]
        if kind == "SetRetFlag":
            return []
        raise Va2JaxError(
            f"{self.mod.source}: module {self.mod.name}: simulator callback {cb.text if cb else ins.func_ref!r} "
            f"is not supported by va2jax's code generator yet")

    def lower_exit(self, em: FunctionEmitter, block: str) -> list[Stmt]:
        out: list[Stmt] = []
        pred = em.global_pred(block, out)
        k = len(self.flags)
        name = f"_flag{k}"
        self.flags.append(InitFlag(f"flag{k}", (), "exit"))
        out.append(Stmt((name,), tuple(_names_in(pred)),
                        f"{name} = rt.BOOL(True) & ({pred})  # $finish/$fatal in setup"))
        return out

    def _flag_params(self, em: FunctionEmitter, block: str) -> tuple[str, ...]:
        """Parameters whose bound check guards ``block`` (nearest dominating branch on params)."""
        defs = self._defs
        if defs is None:  # once per function (PSP103's init: hundreds of flags)
            defs = self._defs = {i.result: i for i in self.fn.instructions() if i.result}
        pnames = {p.value: p.name for p in self.fn.params if p.kind == "param"}
        b: str | None = em.idom.get(block)
        while b is not None:
            t = self.fn.blocks[b].terminator
            if t is not None and t.opcode == "br":
                found: set[str] = set()
                work, seen = [t.operands[0]], set()
                while work and len(seen) < 400:
                    v = work.pop()
                    if v in seen:
                        continue
                    seen.add(v)
                    if v in pnames:
                        found.add(pnames[v])
                    ins = defs.get(v)
                    if ins is not None:
                        work.extend(ins.operands)
                        work.extend(x for _, x in ins.phi_operands)
                if found:
                    return tuple(sorted(found))
            b = em.idom.get(b)
        return ()


def _param_final_values(fn: Function) -> dict[str, str]:
    """For each init ``param`` input, the value holding it after defaults are applied.

    OpenVAF's init selects ``given ? value : default`` with a phi at the join of a branch on the
    parameter's given flag; that phi (one of whose operands is the raw input) is the final value.
    """
    given = {p.name: p.value for p in fn.params if p.kind == "param_given"}
    raw = {p.value: p.name for p in fn.params if p.kind == "param"}
    branch_on: dict[str, str] = {}
    for b in fn.blocks.values():
        t = b.terminator
        if t is not None and t.opcode == "br":
            branch_on[b.name] = t.operands[0]
    from ..mir import dominators
    idom = dominators(fn)
    res: dict[str, str] = {}
    for b in fn.blocks.values():
        for ins in b.instrs:
            if ins.opcode != "phi":
                continue
            for _, v in ins.phi_operands:
                if v in raw:
                    name = raw[v]
                    d = idom.get(b.name)
                    if d is not None and branch_on.get(d) == given.get(name) and name not in res:
                        res[name] = ins.result  # type: ignore[assignment]
    for v, name in raw.items():
        res.setdefault(name, v)
    return res


_PRINTABLE = re.compile(r"[^ -~]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _comment(text: str) -> str:
    """``text`` (a name or string from the Verilog-A source) made safe inside a ``#`` comment:
    printable ASCII only (no line break can end the comment early)."""
    return _PRINTABLE.sub("?", text)


def _doc(text: str) -> str:
    """``text`` made safe inside a triple-quoted docstring: printable ASCII without quotes or
    backslashes (none can end the docstring or start an escape)."""
    return _comment(text).replace('"', "?").replace("\\", "?")


def _check_identifiers(mod: ModuleIR) -> None:
    """Every MIR name that becomes a Python identifier must be one (defence in depth: they come
    from openvaf-py's numbering, never from the Verilog-A source, but generated code is executed)."""
    for fn in (mod.eval, mod.init):
        names = [p.value for p in fn.params] + list(fn.constants) + list(fn.blocks)
        for ins in fn.instructions():
            names.extend(ins.operands)
            names.extend(v for _, v in ins.phi_operands)
            if ins.result:
                names.append(ins.result)
        for n in names:
            if not _IDENT.fullmatch(n) or keyword.iskeyword(n):
                raise Va2JaxError(f"{mod.source}: module {mod.name!r}: unexpected MIR value name "
                                  f"{n!r} in the {fn.name} function")
    for v, _ in mod.cache:
        if not _IDENT.fullmatch(v):
            raise Va2JaxError(f"{mod.source}: module {mod.name!r}: unexpected cache value name {v!r}")


def _describe(fn: Function) -> dict[str, str]:
    return {p.value: f"{p.kind} {p.name}" for p in fn.params}


#: Common-subexpression elimination before emission (``VA2JAX_OPT=0`` turns it off); value-
#: preserving, see :mod:`._opt`. ``OPT_STATS`` holds the last run's counts per function name.
OPTIMIZE = _config.get("OPT")
OPT_STATS: dict[str, CseStats] = {}

#: Statements per separately compiled part of ``eval`` (XLA compile time grows faster than
#: linearly with function size; parts keep each compilation small).
PART_SIZE = _config.get("PART_SIZE")


def _gen_function(fn: Function, outputs: dict[str, str], lowering: _Lowering, fname: str,
                  extra_inputs: list[str], part_size: int | None = None, optimize: bool | None = None
                  ) -> list[str]:
    em = FunctionEmitter(fn, lowering)
    em._outputs = set(outputs.values())  # type: ignore[attr-defined]
    stmts: list[Stmt] = []
    for p in fn.params:
        if p.kind == "new_state":
            stmts.append(Stmt((p.value,), (),
                              f"{p.value} = rt.F64(0.0)  # new_state {_comment(p.name)} (set by $limit)"))
        else:
            stmts.append(Stmt((p.value,), (), f"{p.value} = inp[{p.value!r}]  # {p.kind} {_comment(p.name)}",
                              remat=True))
    for x in extra_inputs:
        stmts.append(Stmt((x,), (), f"{x} = inp[{x!r}]", remat=True))
    stmts.extend(em.emit())
    if lowering.is_init:
        for k in range(len(lowering.flags)):
            outputs[f"flag{k}"] = f"_flag{k}"
        for k, var in lowering.collapse.items():
            outputs[f"collapse{k}"] = var
    else:
        for k, var in lowering.stores.items():
            outputs[f"ns{k}"] = var
    stmts = eliminate_dead(stmts, set(outputs.values()))
    if OPTIMIZE if optimize is None else optimize:
        OPT_STATS[fname] = CseStats()
        stmts = eliminate_dead(cse(stmts, OPT_STATS[fname]), set(outputs.values()))
    ret = "{" + ", ".join(f"{k!a}: {v}" for k, v in outputs.items()) + "}"
    if part_size is None or len(stmts) <= part_size:
        return [f"def {fname}(inp, sp):"] + render(stmts) + [f"    return {ret}"]
    return _render_parts(stmts, outputs, fname, part_size)


def _render_parts(stmts: list[Stmt], outputs: dict[str, str], fname: str, size: int) -> list[str]:
    """Split ``stmts`` into parts of about ``size`` statements, each its own function.

    ``{fname}_part<k>(inp, env, sp)`` reads earlier parts' values from ``env`` and returns the ones
    later parts (or the outputs) need; constants and inputs are re-read in each part.
    """
    remat = {d: st for st in stmts if st.remat for d in st.defs}
    body = [st for st in stmts if not st.remat]
    chunks: list[list[Stmt]] = []
    cur: list[Stmt] = []
    for st in body:
        cur.append(st)
        if len(cur) >= size:
            chunks.append(cur)
            cur = []
    if cur:
        chunks.append(cur)
    # names needed after each chunk
    later_uses: list[set[str]] = [set() for _ in chunks]
    acc = set(outputs.values())
    for k in range(len(chunks) - 1, -1, -1):
        later_uses[k] = set(acc)
        for st in chunks[k]:
            acc.update(st.uses)
            if st.body is not None:
                for b in st.body:
                    acc.update(b.uses)
    lines: list[str] = []
    defined_before: set[str] = set()
    part_inputs: list[tuple[tuple[str, ...], tuple[str, ...]]] = []
    for k, chunk in enumerate(chunks):
        uses: set[str] = set()
        defs: set[str] = set()
        for st in chunk:
            uses.update(st.uses)
            if st.body is not None:
                for b in st.body:
                    uses.update(b.uses)
            defs.update(st.defs)
        head: list[Stmt] = []
        env_in: list[str] = []
        inp_in: list[str] = []
        for u in sorted(uses):
            if u in remat:
                head.append(remat[u])
                if "inp[" in remat[u].text:
                    inp_in.append(u)
            elif u in defined_before:
                head.append(Stmt((u,), (), f"{u} = env[{u!r}]"))
                env_in.append(u)
        part_inputs.append((tuple(inp_in), tuple(env_in)))
        outs = sorted(d for d in defs if d in later_uses[k])
        lines.append(f"def {fname}_part{k}(inp, env, sp):")
        lines.extend(render(head + chunk))
        lines.append("    return {" + ", ".join(f"{o!r}: {o}" for o in outs) + "}")
        lines.append("")
        lines.append("")
        defined_before |= defs
    lines.append(f"{fname.upper()}_PARTS = [" + ", ".join(f"{fname}_part{k}" for k in range(len(chunks))) + "]")
    lines.append("#: per part: (names read from inp, names read from env): callers pass only these")
    lines.append(f"{fname.upper()}_PART_INPUTS = {part_inputs!r}")
    lines.append("")
    lines.append("")
    lines.append(f"def {fname}(inp, sp):")
    lines.append("    env = {}")
    lines.append(f"    for part in {fname.upper()}_PARTS:")
    lines.append("        env.update(part(inp, env, sp))")
    lines.append("    " + "\n    ".join(f"{v} = env[{v!r}]" if v not in remat else remat[v].text
                                       for v in sorted(set(outputs.values()))))
    lines.append("    return {" + ", ".join(f"{k!a}: {v}" for k, v in outputs.items()) + "}")
    return lines


def eval_output_values(mod: ModuleIR) -> dict[str, str]:
    """Eval's outputs in order, name → MIR value: ``rr``/``rq``/``lr``/``lq`` + node (resistive and
    reactive residual, their limiting RHS), then ``jr``/``jq`` + Jacobian entry. Every backend
    (the Python source and the native kernel) names and orders its outputs by this one table."""
    out: dict[str, str] = {}
    for r in mod.residuals:
        for key, v in (("rr", r.resist), ("rq", r.react), ("lr", r.resist_lim_rhs), ("lq", r.react_lim_rhs)):
            if v is not None:
                out[f"{key}{r.node}"] = v
    for k, j in enumerate(mod.jacobian):
        if j.resist is not None:
            out[f"jr{k}"] = j.resist
        if j.react is not None:
            out[f"jq{k}"] = j.react
    return out


def string_ids(mod: ModuleIR) -> dict[str, int]:
    """The id of each string constant of init and eval (strings travel as these integers): ids
    in sorted order, as the constants' order comes from openvaf-py's hash maps. Every backend
    (the Python source, the native kernel, the parameter conversion) uses this one table."""
    texts = sorted({str(v) for fn in (mod.eval, mod.init) for t, v in fn.constants.values() if t == STR})
    return {t: k for k, t in enumerate(texts)}


def init_flags(mod: ModuleIR) -> list[InitFlag]:
    """Init's bound-check and ``$finish`` flags as :func:`generate` numbers them (the emitter's
    block order, :func:`va2jax.mir.visit_order`), without generating code: what
    :meth:`Model.setup <va2jax.codegen.Model.setup>` needs to report a violated bound."""
    from types import SimpleNamespace

    from ..mir import dominators, visit_order

    fn = mod.init
    low = _Lowering(fn, {}, True, mod)
    em = SimpleNamespace(idom=dominators(fn))
    flags: list[InitFlag] = []
    for b in visit_order(fn):
        for ins in fn.blocks[b].instrs:
            if ins.opcode == "exit":
                flags.append(InitFlag(f"flag{len(flags)}", (), "exit"))
            elif ins.opcode == "call":
                cb = fn.callbacks.get(ins.func_ref or "")
                if cb is not None and cb.kind == "Flag":
                    flags.append(InitFlag(f"flag{len(flags)}", low._flag_params(em, b), "bound"))  # type: ignore[arg-type]
    return flags


def generate(mod: ModuleIR, *, part_size: int | None = None, optimize: bool | None = None) -> GeneratedModule:
    """Generate the Python/JAX source of one module (``part_size``, ``optimize``: default
    :data:`PART_SIZE`, :data:`OPTIMIZE`)."""
    _check_identifiers(mod)
    strings = string_ids(mod)
    # init outputs
    init_out: dict[str, str] = {}
    for slot, (iv, _ep) in enumerate(mod.cache):
        init_out[f"cache{slot}"] = iv
    finals = _param_final_values(mod.init)
    # A parameter with a literal default, and any model parameter (defaulted by OSDI's
    # setup_model, outside init), gets its default as its init input when not given (see
    # Model._resolve_params), so the input itself is its final value; a phi on its given flag
    # may be the model's own `if ($param_given(p)) x = p;` (x's value), not a default selection.
    literal = {p.name.lower() for p in mod.params if p.default is not None or not p.is_instance}
    raw = {p.name: p.value for p in mod.init.params if p.kind == "param"}
    for name, v in finals.items():
        init_out[f"param:{name}"] = raw[name] if name.lower() in literal and name in raw else v
    for k, cp in enumerate(mod.collapsible):
        if cp.decision is not None:
            init_out[f"collapse{k}"] = cp.decision[0]
    ev_out = eval_output_values(mod)
    init_low = _Lowering(mod.init, strings, True, mod)
    eval_low = _Lowering(mod.eval, strings, False, mod)
    init_lines = _gen_function(mod.init, init_out, init_low, "init", [], optimize=optimize)
    eval_lines = _gen_function(mod.eval, ev_out, eval_low, "eval", ["analysis"],
                               PART_SIZE if part_size is None else part_size, optimize)
    header = [
        f'"""JAX code for Verilog-A module {_doc(mod.name)}, generated by va2jax (generator {GENERATOR_VERSION}).',
        "",
        f"Source: {_doc(mod.source)}",
        "Do not edit: regenerate with `va2jax compile`.",
        '"""',
        "import jax.numpy as jnp",
        "from jax import lax",
        "",
        "from va2jax.codegen import _rt as rt",
        "",
        f"STR = {strings!a}",
        "",
        "",
    ]
    src = "\n".join(header + init_lines + ["", ""] + eval_lines) + "\n"
    consts = {v: float(mod.eval.constants[v][1]) for v in ev_out.values()  # type: ignore[arg-type]
              if v in mod.eval.constants}
    return GeneratedModule(src, list(init_out), list(ev_out),
                           init_low.flags, strings, sorted(init_low.simparams | eval_low.simparams),
                           eval_output_vars=dict(ev_out), eval_output_consts=consts)
