"""MIR function → straight-line JAX source (if-conversion), with ``lax.while_loop`` for loops.

The translation is *speculative*: every block's instructions run, and control flow becomes data
flow. A phi in block ``b`` picks among its incoming values with ``where`` on the predicates of its
incoming edges, computed *relative to* ``b``'s immediate dominator ``d`` (``d`` itself is taken as
true: the phi's value only matters when ``b`` runs, and then ``d`` ran). For a diamond
``d: br c → T | F → b`` that is just ``where(c, v_T, v_F)``. Effects (state stores, flags) use
predicates relative to the function entry.

A natural loop becomes one ``lax.while_loop``: its carry holds the header phis, every loop value used
after the loop (its value in the last iteration), the exit-edge flags and a "continue" flag, which
starts as the predicate of reaching the loop, so an untaken loop runs zero iterations. Under
``vmap`` finished lanes keep their carry, which is exactly per-instance semantics.

Statements are collected first and dead ones removed (backwards liveness from the outputs), so the
emitted source only holds what the requested outputs need.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import Va2JaxError
from ..mir import BOOL, INT, REAL, STR, Function, Instr, Loop, dominators, natural_loops, reverse_postorder, successors

TRUE = "True"

#: Opcode → function of two operands. ``lax`` primitives are used directly (not ``jnp``'s
#: jit-wrapped ufuncs): tracing a 20,000-statement model is ~10× faster that way.
_FUNC2 = {"fadd": "lax.add", "fsub": "lax.sub", "fmul": "lax.mul", "fdiv": "lax.div",
          "iadd": "lax.add", "isub": "lax.sub", "imul": "lax.mul",
          "flt": "lax.lt", "fle": "lax.le", "fgt": "lax.gt", "fge": "lax.ge", "feq": "lax.eq",
          "ilt": "lax.lt", "ile": "lax.le", "igt": "lax.gt", "ige": "lax.ge", "ieq": "lax.eq",
          "ine": "lax.ne", "beq": "lax.eq", "bne": "lax.ne", "seq": "lax.eq", "sne": "lax.ne",
          "iand": "lax.bitwise_and", "ior": "lax.bitwise_or", "ixor": "lax.bitwise_xor",
          "pow": "lax.pow", "atan2": "lax.atan2", "hypot": "jnp.hypot", "fne": "rt.fne",
          "idiv": "rt.idiv", "irem": "rt.irem", "frem": "lax.rem", "ishl": "rt.ishl",
          "ishr": "rt.ishr"}
_BINOP: dict[str, str] = {}
_FUNC1 = {"sqrt": "lax.sqrt", "exp": "lax.exp", "ln": "lax.log", "log": "jnp.log10",
          "floor": "lax.floor", "ceil": "lax.ceil", "sin": "lax.sin", "cos": "lax.cos",
          "tan": "lax.tan", "asin": "lax.asin", "acos": "lax.acos", "atan": "lax.atan",
          "sinh": "lax.sinh", "cosh": "lax.cosh", "tanh": "lax.tanh", "asinh": "lax.asinh",
          "acosh": "lax.acosh", "atanh": "lax.atanh", "fabs": "lax.abs", "fneg": "lax.neg",
          "ineg": "lax.neg",
          "ifcast": "rt.ifcast", "bfcast": "rt.bfcast", "ficast": "rt.ficast", "bicast": "rt.bicast",
          "ibcast": "rt.ibcast", "fbcast": "rt.fbcast", "bnot": "rt.not_",
          "inot": "lax.bitwise_not", "clog2": "rt.clog2"}

#: Real operations that are undefined or singular somewhere (NaN/inf value or derivative), with the
#: operand to guard and a value inside the domain where the derivative is finite. In an
#: if-converted block the operand becomes ``rt.guard(pred, x, safe)`` (``x`` where the block runs),
#: so that the untaken lane of a ``select`` cannot poison reverse-mode gradients (0 · inf = NaN).
GUARDED = {"sqrt": (0, "1.0"), "ln": (0, "1.0"), "log": (0, "1.0"), "exp": (0, "0.0"),
           "sinh": (0, "0.0"), "cosh": (0, "0.0"), "tan": (0, "0.0"), "asin": (0, "0.0"),
           "acos": (0, "0.0"), "atanh": (0, "0.0"), "acosh": (0, "2.0"), "fdiv": (1, "1.0"),
           "frem": (1, "1.0"), "pow": (0, "1.0"), "atan2": (1, "1.0"), "hypot": (1, "1.0")}

ZERO_OF = {REAL: "rt.F64(0.0)", INT: "rt.I32(0)", BOOL: "rt.BOOL(False)", STR: "rt.I32(0)"}


@dataclass
class Stmt:
    """One emitted statement: the names it defines and uses, and its text (or a nested loop)."""

    defs: tuple[str, ...]
    uses: tuple[str, ...]
    text: str = ""
    body: list["Stmt"] | None = None  # loop: body statements (emitted inside a nested def)
    body_head: list[str] = field(default_factory=list)
    body_tail: list[str] = field(default_factory=list)
    keep: bool = False  # effects that must stay
    remat: bool = False  # a constant or input read: re-emitted wherever needed instead of passed


class CallbackLowering:
    """How the caller wants callbacks translated (eval and init differ).

    ``lower(emitter, instr, pred_expr_fn) -> list[Stmt]`` returns statements defining
    ``instr.result`` (if any) and recording effects.
    """

    def lower(self, em: "FunctionEmitter", ins: Instr, block: str) -> list[Stmt]:  # pragma: no cover
        raise NotImplementedError


class FunctionEmitter:
    """Emit one MIR function as a list of :class:`Stmt` (see module docstring)."""

    def __init__(self, fn: Function, callbacks: CallbackLowering, describe: Callable[[str], str] | None = None):
        self.fn = fn
        self.cb = callbacks
        self.describe = describe or (lambda v: "")
        self.order = reverse_postorder(fn)
        self.idom = dominators(fn, self.order)
        self.loops = natural_loops(fn, self.order, self.idom)
        self.rpo_index = {b: i for i, b in enumerate(self.order)}
        self._tmp = 0
        self._loop_of: dict[str, Loop] = {}
        self._assign_loops(self.loops)
        # preds restricted to reachable blocks
        self.preds: dict[str, list[str]] = {b: [] for b in self.order}
        for b in self.order:
            for s in successors(fn, b):
                if s in self.preds and b not in self.preds[s]:
                    self.preds[s].append(b)
        self.defined_consts: set[str] = set()
        self.extra_defs: dict[str, list[Stmt]] = {}
        #: inside a loop body: the name of "this lane still iterates" (None at the top level)
        self._active: str | None = None

    # -- helpers ------------------------------------------------------------------------------
    def _assign_loops(self, loops: list[Loop]) -> None:
        for lp in loops:
            for b in lp.blocks:
                self._loop_of[b] = lp  # innermost wins: children assigned after parents
            self._assign_loops(lp.children)

    def tmp(self, prefix: str = "t") -> str:
        self._tmp += 1
        return f"_{prefix}{self._tmp}"

    def type_of(self, v: str) -> str:
        return self.fn.types.get(v, REAL)

    def const_stmt(self, v: str) -> Stmt:
        t, val = self.fn.constants[v]
        if t == REAL:
            f = float(val)  # type: ignore[arg-type]
            lit = "rt.F64(" + (repr(f) if f == f and abs(f) != float("inf") else f"float('{f}')") + ")"
        elif t == INT:
            lit = f"rt.I32({int(val)})"  # type: ignore[arg-type]
        elif t == BOOL:
            lit = f"rt.BOOL({bool(val)})"
        else:
            lit = f"rt.I32(STR[{val!a}])"  # ascii(): a safe literal of any string
        return Stmt((v,), (), f"{v} = {lit}", remat=True)

    # -- predicates ---------------------------------------------------------------------------
    def _edge_cond(self, src: str, dst: str) -> tuple[str, str | None]:
        """Condition of edge src→dst given src ran: ("T", None) or ("c", v) / ("!c", v)."""
        t = self.fn.blocks[src].terminator
        if t is None or t.opcode != "br" or t.targets[0] == t.targets[1]:
            return ("T", None)
        return ("c", t.operands[0]) if t.targets[0] == dst else ("!c", t.operands[0])

    def relative_preds(self, d: str, targets: list[str], region_nodes: Callable[[str], str],
                       out: list[Stmt], cache: dict) -> dict[str, str]:
        """Predicates of the blocks in ``targets`` relative to block ``d`` (``d`` = True).

        ``region_nodes(b)`` maps a block to the node it belongs to at this nesting level (a loop
        header stands for its whole loop). Emits the needed statements into ``out``; ``cache``
        memoises (d, node) → expression name across calls.
        """
        res: dict[str, str] = {}
        for tgt in targets:
            res[tgt] = self._rel(d, tgt, region_nodes, out, cache)
        return res

    def _rel(self, d: str, x: str, node_of: Callable[[str], str], out: list[Stmt], cache: dict) -> str:
        if x == d:
            return TRUE
        key = (d, x)
        if key in cache:
            return cache[key]
        # iterative post-order over predecessor graph restricted to nodes dominated by d
        stack = [(x, False)]
        while stack:
            n, expanded = stack.pop()
            if (d, n) in cache or n == d:
                continue
            preds = self.node_preds(n, node_of)
            if not expanded:
                stack.append((n, True))
                for p, _c in preds:
                    if p != d and (d, p) not in cache:
                        stack.append((p, False))
                continue
            terms = []
            uses: list[str] = []
            for p, cond in preds:
                pe = TRUE if p == d else cache.get((d, p), "False")
                term = self._and(pe, cond)
                if term == TRUE:
                    terms = [TRUE]
                    break
                if term != "False":
                    terms.append(term)
            if terms == [TRUE]:
                cache[(d, n)] = TRUE
                continue
            if not terms:
                cache[(d, n)] = "False"
                continue
            if len(terms) == 1 and _is_name(terms[0]):
                cache[(d, n)] = terms[0]
                continue
            name = self.tmp("p")
            expr = " | ".join(f"({t})" if not _is_name(t) else t for t in terms)
            for t in terms:
                uses.extend(_names_in(t))
            out.append(Stmt((name,), tuple(uses), f"{name} = {expr}"))
            cache[(d, n)] = name
        return cache[key]

    def node_preds(self, n: str, node_of: Callable[[str], str]) -> list[tuple[str, str]]:
        """(pred node, condition expression) for node ``n`` at the current nesting level."""
        res = []
        lp = self._loop_header_loop(n, node_of)
        for p in self.preds[n]:
            if lp is not None and p in lp.blocks:
                continue  # back edge into the loop header: not part of the acyclic level graph
            pn = node_of(p)
            if pn in self._loop_exit_flags:
                flag = self._loop_exit_flags[pn].get((p, n))
                res.append((pn, flag if flag is not None else "False"))
                continue
            kind, c = self._edge_cond(p, n)
            res.append((pn, TRUE if kind == "T" else (c if kind == "c" else f"rt.not_({c})")))
        return res

    def _loop_header_loop(self, n: str, node_of) -> Loop | None:
        lp = self._loop_of.get(n)
        while lp is not None:
            if lp.header == n:
                return lp
            lp = lp.parent
        return None

    @staticmethod
    def _and(a: str, b: str) -> str:
        if a == TRUE:
            return b
        if b == TRUE:
            return a
        if a == "False" or b == "False":
            return "False"
        return f"{a} & {b}" if _is_name(b) or b.startswith(("jnp.", "rt.")) else f"{a} & ({b})"

    # -- emission -----------------------------------------------------------------------------
    _loop_exit_flags: dict[str, dict[tuple[str, str], str]] = {}

    def emit(self) -> list[Stmt]:
        self._loop_exit_flags = {}
        out: list[Stmt] = []
        for v in sorted(self.fn.constants, key=lambda s: int(s[1:]) if s[1:].isdigit() else 0):
            out.append(self.const_stmt(v))
        self._emit_level(self.order, self.fn.entry, self.loops, out, top=True)
        return out

    def _emit_level(self, blocks: list[str], entry: str, loops: list[Loop], out: list[Stmt], top: bool) -> None:
        """Emit the blocks of one nesting level (``blocks`` in RPO) with entry ``entry``."""
        header_of: dict[str, Loop] = {}
        for lp in loops:
            for b in lp.blocks:
                header_of[b] = lp

        def node_of(b: str) -> str:
            lp = header_of.get(b)
            return lp.header if lp is not None else b

        cache: dict = {}
        self._level_cache = cache
        self._level_entry = entry
        self._level_node_of = node_of
        done_loops: set[str] = set()
        for b in blocks:
            lp = header_of.get(b)
            if lp is not None:
                if lp.header in done_loops:
                    continue
                done_loops.add(lp.header)
                self._emit_loop(lp, entry, node_of, out, cache)
                # restore level context (nested emission changed it)
                self._level_cache, self._level_entry, self._level_node_of = cache, entry, node_of
                continue
            self._emit_block(b, entry, node_of, out, cache)

    def global_pred(self, b: str, out: list[Stmt]) -> str:
        """Predicate of block ``b`` relative to the entry of the current nesting level."""
        return self._rel(self._level_entry, self._level_node_of(b), self._level_node_of, out, self._level_cache)

    def _emit_block(self, b: str, entry: str, node_of, out: list[Stmt], cache: dict) -> None:
        blk = self.fn.blocks[b]
        for ins in blk.instrs:
            if ins.opcode in ("br", "jmp"):
                continue
            if ins.opcode == "phi" and b == getattr(self, "_skip_phis_in", None):
                continue  # loop header phi: bound from the while_loop carry
            if ins.opcode == "exit":
                out.extend(self.cb.lower_exit(self, b))
                continue
            if ins.opcode == "phi":
                out.extend(self._emit_phi(b, ins, node_of, out, cache))
                continue
            if ins.opcode == "call":
                out.extend(self.cb.lower(self, ins, b))
                continue
            out.append(self._emit_op(ins, self._guard_pred(b, ins, out)))

    def _emit_phi(self, b: str, ins: Instr, node_of, out: list[Stmt], cache: dict) -> list[Stmt]:
        assert ins.result is not None
        incoming = [(p, v) for p, v in ins.phi_operands if p in self.preds.get(b, [])]
        if not incoming:
            incoming = list(ins.phi_operands)
        vals = [v for _, v in incoming]
        if len(set(vals)) == 1:
            return [Stmt((ins.result,), (vals[0],), f"{ins.result} = {vals[0]}")]
        d = self.idom[b]
        assert d is not None
        dn = node_of(d)
        # predicate of each incoming edge relative to idom(b)
        edge_preds = []
        for p, v in incoming:
            pn = node_of(p)
            pe = self._rel(dn, pn, node_of, out, cache) if pn != dn else TRUE
            if pn in self._loop_exit_flags:
                cond = self._loop_exit_flags[pn].get((p, b), "False")
            else:
                kind, c = self._edge_cond(p, b)
                cond = TRUE if kind == "T" else (c if kind == "c" else f"rt.not_({c})")
            edge_preds.append((self._and(pe, cond), v))  # type: ignore[arg-type]
        expr = edge_preds[-1][1]
        uses = [expr]
        for e, v in reversed(edge_preds[:-1]):
            expr = f"rt.select({e}, {v}, {expr})"
            uses.extend(_names_in(e))
            uses.append(v)
        return [Stmt((ins.result,), tuple(uses), f"{ins.result} = {expr}")]

    def _guard_pred(self, b: str, ins: Instr, out: list[Stmt]) -> str | None:
        """Predicate under which ``ins`` (in block ``b``) is really executed, when it is an operation
        of :data:`GUARDED` on reals that does not always run; else None (no guard needed)."""
        if ins.opcode not in GUARDED or self.type_of(ins.result or "") != REAL:
            return None
        p = self.global_pred(b, out)
        if self._active is not None:
            p = self._active if p == TRUE else f"{self._active} & {p}"
        return None if p == TRUE else p

    def _emit_op(self, ins: Instr, guard: str | None = None) -> Stmt:
        op, r, a = ins.opcode, ins.result, ins.operands
        assert r is not None
        uses = tuple(a)
        if guard is not None:
            k, safe = GUARDED[op]
            a = list(a)
            a[k] = f"rt.guard({guard}, {a[k]}, rt.F64({safe}))"
            uses = uses + tuple(_names_in(guard))
        if op in _BINOP:
            text = f"{r} = {a[0]} {_BINOP[op]} {a[1]}"
        elif op == "optbarrier":
            text = f"{r} = {a[0]}"
        elif op in _FUNC1:
            text = f"{r} = {_FUNC1[op]}({a[0]})"
        elif op in _FUNC2:
            text = f"{r} = {_FUNC2[op]}({a[0]}, {a[1]})"
        else:
            raise Va2JaxError(f"unsupported MIR opcode {op!r} (value {r}) in the {self.fn.name} function")
        desc = self.describe(r)
        if desc:
            text += f"  # {desc}"
        return Stmt((r,), uses, text)

    # -- loops --------------------------------------------------------------------------------
    def _emit_loop(self, lp: Loop, outer_entry: str, outer_node_of, out: list[Stmt], outer_cache: dict) -> None:
        fn = self.fn
        h = lp.header
        lid = self.tmp("loop")
        body_blocks = [b for b in self.order if b in lp.blocks]
        header_phis = [i for i in fn.blocks[h].instrs if i.opcode == "phi"]
        # values defined in the loop
        defined: list[str] = []
        for b in body_blocks:
            for i in fn.blocks[b].instrs:
                if i.result:
                    defined.append(i.result)
        # live-outs: used outside the loop
        live: list[str] = []
        used_outside: set[str] = set()
        for b in self.order:
            if b in lp.blocks:
                continue
            for i in fn.blocks[b].instrs:
                used_outside.update(i.operands)
                used_outside.update(v for _, v in i.phi_operands)
        used_outside.update(self.function_outputs())
        live = [v for v in defined if v in used_outside]
        # exit edges
        exits = [(b, s) for b in body_blocks for s in successors(fn, b) if s not in lp.blocks]
        # entry predicate at the outer level and initial header phi values
        entry_pred = self._rel(outer_entry, h, outer_node_of, out, outer_cache) if h != outer_entry else TRUE
        init_vals = []
        for ph in header_phis:
            outside = [(p, v) for p, v in ph.phi_operands if p not in lp.blocks and p in self.preds.get(h, [])]
            if not outside:
                outside = [(p, v) for p, v in ph.phi_operands if p not in lp.blocks]
            if len(outside) == 1 or len({v for _, v in outside}) == 1:
                init_vals.append(outside[0][1])
            else:  # several entry edges: select relative to the header's dominator
                d = outer_node_of(self.idom[h])  # type: ignore[arg-type]
                expr = self._select_incoming(d, h, outside, outer_node_of, out, outer_cache)
                tmpv = self.tmp("init")
                out.append(Stmt((tmpv,), tuple(_names_in(expr)), f"{tmpv} = {expr}"))
                init_vals.append(tmpv)
        carry_names = ([f"{ph.result}" for ph in header_phis] + [f"{v}" for v in live]
                       + [f"{lid}_x{k}" for k in range(len(exits))] + [f"{lid}_go"])
        init_exprs = (init_vals + [ZERO_OF.get(self.type_of(v), "rt.F64(0.0)") for v in live]
                      + ["rt.BOOL(False)"] * len(exits)
                      + [f"rt.BOOL({entry_pred})" if entry_pred in (TRUE, "False") else entry_pred])
        # --- body
        body: list[Stmt] = []
        saved = (self._level_cache, self._level_entry, self._level_node_of, dict(self._loop_exit_flags))
        carry_in = self.tmp("c")
        unpack = [f"{ph.result} = {carry_in}[{k}]" for k, ph in enumerate(header_phis)]
        inner_blocks = [b for b in body_blocks]
        # lanes that iterate: this loop's flag, and the enclosing loop's
        outer_active = self._active
        active = f"{lid}_on"
        unpack.append(f"{active} = {carry_in}[-1]" + (f" & {outer_active}" if outer_active else ""))
        self._active = active
        # header phis come from the carry: emit the header without its phis
        self._skip_phis_in = h
        self._emit_level_loop_body(inner_blocks, h, lp.children, body)
        self._skip_phis_in = None
        self._active = outer_active
        body_cache, body_node_of = self._level_cache, self._level_node_of
        latches = [b for b in self.preds[h] if b in lp.blocks]
        # next values of header phis
        next_names = []
        for ph in header_phis:
            lat = [(p, v) for p, v in ph.phi_operands if p in lp.blocks]
            expr = self._select_incoming(h, h, lat, body_node_of, body, body_cache)
            nn = self.tmp("n")
            body.append(Stmt((nn,), tuple(_names_in(expr)), f"{nn} = {expr}"))
            next_names.append(nn)
        back_terms = []
        for p in latches:
            pe = self._edge_pred(h, p, h, body_node_of, body, body_cache)
            back_terms.append(pe)
        go = self.tmp("go")
        body.append(Stmt((go,), tuple(n for t in back_terms for n in _names_in(t)),
                         f"{go} = " + (" | ".join(f"({t})" for t in back_terms) if back_terms else "rt.BOOL(False)")))
        exit_names = []
        for src, dst in exits:
            pe = self._edge_pred(h, src, dst, body_node_of, body, body_cache)
            en = self.tmp("x")
            body.append(Stmt((en,), tuple(_names_in(pe)),
                             f"{en} = rt.BOOL(True) & ({pe})" if pe != "False" else f"{en} = rt.BOOL(False)"))
            exit_names.append(en)
        ret = next_names + live + exit_names + [go]
        # lanes whose loop already finished keep their carry (batch-safe without vmap)
        body.append(Stmt((), tuple(ret), f"return rt.keep_finished({carry_in}, ({', '.join(ret)},))", keep=True))
        self._level_cache, self._level_entry, self._level_node_of, self._loop_exit_flags = saved
        # values used inside the body but defined outside (closure captures)
        body_defs = {d for s in body for d in s.defs} | set(carry_names) | {active}
        captured = sorted({u for s in body for u in s.uses if u not in body_defs and not u.startswith("rt.")})
        res_name = self.tmp("r")
        out_defs = tuple(carry_names[:-1])
        init_tuple = ", ".join(init_exprs)
        st = Stmt(out_defs, tuple(captured) + tuple(n for e in init_exprs for n in _names_in(e)),
                  body=body, keep=False)
        st.body_head = [f"def {lid}_body({carry_in}):"] + ["    " + u for u in unpack]
        st.text = (f"{res_name} = rt.while_loop({lid}_body, rt.broadcast_carry(({init_tuple},), inp))\n"
                   f"({', '.join(carry_names[:-1])}, _) = {res_name}")
        # header phis' values after the loop are the last iteration's (carried separately as live)
        out.append(st)
        flags = {}
        for k, e in enumerate(exits):
            flags[e] = f"{lid}_x{k}"
        self._loop_exit_flags[h] = flags
        # within the body, header phi names refer to carry; live names after loop are final values

    def _emit_level_loop_body(self, blocks: list[str], header: str, children: list[Loop], body: list[Stmt]) -> None:
        self._emit_level(blocks, header, children, body, top=False)

    def _edge_pred(self, d: str, src: str, dst: str, node_of, out: list[Stmt], cache: dict) -> str:
        """Predicate of the edge src → dst relative to node ``d`` (``d`` taken as true)."""
        return self._and(self._rel(d, node_of(src), node_of, out, cache), self._edge_expr(src, dst, node_of))

    def _select_incoming(self, d: str, dst: str, incoming: list[tuple[str, str]], node_of,
                         out: list[Stmt], cache: dict) -> str:
        """``select`` chain picking, among (predecessor, value) pairs, the value of the edge taken
        into ``dst``; predicates relative to ``d``; the last pair is the fallback."""
        expr = incoming[-1][1]
        for p, v in reversed(incoming[:-1]):
            expr = f"rt.select({self._edge_pred(d, p, dst, node_of, out, cache)}, {v}, {expr})"
        return expr

    def _edge_expr(self, src: str, dst: str, node_of) -> str:
        """Condition of the edge src → dst at the level of ``node_of``: when ``src`` lies in a loop
        already emitted at that level, the loop's exit flag for the edge (the branch condition
        is a value inside the loop), else the branch condition."""
        sn = node_of(src)
        if sn in self._loop_exit_flags:
            return self._loop_exit_flags[sn].get((src, dst), "False")
        return self._cond_expr(src, dst)

    def _cond_expr(self, src: str, dst: str) -> str:
        kind, c = self._edge_cond(src, dst)
        return TRUE if kind == "T" else (c if kind == "c" else f"rt.not_({c})")  # type: ignore[return-value]

    def function_outputs(self) -> set[str]:
        return getattr(self, "_outputs", set())


def _is_name(s: str) -> bool:
    return s.replace("_", "a").isalnum() and not s[0].isdigit()


def _names_in(expr: str) -> list[str]:
    import re

    return [m for m in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", expr)
            if m not in ("jnp", "where", "logical_not", "rt", "True", "False", "BOOL", "lax")]


def eliminate_dead(stmts: list[Stmt], live: set[str]) -> list[Stmt]:
    """Drop statements whose definitions nothing live uses (backwards sweep; loops kept whole)."""
    live = set(live)
    kept: list[Stmt] = []
    for st in reversed(stmts):
        if st.keep or any(d in live for d in st.defs):
            kept.append(st)
            live.update(st.uses)
            if st.body is not None:
                for s in st.body:
                    live.update(s.uses)
    kept.reverse()
    return kept


def render(stmts: list[Stmt], indent: str = "    ") -> list[str]:
    lines: list[str] = []
    for st in stmts:
        if st.body is not None:
            lines.extend(indent + h for h in st.body_head)
            lines.extend(render(st.body, indent + "    "))
            for ln in st.text.split("\n"):
                lines.append(indent + ln)
        else:
            for ln in st.text.split("\n"):
                lines.append(indent + ln)
    return lines
