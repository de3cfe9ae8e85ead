"""Native forward-mode tangents: init and eval that also return ``d(outputs)/d(directions)``.

For ``K`` directions (lanes) the lowering of :mod:`._lower` is extended so that every real MIR
value ``v`` that depends on a seeded input carries a tangent ``<K x double>`` vector
``dv/d(lane)`` next to its value (tangent rules per opcode below; phis carry tangent phis; values
that depend on no seeded input carry none — a static activity analysis, a fixpoint over the IR
including loops). OpenVAF's Jacobian entries are ordinary IR values, so their tangents (second
derivatives of the currents and charges) come with the rest.

ABI of ``<prefix>_{init,eval}_tan<K>_batch(n, shared, in, out)`` (the native ABI of :mod:`._kernel`):
``in`` row = the kernel's ``n_in`` inputs, then ``n_in × K`` seeds (``d input[c] / d lane j`` at
``n_in + c·K + j``; columns that are not real inputs are ignored); ``out`` row = the ``n_out``
outputs (the same values as the plain kernel's: the same IEEE operations), then ``n_out × K``
tangents laid out like the seeds. An output never written on the path taken has value and
tangent 0.

Tangent rules are those of JAX's ``jvp`` on the gradient-safe runtime (``.._rt_grad``), which the
JAX path differentiates: ``x·y`` → ``ẋ·y + x·ẏ``; ``x/y`` → ``ẋ/y − ẏ·x/y²``; ``fmod(x, y)`` →
``ẋ − ẏ·trunc(x/y)``; ``sqrt`` → ``ẋ·0.5/√x``; ``exp`` → ``ẋ·eˣ``; ``ln`` → ``ẋ/x``; ``log10``
→ ``ẋ/(x·ln 10)``; ``xʸ`` → ``ẋ·y·xʸ⁻¹ + ẏ·ln(x or 1 if x = 0)·xʸ``; ``atan2(y, x)`` →
``(x·ẏ − y·ẋ)/(x² + y²)``; ``hypot`` → ``(x·ẋ + y·ẏ)/h`` (0 at h = 0); ``|x|`` → ``±ẋ`` (``+`` at
0); trigonometric and hyperbolic functions and their inverses their textbook derivatives;
``floor``/``ceil``, comparisons and casts to integers 0. As in the gradient-safe runtime, the
tangent of ``·``, ``/``, ``fmod``, ``xʸ``, ``atan2``, ``hypot``, ``sqrt``, ``ln``, ``log10``,
``exp``, ``sinh``, ``cosh``, ``tan``, ``asin``, ``acos``, ``atanh``, ``acosh`` is 0 where the
result is not finite, and that of ``sqrt(x)`` also where ``x ≤ 0``. The values agree with the JAX
path's ``jvp`` up to rounding (the same formulas, evaluated in another order).
"""
from __future__ import annotations

import math
import time

from ...mir import REAL, ModuleIR
from . import _llir as ir
from ._lower import F64, I64, _batch, _FnLowering, libm_name

#: opcodes whose tangent is cut to 0 where the result is not finite (``_rt_grad._finite_grad``)
_GUARDED = {"fmul", "fdiv", "frem", "pow", "atan2", "hypot", "sqrt", "ln", "log", "exp", "sinh",
            "cosh", "tan", "asin", "acos", "atanh", "acosh"}
#: real opcodes that carry a tangent from a real operand
_CARRY = {"fadd", "fsub", "fmul", "fdiv", "frem", "fneg", "optbarrier", "sqrt", "exp", "ln", "log",
          "sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "tanh", "asinh", "acosh",
          "atanh", "pow", "atan2", "hypot", "fabs"}


def activity(fn, seeded: set[str]) -> set[str]:
    """The real values of ``fn`` whose tangent may be non-zero when the inputs ``seeded`` have
    one (a fixpoint: phis of loops see their back edges)."""
    active = set(seeded)
    instrs = [ins for blk in fn.blocks.values() for ins in blk.instrs if ins.result is not None]

    def real(v: str) -> bool:
        t = fn.constants[v][0] if v in fn.constants else fn.types.get(v, REAL)
        return t == REAL

    changed = True
    while changed:
        changed = False
        for ins in instrs:
            r = ins.result
            if r in active or not real(r):
                continue
            op = ins.opcode
            if op == "phi":
                hit = any(v in active for _p, v in ins.phi_operands)
            elif op == "call":
                cb = fn.callbacks.get(ins.func_ref or "")
                hit = cb is not None and cb.kind == "StoreLimit" and ins.operands[0] in active
            elif op in _CARRY:
                hit = any(v in active for v in ins.operands)
            else:
                hit = False
            if hit:
                active.add(r)
                changed = True
    return active


class _TanLowering(_FnLowering):
    """:class:`._lower._FnLowering` that also emits the tangents of ``K`` lanes."""

    def __init__(self, module, mod, fn, what, lay, prefix, K: int):
        super().__init__(module, mod, fn, what, lay, prefix)
        self.K = K
        self.VT = ir.Type(f"<{K} x double>")
        self.n_in, self.n_out = len(self.ins_names), len(self.out_names)
        self.tan: dict[str, ir.Value] = {}
        seeded = {p.value for p in fn.params
                  if p.kind != "new_state" and p.value in self.ins_names and p.value != "analysis"
                  and self.type_of(p.value) == REAL}
        self.active = activity(fn, seeded)
        self.tphi: dict[str, ir.Phi] = {}

    # -- vector helpers -----------------------------------------------------------------------------
    @property
    def vzero(self) -> ir.Value:
        return ir.Value(self.VT, "zeroinitializer")

    def vptr(self, b, base, col: int):
        return b.gep(base, [ir.Constant(I64, col)], inbounds=True)

    def vload(self, b, ptr) -> ir.Value:
        return b._def(self.VT, f"load {self.VT.s}, ptr {ptr.ref}, align 8")

    def vstore(self, b, v, ptr) -> None:
        b._emit(f"  store {self.VT.s} {v.ref}, ptr {ptr.ref}, align 8")

    def splat(self, b, s: ir.Value) -> ir.Value:
        one = b._def(self.VT, f"insertelement {self.VT.s} poison, double {s.ref}, i64 0")
        return b._def(self.VT, f"shufflevector {self.VT.s} {one.ref}, {self.VT.s} poison, "
                               f"<{self.K} x i32> zeroinitializer")

    def scale(self, b, t: ir.Value, s: ir.Value) -> ir.Value:
        return b.fmul(t, self.splat(b, s))

    def t(self, v: str) -> ir.Value | None:
        return self.tan.get(v)

    def libm(self, b, f: str, *args) -> ir.Value:
        return b.call(self.declare(libm_name(f), len(args)), list(args))

    def intrinsic(self, b, f: str, x) -> ir.Value:
        return b.call(self.declare(f"llvm.{f}.f64", 1), [x])

    def finite(self, b, r) -> ir.Value:
        return b.fcmp_ordered("<", self.intrinsic(b, "fabs", r), ir.Constant(F64, math.inf))

    # -- hooks --------------------------------------------------------------------------------------
    def prologue(self, b) -> None:
        for col in range(self.n_out):
            self.vstore(b, self.vzero, self.vptr(b, self.out_arg, self.n_out + col * self.K))

    def input_loaded(self, b, v: str, col: int) -> None:
        if v in self.active:
            self.tan[v] = self.vload(b, self.vptr(b, self.in_arg, self.n_in + col * self.K))

    def phi_created(self, b, ph, ins) -> None:
        if ins.result in self.active:
            tp = ir.Phi(self.VT, self.func.tmp())
            b.block.lines.append(tp)
            self.tphi[ins.result] = tp
            self.tan[ins.result] = tp

    def phi_incoming(self, pb, result: str, v: str, block) -> None:
        tp = self.tphi.get(result)
        if tp is not None:
            tp.add_incoming(self.tan.get(v, self.vzero), block)

    def store_outputs(self, b, v: str, x) -> None:
        super().store_outputs(b, v, x)
        t = self.tan.get(v)
        if t is not None:
            for col in self.out_of_value.get(v, ()):
                self.vstore(b, t, self.vptr(b, self.out_arg, self.n_out + col * self.K))

    def op(self, b, ins):
        x = super().op(b, ins)
        if ins.result is not None and ins.result in self.active:
            t = self.tangent(b, ins, x)
            if t is not None:
                self.tan[ins.result] = t
        return x

    def call(self, b, blk, idx, ins):
        x = super().call(b, blk, idx, ins)
        if ins.result is not None and ins.result in self.active and ins.operands[0] in self.tan:
            self.tan[ins.result] = self.tan[ins.operands[0]]
        return x

    # -- rules --------------------------------------------------------------------------------------
    def tangent(self, b, ins, r) -> ir.Value | None:
        op, a = ins.opcode, ins.operands
        ta = self.t(a[0]) if a else None
        tb = self.t(a[1]) if len(a) > 1 else None
        if ta is None and tb is None:
            return None
        if op == "optbarrier":
            return ta
        f = (lambda i: self.get(b, a[i], F64))
        c = (lambda v: ir.Constant(F64, v))
        t = None
        extra_ok = None
        if op in ("fadd", "fsub"):
            if tb is not None and op == "fsub":
                tb = b.fneg(tb)
            t = ta if tb is None else tb if ta is None else b.fadd(ta, tb)
        elif op == "fneg":
            t = b.fneg(ta) if ta is not None else None
        elif op == "fmul":
            x, y = f(0), f(1)
            p1 = self.scale(b, ta, y) if ta is not None else None
            p2 = self.scale(b, tb, x) if tb is not None else None
            t = p1 if p2 is None else p2 if p1 is None else b.fadd(p1, p2)
        elif op == "fdiv":
            x, y = f(0), f(1)
            p1 = b.fdiv(ta, self.splat(b, y)) if ta is not None else None
            p2 = self.scale(b, tb, b.fdiv(x, b.fmul(y, y))) if tb is not None else None
            t = p1 if p2 is None else b.fneg(p2) if p1 is None else b.fsub(p1, p2)
        elif op == "frem":
            x, y = f(0), f(1)
            t = ta
            if tb is not None:
                p2 = self.scale(b, tb, self.intrinsic(b, "trunc", b.fdiv(x, y)))
                t = b.fneg(p2) if t is None else b.fsub(t, p2)
        elif op == "pow":
            x, y = f(0), f(1)
            p1 = self.scale(b, ta, b.fmul(y, self.libm(b, "pow", x, b.fsub(y, c(1.0))))) \
                if ta is not None else None
            p2 = None
            if tb is not None:
                x1 = b.select(b.fcmp_ordered("==", x, c(0.0)), c(1.0), x)
                p2 = self.scale(b, tb, b.fmul(self.libm(b, "log", x1), r))
            t = p1 if p2 is None else p2 if p1 is None else b.fadd(p1, p2)
        elif op == "atan2":  # atan2(y, x)
            y, x = f(0), f(1)
            den = b.fadd(b.fmul(x, x), b.fmul(y, y))
            p1 = self.scale(b, ta, b.fdiv(x, den)) if ta is not None else None
            p2 = self.scale(b, tb, b.fdiv(y, den)) if tb is not None else None
            t = p1 if p2 is None else b.fneg(p2) if p1 is None else b.fsub(p1, p2)
        elif op == "hypot":
            x, y = f(0), f(1)
            p1 = self.scale(b, ta, x) if ta is not None else None
            p2 = self.scale(b, tb, y) if tb is not None else None
            s = p1 if p2 is None else p2 if p1 is None else b.fadd(p1, p2)
            t = b.fdiv(s, self.splat(b, r))
            extra_ok = b.fcmp_ordered(">", r, c(0.0))
        elif ta is not None:
            x = f(0)
            d = None  # d result / d x
            if op == "sqrt":
                d = b.fdiv(c(0.5), r)
                extra_ok = b.fcmp_ordered(">", x, c(0.0))
            elif op == "exp":
                d = r
            elif op == "ln":
                t = b.fdiv(ta, self.splat(b, x))
            elif op == "log":
                d = b.fdiv(c(1.0), b.fmul(x, c(math.log(10.0))))
            elif op == "sin":
                d = self.libm(b, "cos", x)
            elif op == "cos":
                d = b.fneg(self.libm(b, "sin", x))
            elif op == "tan":
                d = b.fadd(c(1.0), b.fmul(r, r))
            elif op in ("asin", "acos"):
                d = b.fdiv(c(1.0), self.intrinsic(b, "sqrt", b.fsub(c(1.0), b.fmul(x, x))))
                if op == "acos":
                    d = b.fneg(d)
            elif op == "atan":
                d = b.fdiv(c(1.0), b.fadd(c(1.0), b.fmul(x, x)))
            elif op == "sinh":
                d = self.libm(b, "cosh", x)
            elif op == "cosh":
                d = self.libm(b, "sinh", x)
            elif op == "tanh":
                d = b.fmul(b.fadd(c(1.0), r), b.fsub(c(1.0), r))
            elif op == "asinh":
                d = b.fdiv(c(1.0), self.intrinsic(b, "sqrt", b.fadd(b.fmul(x, x), c(1.0))))
            elif op == "acosh":
                d = b.fdiv(c(1.0), self.intrinsic(b, "sqrt", b.fmul(b.fsub(x, c(1.0)), b.fadd(x, c(1.0)))))
            elif op == "atanh":
                d = b.fdiv(c(1.0), b.fmul(b.fadd(c(1.0), x), b.fsub(c(1.0), x)))
            elif op == "fabs":
                t = b.select(b.fcmp_ordered(">=", x, c(0.0)), ta, b.fneg(ta))
            if d is not None:
                t = self.scale(b, ta, d)
        if t is None:
            return None
        if op in _GUARDED:
            ok = self.finite(b, r)
            if extra_ok is not None:
                ok = b.and_(ok, extra_ok)
            t = b.select(ok, t, self.vzero)
        return t


def lower_tangent_module(mod: ModuleIR, lay, prefix: str, what: str, K: int) -> ir.Module:
    """The LLVM module of ``<prefix>_<what>_tan<K>_batch`` (``what``: ``init`` or ``eval``)."""
    m = ir.Module(name=f"{prefix}_{what}_tan{K}")
    fn = mod.init if what == "init" else mod.eval
    row = _TanLowering(m, mod, fn, what, lay, f"{prefix}_tan{K}", K).lower()
    n_in = len(lay.init_in if what == "init" else lay.eval_in)
    n_out = len(lay.init_out if what == "init" else lay.eval_out)
    _batch(m, row, f"{prefix}_{what}_tan{K}_batch", n_in * (K + 1), n_out * (K + 1))
    return m


def lanes_for(k: int) -> int:
    """The vector width compiled for ``k`` directions: the next power of two (one kernel per width)."""
    K = 1
    while K < k:
        K *= 2
    return K


#: most lanes of one kernel call; more directions are split into calls of this many
MAX_LANES = 16


def tangent_kernel(model, K: int) -> dict:
    """The compiled init and eval tangent kernels of ``model`` with ``K`` lanes (built once per
    model and width; the objects cached on disk next to the plain kernel's): a dict with the two
    batch addresses, the kernel's column names, and ``timings`` (s)."""
    cache = model.__dict__.setdefault("_native_tangent", {})
    if K in cache:
        return cache[K]
    import hashlib

    from ..._paths import cache_dir
    from . import _compile
    from ._kernel import _full_ir, model_kernel
    from ._layout import make_layout

    k = model_kernel(model)
    t0 = time.perf_counter()
    key = hashlib.sha256(f"{k.key}|tan{K}".encode()).hexdigest()[:24]
    prefix = k.prefix
    names = [f"{prefix}_init_tan{K}_batch", f"{prefix}_eval_tan{K}_batch"]
    folder = cache_dir() / "native"
    hit = _compile.cache_read(folder, key) if k.content_keyed else None
    timings: dict[str, float] = {}
    if hit is not None:
        objs = hit[0]
    else:
        ir_ = model.ir if model.ir.eval.blocks else _full_ir(model)
        lay = make_layout(ir_)
        lay.shared = list(k.shared_names)  # the plain kernel's shared columns, in its order
        if lay.init_in != k.init_in_names or lay.eval_in != k.eval_in_names \
                or lay.init_out != k.init_out_names or lay.eval_out != k.eval_out_names:
            raise RuntimeError(f"module {model.name}: tangent kernel layout differs from the kernel's")
        mods = [lower_tangent_module(ir_, lay, prefix, w, K) for w in ("init", "eval")]
        t1 = time.perf_counter()
        # both at the light level of init's plain kernel: the tangents run once per derivative,
        # and PSP103's eval tangent compiles in seconds instead of tens of seconds (docs/native.md)
        objs, timings = _compile.compile_objects(mods, f"{ir_.source}: module {ir_.name} (tangents)",
                                                 [(1, 0), (1, 0)])
        timings["lower"] = t1 - t0
        if lay.shared != list(k.shared_names):
            raise RuntimeError(f"module {model.name}: tangent kernel reads other simulator parameters")
        if k.content_keyed:
            _compile.cache_write(folder, key, objs, {"tangent": K, "model": ir_.name})
    addrs = _compile.load_objects(objs, names)
    timings["total"] = time.perf_counter() - t0
    res = cache[K] = {"init": addrs[names[0]], "eval": addrs[names[1]], "key": key, "K": K,
                      "timings": timings, "kernel": k}
    return res


def tangent_calls(model, K: int):
    """``(init_call, eval_call)``: XLA FFI functions of the ``K``-lane tangent kernels
    (``_ffi.native_call``; rows as in the module docstring)."""
    cache = model.__dict__.setdefault("_native_tangent_calls", {})
    from ... import _config

    lim = _config.get("NATIVE_THREADS")  # the FFI handlers' max_threads, as _backend._calls
    c = cache.get((K, lim))
    if c is None:
        from ._ffi import _engines, _lock, native_call

        t = tangent_kernel(model, K)
        k = t["kernel"]
        with _lock:
            _engines.append(t)
        code = t["key"] if k.content_keyed else None
        c = cache[(K, lim)] = tuple(
            native_call(t[w], k.n_shared, n_in * (K + 1), n_out * (K + 1), label=f"{model.name}_{w}_tan{K}",
                        min_rows_per_task=8, max_threads=lim, code_key=f"{code}:{w}" if code else None)
            for w, n_in, n_out in (("init", k.n_in_init, k.n_out_init), ("eval", k.n_in_eval, k.n_out_eval)))
    return c
