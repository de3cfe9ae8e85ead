"""Typed MIR function → LLVM IR function (text, see :mod:`._llir`), control flow kept as it is.

Every reachable MIR block becomes one LLVM block and every phi one LLVM phi (no if-conversion):
an untaken branch costs nothing, as in the OSDI library. Values are ``double`` (real), ``i32``
(int, and interned string ids) or ``i1`` (bool). Opcode semantics are those of the NumPy/JAX
runtime (``.._rt_ops``, ``.._rt_np``), which agree with OpenVAF's LLVM lowering:

* real arithmetic: IEEE ``fadd``/``fsub``/``fmul``/``fdiv``/``frem`` (C ``fmod``), ``fneg``; no
  fast-math flags, so LLVM neither reassociates nor contracts to FMA;
* ``sqrt``/``floor``/``ceil``/``fabs``: the exact LLVM intrinsics; every other function (``exp``,
  ``log`` = ln, ``log10``, ``pow``, trigonometric, hyperbolic, ``hypot``, ``atan2``) a call of the C
  library function under a private name (``va2jax.<f>``, bound to libm's address), so that LLVM's
  library-call simplifier cannot rewrite it (e.g. ``pow(x, 2)`` → ``x·x``);
* comparisons: ordered (``fcmp o..``; ``fne`` is ``one``: false for NaN);
* integers (i32): C division truncating toward zero, 0 when dividing by 0 (and ``x / -1`` = ``-x``
  without trapping on ``INT_MIN``); shifts by ≥ 32 give 0 (``shl``) or the sign (``ashr``);
* casts: int→real ``sitofp``, bool→real/int 0/1, real→bool ``x ≠ 0`` ordered, real→int rounds half
  away from zero (``llvm.lround``'s rule) then truncates like ``cvttsd2si``.

Effects: ``$limit`` stores write the new-state output column (a later read of the new-state input
loads it back); bound-check failures, ``$finish`` and collapse hints write 1 to their output
column; value outputs are written where their value is defined (so an ``exit`` path leaves the
columns of values it never computed as initialised, 0).
"""
from __future__ import annotations

from ...errors import Va2JaxError
from ...mir import BOOL, INT, REAL, STR, Function, ModuleIR, reverse_postorder, successors
from ...simparams import DEFAULT_SIM_PARAMS
from .._rt_ops import ANALYSIS_BITS
from . import _llir as ir
from ._layout import Layout

F64 = ir.DoubleType()
I32 = ir.IntType(32)
I64 = ir.IntType(64)
I1 = ir.IntType(1)
PTR = ir.PointerType(F64)
LL_TYPE = {REAL: F64, INT: I32, BOOL: I1, STR: I32}

#: MIR opcode → C library function (one argument unless listed in ``_LIBM2``).
_LIBM1 = {"exp": "exp", "ln": "log", "log": "log10", "sin": "sin", "cos": "cos", "tan": "tan",
          "asin": "asin", "acos": "acos", "atan": "atan", "sinh": "sinh", "cosh": "cosh",
          "tanh": "tanh", "asinh": "asinh", "acosh": "acosh", "atanh": "atanh"}
_LIBM2 = {"pow": "pow", "atan2": "atan2", "hypot": "hypot"}
LIBM_FUNCTIONS = sorted(set(_LIBM1.values()) | set(_LIBM2.values()) | {"fmod"})
_INTRINSIC1 = {"sqrt": "llvm.sqrt.f64", "floor": "llvm.floor.f64", "ceil": "llvm.ceil.f64",
               "fabs": "llvm.fabs.f64"}
_FBIN = {"fadd": "fadd", "fsub": "fsub", "fmul": "fmul", "fdiv": "fdiv", "frem": "frem"}
_FCMP = {"feq": "==", "flt": "<", "fle": "<=", "fgt": ">", "fge": ">=", "fne": "!="}
_ICMP = {"ieq": "==", "ine": "!=", "ilt": "<", "ile": "<=", "igt": ">", "ige": ">=",
         "beq": "==", "bne": "!=", "seq": "==", "sne": "!="}
_IBIN = {"iadd": "add", "isub": "sub", "imul": "mul", "iand": "and_", "ior": "or_", "ixor": "xor"}


def libm_name(f: str) -> str:
    """Private LLVM symbol under which C library function ``f`` is called."""
    return f"va2jax.{f}"


class _FnLowering:
    """Lower one MIR function into ``<prefix>_<what>_row(shared, in, out)`` (internal)."""

    def __init__(self, module: ir.Module, mod: ModuleIR, fn: Function, what: str, lay: Layout,
                 prefix: str):
        self.module, self.mod, self.fn, self.what, self.lay = module, mod, fn, what, lay
        self.is_init = what == "init"
        self.ins_names = lay.init_in if self.is_init else lay.eval_in
        self.out_names = lay.init_out if self.is_init else lay.eval_out
        self.out_col = {n: i for i, n in enumerate(self.out_names)}
        values = lay.init_values if self.is_init else lay.eval_values
        # an output that is an ``optbarrier`` copy is written where the copied value is defined:
        # the copy may sit in a block that does not run (the NumPy backend computes every block)
        copy_of = {i.result: i.operands[0] for i in fn.instructions() if i.opcode == "optbarrier"}
        self.out_of_value: dict[str, list[int]] = {}
        for n, v in values.items():
            seen = set()
            while v in copy_of and v not in seen:
                seen.add(v)
                v = copy_of[v]
            self.out_of_value.setdefault(v, []).append(self.out_col[n])
        ft = ir.FunctionType(ir.VoidType(), [PTR, PTR, PTR])
        self.func = ir.Function(module, ft, name=f"{prefix}_{what}_row")
        self.func.linkage = "internal"
        for a in self.func.args:
            a.add_attribute("noalias")
        self.shared_arg, self.in_arg, self.out_arg = self.func.args
        self.vals: dict[str, ir.Value] = {}
        self.new_state = {p.value: p.name for p in fn.params if p.kind == "new_state"}

    # -- hooks of the tangent lowering (``_tangent``); nothing here ---------------------------------
    def prologue(self, b: ir.IRBuilder) -> None:
        """After the outputs are zeroed in the entry block."""

    def input_loaded(self, b: ir.IRBuilder, v: str, col: int) -> None:
        """Input value ``v`` was read from ``in`` column ``col``."""

    def phi_created(self, b: ir.IRBuilder, ph, ins) -> None:
        """Phi ``ph`` of instruction ``ins`` was placed (its incomings follow later)."""

    def phi_incoming(self, pb: ir.IRBuilder, result: str, v: str, block) -> None:
        """Phi ``result`` takes value ``v`` from ``block`` (``pb``: before its terminator)."""

    # -- helpers ----------------------------------------------------------------------------------
    def err(self, msg: str) -> Va2JaxError:
        return Va2JaxError(f"{self.mod.source}: module {self.mod.name}: native backend, IR function "
                           f"{self.fn.name or self.what}: {msg}")

    def type_of(self, v: str) -> str:
        if v in self.fn.constants:
            return self.fn.constants[v][0]
        return self.fn.types.get(v, REAL)

    def const(self, v: str) -> ir.Constant:
        t, val = self.fn.constants[v]
        if t == REAL:
            return ir.Constant(F64, float(val))  # type: ignore[arg-type]
        if t == INT:
            return ir.Constant(I32, int(val))  # type: ignore[arg-type]
        if t == BOOL:
            return ir.Constant(I1, int(bool(val)))
        return ir.Constant(I32, self.lay.strings[str(val)])

    def slot(self, b: ir.IRBuilder, base, col: int):
        return b.gep(base, [ir.Constant(I64, col)], inbounds=True)

    def to_double(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        if x.type == F64:
            return x
        if x.type == I1:
            return b.uitofp(x, F64)
        return b.sitofp(x, F64)

    def from_double(self, b: ir.IRBuilder, x: ir.Value, t: str) -> ir.Value:
        if t == REAL:
            return x
        if t == BOOL:
            return b.fcmp_unordered("!=", x, ir.Constant(F64, 0.0))
        return b.fptosi(x, I32)

    def coerce(self, b: ir.IRBuilder, x: ir.Value, ty: ir.Type) -> ir.Value:
        """``x`` as type ``ty`` (the runtime's implicit promotions; a no-op when types agree)."""
        if x.type == ty:
            return x
        if ty == F64:
            return self.to_double(b, x)
        if ty == I1:
            if x.type == F64:
                return b.fcmp_ordered("!=", x, ir.Constant(F64, 0.0))
            return b.icmp_signed("!=", x, ir.Constant(x.type, 0))
        if x.type == I1:
            return b.zext(x, ty)
        return b.fptosi(x, ty)

    def get(self, b: ir.IRBuilder, v: str, ty: ir.Type | None = None) -> ir.Value:
        if v in self.fn.constants:
            x = self.const(v)
        elif v in self.new_state:
            x = self._load_new_state(b, v)
        else:
            x = self.vals.get(v)
            if x is None:
                raise self.err(f"value {v} is used before it is defined")
        return x if ty is None else self.coerce(b, x, ty)

    def _load_new_state(self, b: ir.IRBuilder, v: str) -> ir.Value:
        digits = "".join(c for c in self.new_state[v] if c.isdigit())
        col = self.out_col.get(f"ns{int(digits or 0)}")
        if col is None:
            return ir.Constant(F64, 0.0)
        return b.load(self.slot(b, self.out_arg, col))

    def declare(self, name: str, nargs: int) -> ir.Function:
        g = self.module.globals.get(name)
        if g is None:
            g = ir.Function(self.module, ir.FunctionType(F64, [F64] * nargs), name=name)
            if not name.startswith("llvm."):
                g.attributes.add("nounwind")
        return g

    def store_outputs(self, b: ir.IRBuilder, v: str, x: ir.Value) -> None:
        for col in self.out_of_value.get(v, ()):
            b.store(self.to_double(b, x), self.slot(b, self.out_arg, col))

    # -- function ---------------------------------------------------------------------------------
    def lower(self) -> ir.Function:
        fn = self.fn
        order = reverse_postorder(fn)
        reach = set(order)
        entry = self.func.append_basic_block("entry")
        blocks = {name: self.func.append_basic_block(f"b_{name}") for name in order}
        ret = self.func.append_basic_block("ret")
        b = ir.IRBuilder(entry)
        one = ir.Constant(F64, 1.0)
        zero = ir.Constant(F64, 0.0)
        for col in range(len(self.out_names)):
            b.store(zero, self.slot(b, self.out_arg, col))
        self.prologue(b)
        col_of_in = {v: i for i, v in enumerate(self.ins_names)}
        for p in fn.params:
            if p.kind == "new_state" or p.value not in col_of_in:
                continue  # (an input nothing reads has no column)
            x = b.load(self.slot(b, self.in_arg, col_of_in[p.value]))
            self.vals[p.value] = self.from_double(b, x, self.type_of(p.value))
            self.input_loaded(b, p.value, col_of_in[p.value])
        self.analysis = None
        if not self.is_init:
            x = b.load(self.slot(b, self.in_arg, col_of_in["analysis"]))
            self.analysis = b.fptosi(x, I32)
        for v in self.out_of_value:  # outputs that are inputs or constants
            if v in fn.constants or v in self.vals:
                self.store_outputs(b, v, self.get(b, v))
        b.branch(blocks[fn.entry])
        phis: list[tuple[ir.PhiInstr, str, object]] = []
        preds: dict[str, list[str]] = {n: [] for n in order}
        for n in order:
            for s in successors(fn, n):
                if n not in preds[s]:
                    preds[s].append(n)
        for n in order:
            b = ir.IRBuilder(blocks[n])
            pending: list[tuple[str, ir.Value]] = []
            instrs = fn.blocks[n].instrs
            for i, ins in enumerate(instrs):
                op = ins.opcode
                if op == "phi":
                    ty = LL_TYPE[self.type_of(ins.result)]  # type: ignore[arg-type]
                    ph = b.phi(ty, name=ins.result)
                    self.vals[ins.result] = ph  # type: ignore[index]
                    self.phi_created(b, ph, ins)
                    phis.append((ph, n, ins))
                    pending.append((ins.result, ph))  # type: ignore[arg-type]
                    continue
                if pending:
                    for v, x in pending:
                        self.store_outputs(b, v, x)
                    pending = []
                if op == "br":
                    c = self.get(b, ins.operands[0], I1)
                    t, f = ins.targets
                    if t == f:
                        b.branch(blocks[t])
                    else:
                        b.cbranch(c, blocks[t], blocks[f])
                    continue
                if op == "jmp":
                    b.branch(blocks[ins.targets[0]])
                    continue
                if op == "exit":
                    col = self.lay.flag_of.get((n, i)) if self.is_init else None
                    if col is not None:
                        b.store(one, self.slot(b, self.out_arg, col))
                    b.branch(ret)
                    continue
                if op == "call":
                    x = self.call(b, n, i, ins)
                else:
                    x = self.op(b, ins)
                if ins.result is not None and x is not None:
                    self.vals[ins.result] = x
                    self.store_outputs(b, ins.result, x)
            for v, x in pending:
                self.store_outputs(b, v, x)
            if not b.block.is_terminated:
                b.branch(ret)
        for ph, n, ins in phis:
            inc = {p: v for p, v in ins.phi_operands if p in reach}  # type: ignore[attr-defined]
            for p in preds[n]:
                if p not in inc:
                    raise self.err(f"phi {ins.result} in block {n} has no value for predecessor {p}")  # type: ignore[attr-defined]
                pb = ir.IRBuilder(blocks[p])
                pb.position_before(blocks[p].terminator)
                ph.add_incoming(self.get(pb, inc[p], ph.type), blocks[p])
                self.phi_incoming(pb, ins.result, inc[p], blocks[p])  # type: ignore[attr-defined]
        ir.IRBuilder(ret).ret_void()
        return self.func

    # -- instructions -----------------------------------------------------------------------------
    def op(self, b: ir.IRBuilder, ins) -> ir.Value:
        op, a = ins.opcode, ins.operands
        if op in _FBIN:
            return getattr(b, _FBIN[op])(self.get(b, a[0], F64), self.get(b, a[1], F64))
        if op == "fneg":
            return b.fneg(self.get(b, a[0], F64))
        if op in _FCMP:
            return b.fcmp_ordered(_FCMP[op], self.get(b, a[0], F64), self.get(b, a[1], F64))
        if op in _ICMP:
            ty = I1 if op in ("beq", "bne") else I32
            return b.icmp_signed(_ICMP[op], self.get(b, a[0], ty), self.get(b, a[1], ty))
        if op in _IBIN:
            return getattr(b, _IBIN[op])(self.get(b, a[0], I32), self.get(b, a[1], I32))
        if op in _INTRINSIC1:
            return b.call(self.declare(_INTRINSIC1[op], 1), [self.get(b, a[0], F64)])
        if op in _LIBM1:
            return b.call(self.declare(libm_name(_LIBM1[op]), 1), [self.get(b, a[0], F64)])
        if op in _LIBM2:
            return b.call(self.declare(libm_name(_LIBM2[op]), 2),
                          [self.get(b, a[0], F64), self.get(b, a[1], F64)])
        if op == "optbarrier":
            return self.get(b, a[0])
        if op == "ineg":
            return b.sub(ir.Constant(I32, 0), self.get(b, a[0], I32))
        if op == "inot":
            return b.xor(self.get(b, a[0], I32), ir.Constant(I32, -1))
        if op == "bnot":
            return b.xor(self.get(b, a[0], I1), ir.Constant(I1, 1))
        if op in ("idiv", "irem"):
            return self.divrem(b, op, self.get(b, a[0], I32), self.get(b, a[1], I32))
        if op in ("ishl", "ishr"):
            x, s = self.get(b, a[0], I32), self.get(b, a[1], I32)
            big = b.icmp_unsigned(">=", s, ir.Constant(I32, 32))
            if op == "ishl":
                return b.select(big, ir.Constant(I32, 0), b.shl(x, b.select(big, ir.Constant(I32, 0), s)))
            return b.ashr(x, b.select(big, ir.Constant(I32, 31), s))
        if op in ("ifcast", "bfcast"):
            return self.to_double(b, self.get(b, a[0]))
        if op == "bicast":
            return self.coerce(b, self.get(b, a[0], I1), I32)
        if op == "ibcast":
            return b.icmp_signed("!=", self.get(b, a[0], I32), ir.Constant(I32, 0))
        if op == "fbcast":
            return b.fcmp_ordered("!=", self.get(b, a[0], F64), ir.Constant(F64, 0.0))
        if op == "ficast":
            return self.ficast(b, self.get(b, a[0], F64))
        if op == "clog2":
            x = self.get(b, a[0], I32)
            ctlz = self.module.globals.get("llvm.ctlz.i32") or ir.Function(
                self.module, ir.FunctionType(I32, [I32, I1]), name="llvm.ctlz.i32")
            lz = b.call(ctlz, [b.sub(x, ir.Constant(I32, 1)), ir.Constant(I1, 0)])
            r = b.sub(ir.Constant(I32, 32), lz)
            return b.select(b.icmp_signed(">", x, ir.Constant(I32, 0)), r, ir.Constant(I32, 0))
        raise self.err(f"unsupported MIR opcode {op!r} (value {ins.result})")

    def divrem(self, b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
        zero, one, m1 = ir.Constant(I32, 0), ir.Constant(I32, 1), ir.Constant(I32, -1)
        is0 = b.icmp_signed("==", y, zero)
        ism1 = b.icmp_signed("==", y, m1)
        safe = b.select(b.or_(is0, ism1), one, y)
        if op == "idiv":
            q = b.select(ism1, b.sub(zero, x), b.sdiv(x, safe))
        else:
            q = b.select(ism1, zero, b.srem(x, safe))
        return b.select(is0, zero, q)

    def ficast(self, b: ir.IRBuilder, x: ir.Value) -> ir.Value:
        ax = b.call(self.declare("llvm.fabs.f64", 1), [x])
        fl = b.call(self.declare("llvm.floor.f64", 1), [ax])
        up = b.fcmp_ordered(">=", b.fsub(ax, fl), ir.Constant(F64, 0.5))
        r = b.select(up, b.fadd(fl, ir.Constant(F64, 1.0)), fl)
        neg = b.fcmp_ordered("<", x, ir.Constant(F64, 0.0))
        pos = b.fcmp_ordered(">", x, ir.Constant(F64, 0.0))
        s = b.select(neg, b.fneg(r), b.select(pos, r, b.fmul(x, ir.Constant(F64, 0.0))))
        return b.fptosi(s, I32)

    # -- callbacks --------------------------------------------------------------------------------
    def _str(self, v: str) -> str:
        t, val = self.fn.constants.get(v, (None, None))
        if t != STR:
            raise self.err(f"string argument {v} of a callback is unknown")
        return str(val)

    def call(self, b: ir.IRBuilder, blk: str, idx: int, ins) -> ir.Value | None:
        cb = self.fn.callbacks.get(ins.func_ref or "")
        kind = cb.kind if cb else "?"
        one = ir.Constant(F64, 1.0)
        if kind in ("SimParam", "SimParamOpt"):
            name = self._str(ins.operands[0])
            if name in DEFAULT_SIM_PARAMS:
                if name not in self.lay.shared:
                    self.lay.shared.append(name)
                return b.load(self.slot(b, self.shared_arg, self.lay.shared.index(name)))
            if kind == "SimParamOpt":
                return self.get(b, ins.operands[1], F64)
            raise self.err(f"$simparam({name!r}) has no default and is not a simulator parameter va2jax knows")
        if kind == "CollapseHint":
            if self.is_init:
                for col in self.lay.collapse_of.get((blk, idx), ()):
                    b.store(one, self.slot(b, self.out_arg, col))
            return None
        if kind in ("Print", "LimDiscontinuity", "SetRetFlag"):
            return None
        if kind == "Flag":
            col = self.lay.flag_of.get((blk, idx)) if self.is_init else None
            if col is not None:
                b.store(one, self.slot(b, self.out_arg, col))
            return None
        if kind == "Analysis":
            bit = ANALYSIS_BITS.get(self._str(ins.operands[0]).lower())
            if bit is None or self.analysis is None:
                return ir.Constant(I1, 0)
            return b.icmp_signed("!=", b.and_(self.analysis, ir.Constant(I32, bit)), ir.Constant(I32, 0))
        if kind == "StoreLimit":
            x = self.get(b, ins.operands[0], F64)
            k = self.lay.store_of.get((blk, idx))
            if k is not None:
                b.store(x, self.slot(b, self.out_arg, self.out_col[f"ns{k}"]))
            return x if ins.result else None
        if kind in ("WhiteNoise", "FlickerNoise", "NoiseTable"):
            return ir.Constant(F64, 0.0) if ins.result else None  # no large-signal contribution
        raise self.err(f"simulator callback {cb.text if cb else ins.func_ref!r} is not supported")


def _batch(module: ir.Module, row: ir.Function, name: str, n_in: int, n_out: int) -> None:
    """``void name(i64 n, double* shared, double* in, double* out)``: ``row`` on each of n rows."""
    ft = ir.FunctionType(ir.VoidType(), [I64, PTR, PTR, PTR])
    f = ir.Function(module, ft, name=name)
    n, shared, inp, out = f.args
    for a in (shared, inp, out):
        a.add_attribute("noalias")
    entry, loop, done = f.append_basic_block("entry"), f.append_basic_block("loop"), f.append_basic_block("done")
    b = ir.IRBuilder(entry)
    b.cbranch(b.icmp_signed(">", n, ir.Constant(I64, 0)), loop, done)
    b = ir.IRBuilder(loop)
    i = b.phi(I64, name="i")
    i.add_incoming(ir.Constant(I64, 0), entry)
    rin = b.gep(inp, [b.mul(i, ir.Constant(I64, n_in))], inbounds=True)
    rout = b.gep(out, [b.mul(i, ir.Constant(I64, n_out))], inbounds=True)
    b.call(row, [shared, rin, rout])
    nxt = b.add(i, ir.Constant(I64, 1))
    i.add_incoming(nxt, loop)
    b.cbranch(b.icmp_signed("<", nxt, n), loop, done)
    ir.IRBuilder(done).ret_void()

#: dense-table entry code: ``kind << DENSE_KIND_SHIFT | column`` (kind 0: +x, 1: −x, 2: |x|)
DENSE_KIND_SHIFT = 24


def _dense(module: ir.Module, row: ir.Function, name: str, n_shared: int, n_in: int, n_out: int) -> None:
    """``void name(i64 n, double* shared, double* in, double* out)``: each row's eval written
    straight into its dense outputs (row ``i`` at ``out + i·size``).

    ``shared`` = the kernel's ``n_shared`` values, then the header ``size`` (dense doubles per
    row), ``E`` (table entries), ``mode``, ``state``, ``w``, ``d``; then — mode 0 — the table
    ``tgt[E]``, ``code[E]`` (one table for every row); then — state 1 — ``col[d]``, ``a[d]``,
    ``b[d]`` and the static input rows.

    * state 0: ``in`` holds the kernel's input rows (``n_in`` wide; mode 1: ``n_in + 2E``, each
      row followed by its own table — per-instance node collapsing).
    * state 1 (the evaluator): the kernel's input rows (with their tables in mode 1) are the static
      rows in ``shared``; ``in`` row ``i`` is ``[j, src_0 … src_{w−1}]``: the static row ``j`` is
      copied to the stack and its columns ``col[k]`` set to ``src[a[k]] − src[b[k]]`` (branch
      voltages from node voltages; per call only ``V`` travels, not the rows).

    Per row: the eval row function into a stack buffer, the ``size`` outputs zeroed, then for
    ``e = 0 … E−1`` (``tgt[e] < 0``: skipped) ``out[tgt[e]] += f(buf[code[e] mod 2^24])`` with
    ``f`` chosen by ``code[e] >> 24`` (+x, −x, |x|) — so a dense element is ``((0 + s_0) + s_1) + …``
    in table order, the NumPy assembly's sums bit for bit. Table values are small integers carried
    as doubles."""
    decl = []
    for fn, sig in (("llvm.memset.p0.i64", "declare void @llvm.memset.p0.i64(ptr, i8, i64, i1)"),
                    ("llvm.memcpy.p0.p0.i64", "declare void @llvm.memcpy.p0.p0.i64(ptr, ptr, i64, i1)"),
                    ("llvm.fabs.f64", "declare double @llvm.fabs.f64(double)")):
        if fn not in module.globals:
            decl.append(sig)
    S = n_shared
    mask = (1 << DENSE_KIND_SHIFT) - 1

    def hdr(k: int, nm: str) -> str:
        return (f"  %{nm}p = getelementptr inbounds double, ptr %shared, i64 {S + k}\n"
                f"  %{nm}d = load double, ptr %{nm}p\n  %{nm} = fptosi double %{nm}d to i64\n")

    header = "".join(hdr(k, nm) for k, nm in enumerate(("size", "E", "mode", "state", "w", "nd")))
    module.raw.append("\n".join(decl) + f"""
define void @"{name}"(i64 %n, ptr noalias %shared, ptr noalias %in, ptr noalias %out) {{
entry:
  %buf = alloca [{max(n_out, 1)} x double], align 16
  %ibuf = alloca [{max(n_in, 1)} x double], align 16
{header}  %rowtab = icmp ne i64 %mode, 0
  %st = icmp ne i64 %state, 0
  %tabw = shl i64 %E, 1
  %stab = getelementptr inbounds double, ptr %shared, i64 {S + 6}
  %tabsh = select i1 %rowtab, i64 0, i64 %tabw
  %dyn = getelementptr inbounds double, ptr %stab, i64 %tabsh
  %dia = getelementptr inbounds double, ptr %dyn, i64 %nd
  %dib = getelementptr inbounds double, ptr %dia, i64 %nd
  %static = getelementptr inbounds double, ptr %dib, i64 %nd
  %extra = select i1 %rowtab, i64 %tabw, i64 0
  %sstride = add i64 %extra, {n_in}
  %wp1 = add i64 %w, 1
  %istride = select i1 %st, i64 %wp1, i64 %sstride
  %bytes = shl i64 %size, 3
  %any = icmp sgt i64 %E, 0
  %anyd = icmp sgt i64 %nd, 0
  %go = icmp sgt i64 %n, 0
  br i1 %go, label %row, label %done
row:
  %i = phi i64 [0, %entry], [%inext, %rowend]
  %ioff = mul i64 %i, %istride
  %rin0 = getelementptr inbounds double, ptr %in, i64 %ioff
  br i1 %st, label %fill, label %call
fill:
  %idxd = load double, ptr %rin0
  %idx = fptosi double %idxd to i64
  %soff = mul i64 %idx, %sstride
  %srow = getelementptr inbounds double, ptr %static, i64 %soff
  call void @llvm.memcpy.p0.p0.i64(ptr align 16 %ibuf, ptr align 8 %srow, i64 {8 * n_in}, i1 false)
  %src = getelementptr inbounds double, ptr %rin0, i64 1
  br i1 %anyd, label %dl, label %call
dl:
  %k = phi i64 [0, %fill], [%knext, %dl]
  %dcp = getelementptr inbounds double, ptr %dyn, i64 %k
  %dcd = load double, ptr %dcp
  %dc = fptosi double %dcd to i64
  %dap = getelementptr inbounds double, ptr %dia, i64 %k
  %dad = load double, ptr %dap
  %da = fptosi double %dad to i64
  %dbp = getelementptr inbounds double, ptr %dib, i64 %k
  %dbd = load double, ptr %dbp
  %db = fptosi double %dbd to i64
  %xap = getelementptr inbounds double, ptr %src, i64 %da
  %xa = load double, ptr %xap
  %xbp = getelementptr inbounds double, ptr %src, i64 %db
  %xb = load double, ptr %xbp
  %dv = fsub double %xa, %xb
  %dst = getelementptr inbounds double, ptr %ibuf, i64 %dc
  store double %dv, ptr %dst
  %knext = add i64 %k, 1
  %kmore = icmp slt i64 %knext, %nd
  br i1 %kmore, label %dl, label %call
call:
  %rin = phi ptr [%rin0, %row], [%ibuf, %fill], [%ibuf, %dl]
  %tbase = phi ptr [%rin0, %row], [%srow, %fill], [%srow, %dl]
  call void @"{row.name}"(ptr %shared, ptr %rin, ptr %buf)
  %ooff = mul i64 %i, %size
  %rout = getelementptr inbounds double, ptr %out, i64 %ooff
  call void @llvm.memset.p0.i64(ptr align 8 %rout, i8 0, i64 %bytes, i1 false)
  %rtab = getelementptr inbounds double, ptr %tbase, i64 {n_in}
  %tab = select i1 %rowtab, ptr %rtab, ptr %stab
  %ctab = getelementptr inbounds double, ptr %tab, i64 %E
  br i1 %any, label %ent, label %rowend
ent:
  %e = phi i64 [0, %call], [%enext, %entnext]
  %tp = getelementptr inbounds double, ptr %tab, i64 %e
  %td = load double, ptr %tp
  %t = fptosi double %td to i64
  %skip = icmp slt i64 %t, 0
  br i1 %skip, label %entnext, label %add
add:
  %cp = getelementptr inbounds double, ptr %ctab, i64 %e
  %cd = load double, ptr %cp
  %c = fptosi double %cd to i64
  %col = and i64 %c, {mask}
  %kind = ashr i64 %c, {DENSE_KIND_SHIFT}
  %vp = getelementptr inbounds double, ptr %buf, i64 %col
  %v = load double, ptr %vp
  %neg = fneg double %v
  %abs = call double @llvm.fabs.f64(double %v)
  %isneg = icmp eq i64 %kind, 1
  %isabs = icmp eq i64 %kind, 2
  %v1 = select i1 %isneg, double %neg, double %v
  %v2 = select i1 %isabs, double %abs, double %v1
  %dp = getelementptr inbounds double, ptr %rout, i64 %t
  %d = load double, ptr %dp
  %s = fadd double %d, %v2
  store double %s, ptr %dp
  br label %entnext
entnext:
  %enext = add i64 %e, 1
  %more = icmp slt i64 %enext, %E
  br i1 %more, label %ent, label %rowend
rowend:
  %inext = add i64 %i, 1
  %rmore = icmp slt i64 %inext, %n
  br i1 %rmore, label %row, label %done
done:
  ret void
}}""")


def lower_module(mod: ModuleIR, lay: Layout, prefix: str, triple: str = "") -> tuple[ir.Module, ir.Module]:
    """Two LLVM modules, init and eval, each with its row function and its ``*_batch`` entry point.

    Fills ``lay.shared`` with the simulator parameters the functions read.
    """
    out = []
    for what, fn in (("init", mod.init), ("eval", mod.eval)):
        m = ir.Module(name=f"{prefix}_{what}")
        if triple:
            m.triple = triple
        row = _FnLowering(m, mod, fn, what, lay, prefix).lower()
        n_in = len(lay.init_in if what == "init" else lay.eval_in)
        n_out = len(lay.init_out if what == "init" else lay.eval_out)
        _batch(m, row, f"{prefix}_{what}_batch", n_in, n_out)
        if what == "eval":
            _dense(m, row, f"{prefix}_eval_dense", len(lay.shared), n_in, n_out)
        out.append(m)
    return out[0], out[1]
