"""Calling native batch kernels from JAX through the typed XLA FFI, with no Python in the loop.

A *kernel* follows the native ABI shared with the LLVM emitter (C calling convention)::

    void kernel(int64_t n, const double *shared, const double *in, double *out);

``in`` is ``n`` rows of ``n_in`` doubles and ``out`` ``n`` rows of ``n_out`` doubles, both row-major;
``shared`` holds ``n_shared`` doubles read by every row. Rows are independent, so any split of the rows
gives the same bits.

This module builds, for each kernel, an XLA FFI *handler* — ``XLA_FFI_Error* h(XLA_FFI_CallFrame*)``,
the C ABI of ``xla/ffi/api/c_api.h`` — as LLVM IR with llvmlite (no C compiler at run time). The struct
offsets it uses are computed from the very header shipped by the installed jaxlib (:class:`CHeader`),
not copied by hand. The handler answers XLA's metadata query, checks the buffers (count, kind, float64,
rank, dims) and reports a mismatch through ``XLA_FFI_Error_Create``; on large batches it splits the rows
into chunks run on XLA's own intra-op thread pool (``XLA_FFI_ThreadPool_Schedule``), the calling thread
taking chunks too, so the result is bit for bit that of one thread.

Public entry points: :func:`native_call` (a JAX function ``(shared, rows) -> out`` that works under
``jit``, ``vmap``, ``lax.while_loop``/``scan``/``fori_loop``) and :func:`native_jvp` (forward- and
reverse-mode derivatives: voltage tangents from the kernel's own Jacobian columns, every other tangent
from a JAX fallback function).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["KERNEL_CFUNCTYPE", "CHeader", "c_header", "ffi_target", "kernel_calls", "native_call", "native_jvp"]

#: ctypes prototype of a kernel: ``void (int64_t n, const double *shared, const double *in, double *out)``.
KERNEL_CFUNCTYPE = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)

# ------------------------------------------------------------------------------------------------
# Struct layouts from the installed jaxlib's c_api.h
# ------------------------------------------------------------------------------------------------

# LP64 (x86-64 System V, AArch64): sizes = alignments of the scalar types the header uses.
_SCALARS = {"size_t": 8, "int64_t": 8, "uint64_t": 8, "int32_t": 4, "uint32_t": 4, "int": 4,
            "unsigned": 4, "int16_t": 2, "uint16_t": 2, "int8_t": 1, "uint8_t": 1, "char": 1,
            "float": 4, "double": 8}
_PTR = 8
_ENUM = 4  # every enum in c_api.h has values that fit an int


@dataclass(frozen=True)
class Field:
    """One member of a C struct: byte ``offset`` from the start of the outermost struct asked for,
    ``size`` in bytes, ``kind`` ``"ptr"``, ``"int"`` or ``"struct"`` (then ``type`` names it)."""
    name: str
    offset: int
    size: int
    kind: str
    type: str | None = None


@dataclass(frozen=True)
class Struct:
    """A C struct's layout: ``size``/``align`` in bytes, fields in declaration order, and the
    ``<name>_STRUCT_SIZE`` value of ``XLA_FFI_DEFINE_STRUCT_TRAITS`` (offset + size of its last field)."""
    name: str
    size: int
    align: int
    fields: tuple[Field, ...]
    struct_size: int | None


class CHeader:
    """The declarations of ``xla/ffi/api/c_api.h`` that an FFI handler needs, parsed from its text.

    Understands exactly the subset that header uses — structs of scalar, pointer, enum and struct
    members, function pointers, enums with constant values, ``typedef <scalar> <name>;``, integer
    ``#define``\\ s and the ``_XLA_FFI_API_STRUCT_FIELD`` / ``XLA_FFI_DEFINE_STRUCT_TRAITS`` macros — and
    raises ``ValueError`` on anything else it is asked to lay out, so a changed header fails loudly
    instead of giving wrong offsets. Layout follows the C rules for LP64 targets: each member at the
    next multiple of its alignment, the struct padded to a multiple of its largest alignment.
    """

    def __init__(self, text: str):
        t = re.sub(r"/\*.*?\*/", " ", text, flags=re.DOTALL)
        t = re.sub(r"//[^\n]*", "", t)
        t = t.replace("\\\n", " ")
        self.defines: dict[str, int] = {m.group(1): int(m.group(2)) for m in
                                        re.finditer(r"^\s*#\s*define\s+(\w+)\s+(-?\d+)\s*$", t, re.MULTILINE)}
        t = re.sub(r"^\s*#[^\n]*", "", t, flags=re.MULTILINE)
        t = re.sub(r"\b_XLA_FFI_API_STRUCT_FIELD\(\s*(\w+)\s*\)", r"\1* \1", t)
        self._last = dict(re.findall(r"XLA_FFI_DEFINE_STRUCT_TRAITS\(\s*(\w+)\s*,\s*(\w+)\s*\)", t))
        self.constants: dict[str, int] = {}
        self._enums: set[str] = set()
        for m in re.finditer(r"(?:typedef\s+)?enum\s*(\w*)\s*\{(.*?)\}\s*(\w*)\s*;", t, re.DOTALL):
            self._enums.update(x for x in (m.group(1), m.group(3)) if x)
            value = -1
            for item in m.group(2).split(","):
                item = item.strip()
                if not item:
                    continue
                name, _, expr = item.partition("=")
                value = self._int(expr) if expr.strip() else value + 1
                self.constants[name.strip()] = value
        t = re.sub(r"(?:typedef\s+)?enum\s*\w*\s*\{.*?\}\s*\w*\s*;", "", t, flags=re.DOTALL)
        self._alias = {b: a for a, b in re.findall(r"\btypedef\s+(\w+)\s+(\w+)\s*;", t)}
        self._bodies = {m.group(1): m.group(2) for m in re.finditer(r"\bstruct\s+(\w+)\s*\{(.*?)\}", t, re.DOTALL)}
        self._cache: dict[str, Struct] = {}

    def _int(self, expr: str) -> int:
        parts = [p.strip().rstrip("uUlL") for p in expr.split("<<")]
        if len(parts) == 2:
            return int(parts[0], 0) << int(parts[1], 0)
        if len(parts) == 1:
            return int(parts[0], 0)
        raise ValueError(f"c_api.h: cannot evaluate enum value {expr!r}")

    def _type(self, name: str) -> tuple[int, int, str, str | None]:
        """(size, align, kind, struct name) of a named non-pointer type."""
        seen = set()
        while name in self._alias and name not in seen:
            seen.add(name)
            name = self._alias[name]
        if name in _SCALARS:
            return _SCALARS[name], _SCALARS[name], "int", None
        if name in self._enums:
            return _ENUM, _ENUM, "int", None
        if name in self._bodies:
            s = self.struct(name)
            return s.size, s.align, "struct", name
        raise ValueError(f"c_api.h: unknown type {name!r}")

    def struct(self, name: str) -> Struct:
        """The layout of ``struct name``."""
        if name in self._cache:
            return self._cache[name]
        if name not in self._bodies:
            raise ValueError(f"c_api.h: no definition of struct {name!r}")
        fields, off, align = [], 0, 1
        for decl in self._bodies[name].split(";"):
            d = " ".join(decl.split())
            if not d:
                continue
            fp = re.fullmatch(r"(?:const\s+)?\w+\s*\**\s*\(\s*\*\s*(\w+)\s*\)\s*\(.*\)", d)
            m = re.fullmatch(r"(?:const\s+)?(?:struct\s+|enum\s+)?(\w+)\s*((?:\*\s*)*)(\w+)", d)
            if fp:
                fname, size, al, kind, tname = fp.group(1), _PTR, _PTR, "ptr", None
            elif m and m.group(2):
                fname, size, al, kind, tname = m.group(3), _PTR, _PTR, "ptr", None
            elif m:
                fname = m.group(3)
                size, al, kind, tname = self._type(m.group(1))
            else:
                raise ValueError(f"c_api.h: cannot parse member {d!r} of struct {name}")
            off = -(-off // al) * al
            fields.append(Field(fname, off, size, kind, tname))
            off += size
            align = max(align, al)
        size = -(-off // align) * align
        last = self._last.get(name)
        ssize = None
        if last is not None:
            f = next((f for f in fields if f.name == last), None)
            if f is None:
                raise ValueError(f"c_api.h: struct {name} has no member {last!r}")
            ssize = f.offset + f.size
        s = Struct(name, size, align, tuple(fields), ssize)
        self._cache[name] = s
        return s

    def field(self, struct: str, path: str) -> Field:
        """The member at dotted ``path`` of ``struct`` (e.g. ``"args.size"``), offset from ``struct``."""
        base, s, f = 0, self.struct(struct), None
        for part in path.split("."):
            if f is not None:
                if f.kind != "struct":
                    raise ValueError(f"c_api.h: {struct}.{path}: {f.name} is not a struct")
                s = self.struct(f.type)
            f = next((x for x in s.fields if x.name == part), None)
            if f is None:
                raise ValueError(f"c_api.h: struct {s.name} has no member {part!r}")
            base += f.offset
        return Field(f.name, base, f.size, f.kind, f.type)

    def const(self, name: str) -> int:
        """An enum constant or integer ``#define`` of the header."""
        if name in self.constants:
            return self.constants[name]
        if name in self.defines:
            return self.defines[name]
        raise ValueError(f"c_api.h: no constant {name!r}")


def c_api_header_path() -> str:
    """Path of ``xla/ffi/api/c_api.h`` in the installed jaxlib."""
    import jax
    return os.path.join(jax.ffi.include_dir(), "xla", "ffi", "api", "c_api.h")


@functools.cache
def c_header() -> CHeader:
    """The parsed ``c_api.h`` of the installed jaxlib (parsed once per process)."""
    if ctypes.sizeof(ctypes.c_void_p) != _PTR:
        raise RuntimeError("the native FFI handler needs a 64-bit (LP64) platform")
    with open(c_api_header_path(), encoding="utf-8") as fh:
        return CHeader(fh.read())


# ------------------------------------------------------------------------------------------------
# The handler, as LLVM IR
# ------------------------------------------------------------------------------------------------

def _libc_address(name: str) -> int:
    return ctypes.cast(getattr(ctypes.CDLL(None), name), ctypes.c_void_p).value


# Layout of the heap block shared by the threads of one parallel call (i64 slots).
# (_JOB_OUT + r: the r-th result's data pointer)
# _JOB_NEXT: first row not yet claimed; _JOB_DONE: rows finished; _JOB_DIV, _JOB_MIN: a claim takes
# max(rows left / DIV, MIN) rows rounded up to _ROW_ALIGN (guided self-scheduling)
_JOB_NEXT, _JOB_DONE, _JOB_REFS, _JOB_N, _JOB_DIV, _JOB_MIN, _JOB_SHARED, _JOB_IN, _JOB_OUT = range(9)
_SCRATCH_BYTES = 64 << 10  # split results: rows run per kernel call into a stack block of at most this
_CHUNKS_PER_THREAD = 2  # guided scheduling: a claim takes 1 / (2 · threads) of the rows left
_ROW_ALIGN = 8  # chunk lengths in rows are multiples of 8: whole 64-byte lines of float64 results
# libc functions the handler calls; madvise only on Linux (MADV_HUGEPAGE is Linux's 14)
_LIBC = ("malloc", "free", "sched_yield") + (("madvise",) if sys.platform.startswith("linux") else ())
_MADV_HUGEPAGE = 14
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096  # madvise works on whole pages
_HUGE_OUT_BYTES = 4 << 20  # results from 4 MiB get the huge-page hint (NumPy's threshold)


def handler_ir(*, symbol: str, kernel_address: int, n_shared: int, n_in: int, n_out: int,
               min_rows_per_task: int, label: str, header: CHeader | None = None,
               libc: dict[str, int] | None = None, max_threads: int = 0,
               splits: Sequence[int] | None = None) -> str:
    """LLVM IR (text) of the FFI handler ``XLA_FFI_Error* symbol(XLA_FFI_CallFrame*)`` for one kernel.

    Expects two float64 arguments — ``shared`` of shape ``(n_shared,)`` and ``rows`` ``(n, n_in)`` —
    and one float64 result ``(n, n_out)``; anything else returns an ``INVALID_ARGUMENT`` error naming
    ``label``. With ``n >= 2 * min_rows_per_task`` and an XLA thread pool of more than one thread the
    rows are claimed by pool tasks and the calling thread in chunks that shrink as the work runs out
    (guided self-scheduling: ``max(min_rows_per_task, rows left / (2 * threads))`` rows, rounded up to
    a multiple of 8 — whole cache lines of the result — claimed with a compare-and-swap; a thread that
    loses its core to another process then holds back little work; ``threads``: the pool's size, at
    most ``max_threads`` when > 0, and at most ``n / min_rows_per_task``); the caller waits only for chunks
    already claimed (so a busy or single-thread pool cannot deadlock), and the job block is freed by
    whichever participant leaves last (tasks may start after the handler has returned).

    ``splits`` (widths summing to ``n_out``): the handler returns ``len(splits)`` results instead of
    one, result ``r`` of shape ``(n, splits[r])`` holding columns ``[o_r, o_r + splits[r])`` of the
    kernel's rows (``o_r`` the sum of the widths before). The kernel runs a few rows at a time into
    a stack block (at most 64 KiB) that is copied out row by row: each result is written once, by
    the thread that computed it, and no slice of one big result has to be copied afterwards.
    """
    from llvmlite import ir

    widths = tuple(int(w) for w in splits) if splits is not None else (n_out,)
    if any(w < 0 for w in widths) or sum(widths) != n_out or not widths:
        raise ValueError(f"splits {splits!r} must be non-negative widths summing to n_out = {n_out}")
    offsets = [sum(widths[:r]) for r in range(len(widths))]
    split = splits is not None
    n_res = len(widths)
    job_bytes = (_JOB_OUT + n_res) * 8
    h = header or c_header()
    libc = libc or {k: _libc_address(k) for k in _LIBC}
    i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
    ptr = ir.PointerType()
    void = ir.VoidType()
    null = ir.Constant(ptr, None)

    def c64(v):
        return ir.Constant(i64, v)

    def c32(v):
        return ir.Constant(i32, v)

    mod = ir.Module(name=symbol)
    kty = ir.FunctionType(void, [i64, ptr, ptr, ptr])
    api_fn = ir.FunctionType(ptr, [ptr])          # XLA_FFI_Error* f(XLA_FFI_*_Args*)
    api_void_fn = ir.FunctionType(void, [ptr])    # void f(XLA_FFI_Error_Destroy_Args*)
    # functions at fixed addresses: the kernel, and libc's malloc/free/sched_yield
    kernel = (kernel_address, kty)
    malloc = (libc["malloc"], ir.FunctionType(ptr, [i64]))
    free = (libc["free"], ir.FunctionType(void, [ptr]))
    yield_ = (libc["sched_yield"], ir.FunctionType(i32, []))
    madvise = (libc["madvise"], ir.FunctionType(i32, [ptr, i64, i32])) if libc.get("madvise") else None

    def call_at(b, target, args):
        address, fnty = target
        return b.call(b.inttoptr(c64(address), fnty.as_pointer()), args)

    def at(b, base, off):
        return b.gep(base, [c64(off)], source_etype=i8) if off else base

    def ty_of(f: Field):
        if f.kind == "ptr":
            return ptr
        return {4: i32, 8: i64}[f.size]

    def ld(b, base, struct, path):
        f = h.field(struct, path)
        return b.load(at(b, base, f.offset), typ=ty_of(f))

    def st(b, value, base, struct, path):
        f = h.field(struct, path)
        if value.type != ty_of(f):  # a width mismatch would corrupt the neighbouring member
            raise AssertionError(f"{struct}.{path}: storing {value.type} into a {f.size}-byte {f.kind}")
        b.store(value, at(b, base, f.offset))

    def alloca(b, ty):
        a = b.alloca(ty)
        a.align = 8
        a.type = ptr  # an opaque `ptr` for llvmlite's type checks, as LLVM itself sees it
        return a

    def header_fields(b, base, struct):
        st(b, c64(h.struct(struct).struct_size), base, struct, "struct_size")
        st(b, null, base, struct, "extension_start")

    def args_block(b, struct):
        s = h.struct(struct)
        a = alloca(b, ir.ArrayType(i8, s.size))
        header_fields(b, a, struct)
        return a

    def api_call(b, api, name, args, fnty=api_fn):
        f = h.field("XLA_FFI_Api", name)
        fp = b.load(at(b, api, f.offset), typ=fnty.as_pointer())
        return b.call(fp, [args])

    msgs: dict[str, Any] = {}

    def cstr(text):
        if text not in msgs:
            data = bytearray(text.encode("utf-8") + b"\0")
            g = ir.GlobalVariable(mod, ir.ArrayType(i8, len(data)), name=f"msg{len(msgs)}")
            g.global_constant = True
            g.linkage = "private"
            g.initializer = ir.Constant(ir.ArrayType(i8, len(data)), data)
            msgs[text] = g
        return msgs[text]

    # XLA_FFI_Error* err(const XLA_FFI_Api*, const char*): an INVALID_ARGUMENT error
    err = ir.Function(mod, ir.FunctionType(ptr, [ptr, ptr]), name="err")
    err.linkage = "internal"
    b = ir.IRBuilder(err.append_basic_block())
    a = args_block(b, "XLA_FFI_Error_Create_Args")
    st(b, err.args[1], a, "XLA_FFI_Error_Create_Args", "message")
    st(b, c32(h.const("XLA_FFI_Error_Code_INVALID_ARGUMENT")), a, "XLA_FFI_Error_Create_Args", "errc")
    b.ret(api_call(b, err.args[0], "XLA_FFI_Error_Create", a))

    # void drop(api, error): destroy an error XLA returned to us
    drop = ir.Function(mod, ir.FunctionType(void, [ptr, ptr]), name="drop")
    drop.linkage = "internal"
    b = ir.IRBuilder(drop.append_basic_block())
    a = args_block(b, "XLA_FFI_Error_Destroy_Args")
    st(b, drop.args[1], a, "XLA_FFI_Error_Destroy_Args", "error")
    api_call(b, drop.args[0], "XLA_FFI_Error_Destroy", a, api_void_fn)
    b.ret_void()

    # i64 nthreads(api, ctx): XLA's intra-op pool size, 1 when there is none
    nthr = ir.Function(mod, ir.FunctionType(i64, [ptr, ptr]), name="nthreads")
    nthr.linkage = "internal"
    b = ir.IRBuilder(nthr.append_basic_block("entry"))
    a = args_block(b, "XLA_FFI_ThreadPool_NumThreads_Args")
    cnt = alloca(b, i64)
    b.store(c64(1), cnt)
    st(b, nthr.args[1], a, "XLA_FFI_ThreadPool_NumThreads_Args", "ctx")
    st(b, cnt, a, "XLA_FFI_ThreadPool_NumThreads_Args", "num_threads")
    e = api_call(b, nthr.args[0], "XLA_FFI_ThreadPool_NumThreads", a)
    bad, good = nthr.append_basic_block("bad"), nthr.append_basic_block("good")
    b.cbranch(b.icmp_unsigned("==", e, null), good, bad)
    b.position_at_end(bad)
    b.call(drop, [nthr.args[0], e])
    b.ret(c64(1))
    b.position_at_end(good)
    b.ret(b.load(cnt, typ=i64))

    def job_slot(b, job, k):
        return at(b, job, 8 * k)

    # void release(job): the last participant frees the job block
    release = ir.Function(mod, ir.FunctionType(void, [ptr]), name="release")
    release.linkage = "internal"
    b = ir.IRBuilder(release.append_basic_block("entry"))
    old = b.atomic_rmw("sub", job_slot(b, release.args[0], _JOB_REFS), c64(1), "acq_rel")
    last, done = release.append_basic_block("last"), release.append_basic_block("done")
    b.cbranch(b.icmp_signed("==", old, c64(1)), last, done)
    b.position_at_end(last)
    call_at(b, free, [release.args[0]])
    b.ret_void()
    b.position_at_end(done)
    b.ret_void()

    # void work(job): claim chunks until none is left
    work = ir.Function(mod, ir.FunctionType(void, [ptr]), name="work")
    work.linkage = "internal"
    job = work.args[0]
    b = ir.IRBuilder(work.append_basic_block("entry"))
    n = b.load(job_slot(b, job, _JOB_N), typ=i64)
    div = b.load(job_slot(b, job, _JOB_DIV), typ=i64)
    minr = b.load(job_slot(b, job, _JOB_MIN), typ=i64)
    sh = b.load(job_slot(b, job, _JOB_SHARED), typ=ptr)
    xin = b.load(job_slot(b, job, _JOB_IN), typ=ptr)
    xouts = [b.load(job_slot(b, job, _JOB_OUT + r), typ=ptr) for r in range(n_res)]
    f64t = ir.DoubleType()
    if split:
        sb = max(1, min(64, _SCRATCH_BYTES // max(8, 8 * n_out)))  # rows per kernel call
        scratch = alloca(b, ir.ArrayType(f64t, sb * max(1, n_out)))
        memcpy = ir.Function(mod, ir.FunctionType(void, [ptr, ptr, i64, ir.IntType(1)]),
                             name="llvm.memcpy.p0.p0.i64")
    loop, check_, claim, body, exit_ = (work.append_basic_block(x) for x in ("loop", "check", "claim", "body", "exit"))
    b.branch(loop)
    b.position_at_end(loop)
    first = b.load_atomic(job_slot(b, job, _JOB_NEXT), "monotonic", 8, typ=i64)
    b.branch(check_)
    b.position_at_end(check_)
    lo = b.phi(i64)
    lo.add_incoming(first, loop)
    b.cbranch(b.icmp_signed("<", lo, n), claim, exit_)
    b.position_at_end(claim)
    rest = b.sub(n, lo)
    want = b.sdiv(rest, div)
    want = b.select(b.icmp_signed("<", want, minr), minr, want)
    want = b.and_(b.add(want, c64(_ROW_ALIGN - 1)), c64(-_ROW_ALIGN))
    count = b.select(b.icmp_signed("<", rest, want), rest, want)
    pair = b.cmpxchg(job_slot(b, job, _JOB_NEXT), lo, b.add(lo, count), "monotonic", "monotonic")
    lo.add_incoming(b.extract_value(pair, 0), claim)  # another thread claimed first: retry from its end
    b.cbranch(b.extract_value(pair, 1), body, check_)
    b.position_at_end(body)
    if not split:
        pin = b.gep(xin, [b.mul(lo, c64(n_in))], source_etype=f64t)
        pout = b.gep(xouts[0], [b.mul(lo, c64(n_out))], source_etype=f64t)
        call_at(b, kernel, [count, sh, pin, pout])
    else:
        # blocks of ≤ sb rows: kernel → scratch, then each row's pieces to their results
        end = b.add(lo, count)
        blk, blk_body, rows_, row_body, blk_next, chunk_done = (work.append_basic_block(x) for x in (
            "blk", "blk_body", "rows", "row_body", "blk_next", "chunk_done"))
        from_body = b.block
        b.branch(blk)
        b.position_at_end(blk)
        r0 = b.phi(i64)
        r0.add_incoming(lo, from_body)
        b.cbranch(b.icmp_signed("<", r0, end), blk_body, chunk_done)
        b.position_at_end(blk_body)
        left = b.sub(end, r0)
        m = b.select(b.icmp_signed("<", left, c64(sb)), left, c64(sb))
        call_at(b, kernel, [m, sh, b.gep(xin, [b.mul(r0, c64(n_in))], source_etype=f64t), scratch])
        b.branch(rows_)
        b.position_at_end(rows_)
        j = b.phi(i64)
        j.add_incoming(c64(0), blk_body)
        b.cbranch(b.icmp_signed("<", j, m), row_body, blk_next)
        b.position_at_end(row_body)
        row = b.add(r0, j)
        src_row = b.gep(scratch, [b.mul(j, c64(n_out))], source_etype=f64t)
        for r, (w, o) in enumerate(zip(widths, offsets)):
            if w:
                dst = b.gep(xouts[r], [b.mul(row, c64(w))], source_etype=f64t)
                src = b.gep(src_row, [c64(o)], source_etype=f64t) if o else src_row
                b.call(memcpy, [dst, src, c64(8 * w), ir.Constant(ir.IntType(1), 0)])
        j.add_incoming(b.add(j, c64(1)), row_body)
        b.branch(rows_)
        b.position_at_end(blk_next)
        r0.add_incoming(b.add(r0, m), blk_next)
        b.branch(blk)
        b.position_at_end(chunk_done)
    b.atomic_rmw("add", job_slot(b, job, _JOB_DONE), count, "release")
    b.branch(loop)
    b.position_at_end(exit_)
    b.ret_void()

    # void task(void* job): what a pool thread runs
    task = ir.Function(mod, ir.FunctionType(void, [ptr]), name="task")
    task.linkage = "internal"
    b = ir.IRBuilder(task.append_basic_block())
    b.call(work, [task.args[0]])
    b.call(release, [task.args[0]])
    b.ret_void()

    # XLA_FFI_Error* handler(XLA_FFI_CallFrame*)
    fn = ir.Function(mod, ir.FunctionType(ptr, [ptr]), name=symbol)
    cf = fn.args[0]
    CF = "XLA_FFI_CallFrame"
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ret_null = fn.append_basic_block("ret_null")
    chk_ext, meta, stage = (fn.append_basic_block(x) for x in ("chk_ext", "meta", "stage"))
    ext = ld(b, cf, CF, "extension_start")
    b.cbranch(b.icmp_unsigned("==", ext, null), stage, chk_ext)
    b.position_at_end(chk_ext)
    etype = ld(b, ext, "XLA_FFI_Extension_Base", "type")
    b.cbranch(b.icmp_signed("==", etype, c32(h.const("XLA_FFI_Extension_Metadata"))), meta, stage)
    # registration-time metadata query: API version and traits
    b.position_at_end(meta)
    md = ld(b, ext, "XLA_FFI_Metadata_Extension", "metadata")
    av = at(b, md, h.field("XLA_FFI_Metadata", "api_version").offset)
    header_fields(b, av, "XLA_FFI_Api_Version")
    st(b, c32(h.const("XLA_FFI_API_MAJOR")), av, "XLA_FFI_Api_Version", "major_version")
    st(b, c32(h.const("XLA_FFI_API_MINOR")), av, "XLA_FFI_Api_Version", "minor_version")
    st(b, c32(0), md, "XLA_FFI_Metadata", "traits")
    b.ret(null)
    b.position_at_end(stage)
    execute = fn.append_basic_block("execute")
    b.cbranch(b.icmp_signed("==", ld(b, cf, CF, "stage"), c32(h.const("XLA_FFI_ExecutionStage_EXECUTE"))),
              execute, ret_null)
    b.position_at_end(ret_null)
    b.ret(null)

    b.position_at_end(execute)
    api = ld(b, cf, CF, "api")
    ctx = ld(b, cf, CF, "ctx")
    where = f"va2jax native kernel {label!r}"

    def check(cond, message):
        ok, bad = fn.append_basic_block("ok"), fn.append_basic_block("bad")
        b.cbranch(cond, ok, bad)
        b.position_at_end(bad)
        b.ret(b.call(err, [api, cstr(f"{where}: {message}")]))
        b.position_at_end(ok)

    def eq(x, v):
        return b.icmp_signed("==", x, ir.Constant(x.type, v))

    signature = (f"expects (shared float64[{n_shared}], rows float64[n, {n_in}]) -> "
                 + ", ".join(f"float64[n, {w}]" for w in widths))
    check(b.and_(eq(ld(b, cf, CF, "args.size"), 2), eq(ld(b, cf, CF, "rets.size"), n_res)),
          f"{signature}; called with another number of arguments or results")
    atypes, rtypes = ld(b, cf, CF, "args.types"), ld(b, cf, CF, "rets.types")
    buf_arg, buf_ret = h.const("XLA_FFI_ArgType_BUFFER"), h.const("XLA_FFI_RetType_BUFFER")
    ok = b.and_(eq(b.load(atypes, typ=i32), buf_arg), eq(b.load(at(b, atypes, 4), typ=i32), buf_arg))
    for r in range(n_res):
        ok = b.and_(ok, eq(b.load(at(b, rtypes, 4 * r), typ=i32), buf_ret))
    check(ok, f"{signature}; an argument or result is not a buffer")
    argv, retv = ld(b, cf, CF, "args.args"), ld(b, cf, CF, "rets.rets")
    bufs = {"shared": b.load(argv, typ=ptr), "rows": b.load(at(b, argv, 8), typ=ptr)}
    outs = [f"out{r}" if split else "out" for r in range(n_res)]
    for r, nm in enumerate(outs):
        bufs[nm] = b.load(at(b, retv, 8 * r), typ=ptr)
    B = "XLA_FFI_Buffer"
    f64 = h.const("XLA_FFI_DataType_F64")
    dims = {}
    for nm, buf in bufs.items():
        check(eq(ld(b, buf, B, "dtype"), f64), f"{signature}; {nm} is not float64")
        rank = 1 if nm == "shared" else 2
        check(eq(ld(b, buf, B, "rank"), rank), f"{signature}; {nm} is not of rank {rank}")
        d = ld(b, buf, B, "dims")
        dims[nm] = [b.load(at(b, d, 8 * k), typ=i64) for k in range(rank)]
    check(eq(dims["shared"][0], n_shared), f"{signature}; shared does not have {n_shared} elements")
    check(eq(dims["rows"][1], n_in), f"{signature}; rows do not have {n_in} columns")
    nrows = dims["rows"][0]
    for nm, w in zip(outs, widths):
        what = "result" if not split else f"result {nm[3:]}"
        check(eq(dims[nm][1], w), f"{signature}; the {what} does not have {w} columns")
        check(b.icmp_signed("==", dims[nm][0], nrows), f"{signature}; rows and {what} differ in length")
    data = {nm: ld(b, buf, B, "data") for nm, buf in bufs.items()}
    for nm, w in zip(outs, widths):
        if madvise is None or not w:
            continue
        # a large result buffer: ask for transparent huge pages (as NumPy does for its arrays).
        # XLA maps a fresh buffer per call; its first touch costs one page fault per 4 KiB —
        # PSP103's 51 MB of dense outputs: 12,500 faults, more time than the kernel itself.
        # A hint only: contents and bits are unchanged, a refusal is ignored.
        big, adv = fn.append_basic_block("big_out"), fn.append_basic_block("advised")
        nbytes = b.mul(nrows, c64(8 * w))
        b.cbranch(b.icmp_signed(">=", nbytes, c64(_HUGE_OUT_BYTES)), big, adv)
        b.position_at_end(big)
        lo = b.ptrtoint(data[nm], i64)
        first = b.and_(b.add(lo, c64(_PAGE - 1)), c64(-_PAGE))
        last = b.and_(b.add(lo, nbytes), c64(-_PAGE))
        call_at(b, madvise, [b.inttoptr(first, ptr), b.sub(last, first), c32(_MADV_HUGEPAGE)])
        b.branch(adv)
        b.position_at_end(adv)

    def fill_job(jobp, refs, div, minr):
        for k, v in ((_JOB_NEXT, c64(0)), (_JOB_DONE, c64(0)), (_JOB_REFS, refs), (_JOB_N, nrows),
                     (_JOB_DIV, div), (_JOB_MIN, minr)):
            b.store(v, job_slot(b, jobp, k))
        for k, nm in [(_JOB_SHARED, "shared"), (_JOB_IN, "rows")] + [(_JOB_OUT + r, nm) for r, nm in enumerate(outs)]:
            b.store(data[nm], job_slot(b, jobp, k))

    serial, try_par, par = (fn.append_basic_block(x) for x in ("serial", "try_par", "par"))
    b.cbranch(b.icmp_signed(">=", nrows, c64(2 * max(1, min_rows_per_task))), try_par, serial)
    b.position_at_end(serial)
    if not split:
        call_at(b, kernel, [nrows, data["shared"], data["rows"], data["out"]])
    else:  # one chunk of all rows, on this thread, from a job block on the stack
        sjob = alloca(b, ir.ArrayType(i8, job_bytes))
        fill_job(sjob, c64(1), c64(1), nrows)
        b.call(work, [sjob])
    b.ret(null)

    b.position_at_end(try_par)
    # the pool entries exist only in an XLA_FFI_Api at least as new as our header's (struct_size)
    pool_api = fn.append_basic_block("pool_api")
    pool_end = h.field("XLA_FFI_Api", "XLA_FFI_ThreadPool_NumThreads")
    b.cbranch(b.icmp_unsigned(">=", ld(b, api, "XLA_FFI_Api", "struct_size"), c64(pool_end.offset + pool_end.size)),
              pool_api, serial)
    b.position_at_end(pool_api)
    nt = b.call(nthr, [api, ctx])
    if max_threads > 0:
        nt = b.select(b.icmp_signed(">", nt, c64(max_threads)), c64(max_threads), nt)
    b.cbranch(b.icmp_signed(">", nt, c64(1)), par, serial)
    b.position_at_end(par)
    most = b.sdiv(nrows, c64(max(1, min_rows_per_task)))  # ≥ 2 here
    workers = b.select(b.icmp_signed("<", most, nt), most, nt)
    jobp = call_at(b, malloc, [c64(job_bytes)])
    have_job = fn.append_basic_block("have_job")
    b.cbranch(b.icmp_unsigned("==", jobp, null), serial, have_job)
    b.position_at_end(have_job)
    fill_job(jobp, workers, b.mul(workers, c64(_CHUNKS_PER_THREAD)), c64(max(1, min_rows_per_task)))
    # schedule workers - 1 tasks (a task that cannot be scheduled gives back its reference)
    TS = "XLA_FFI_ThreadPool_Schedule_Args"
    sargs = args_block(b, TS)
    st(b, ctx, sargs, TS, "ctx")
    st(b, task, sargs, TS, "task")
    st(b, jobp, sargs, TS, "data")
    i = alloca(b, i64)
    b.store(c64(1), i)
    sched_loop, sched_body, sched_fail, run = (fn.append_basic_block(x) for x in
                                              ("sched_loop", "sched_body", "sched_fail", "run"))
    b.branch(sched_loop)
    b.position_at_end(sched_loop)
    iv = b.load(i, typ=i64)
    b.cbranch(b.icmp_signed("<", iv, workers), sched_body, run)
    b.position_at_end(sched_body)
    b.store(b.add(iv, c64(1)), i)
    e = api_call(b, api, "XLA_FFI_ThreadPool_Schedule", sargs)
    b.cbranch(b.icmp_unsigned("==", e, null), sched_loop, sched_fail)
    b.position_at_end(sched_fail)
    b.call(drop, [api, e])
    b.atomic_rmw("sub", job_slot(b, jobp, _JOB_REFS), c64(1), "acq_rel")
    b.branch(sched_loop)
    # the calling thread works too, then waits for the chunks claimed by others
    b.position_at_end(run)
    b.call(work, [jobp])
    wait, spin, finish = (fn.append_basic_block(x) for x in ("wait", "spin", "finish"))
    b.branch(wait)
    b.position_at_end(wait)
    donev = b.load_atomic(job_slot(b, jobp, _JOB_DONE), "acquire", 8, typ=i64)
    b.cbranch(b.icmp_signed(">=", donev, nrows), finish, spin)
    b.position_at_end(spin)
    call_at(b, yield_, [])
    b.branch(wait)
    b.position_at_end(finish)
    b.call(release, [jobp])
    b.ret(null)
    return str(mod)


# ------------------------------------------------------------------------------------------------
# JIT compilation and registration (process-wide, permanent)
# ------------------------------------------------------------------------------------------------

_lock = threading.Lock()
_engines: list[Any] = []            # kept alive forever: XLA may call a registered handler any time
_targets: dict[tuple, str] = {}     # (kernel address, dims, threading) -> registered target name
_names: set[str] = set()            # registered target names


def jit_ir(text: str, symbols: Sequence[str], *, opt: int = 2, ir_passes: int = 0) -> dict[str, int]:
    """Compile LLVM IR text in this process (MCJIT, code generation at ``opt``, no fast-math) and
    return the addresses of ``symbols``. ``ir_passes`` > 0: LLVM's IR pipeline at that speed level
    first (registers for stack variables; no loop vectorisation). The engine is kept for the life
    of the process. Raises ``ValueError`` with LLVM's message when the IR does not verify."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:
        mod = llvm.parse_assembly(text)
        mod.verify()
    except RuntimeError as exc:
        raise ValueError(f"LLVM rejected the IR of {', '.join(symbols)}: {exc}") from None
    tm = llvm.Target.from_default_triple().create_target_machine(opt=opt)
    if ir_passes:
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        pto = llvm.create_pipeline_tuning_options(speed_level=ir_passes)
        pto.loop_vectorization = False
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    engine = llvm.create_mcjit_compiler(mod, tm)
    engine.finalize_object()
    with _lock:
        _engines.append(engine)
    return {s: engine.get_function_address(s) for s in symbols}


def ffi_target(kernel_address: int, n_shared: int, n_in: int, n_out: int, *, label: str = "kernel",
               min_rows_per_task: int = 256, max_threads: int = 0,
               splits: Sequence[int] | None = None, code_key: str | None = None) -> str:
    """Build (once per process) and register the FFI handler of a kernel; return its target name.
    ``max_threads`` and ``splits``: as in :func:`handler_ir`.

    The name is ``va2jax_<label>_<digest>``, the digest covering the kernel's identity, the three
    widths, ``min_rows_per_task``, ``max_threads`` (0: the whole pool) and ``splits`` — everything
    baked into the handler — so one name always means one behaviour in a process. The identity is
    ``code_key`` where the caller has one (a hash of the kernel's code, e.g. the model's cache key):
    the name is then the same in every process, so a program calling the kernel lowers to the same
    HLO and JAX's persistent compilation cache finds it again in a later process (an executable
    calls its targets by name, resolved in the process that runs it). Without ``code_key`` the
    kernel address stands for it (a per-process name: such programs are never shared between
    processes).
    """
    for v, what in ((n_shared, "n_shared"), (n_in, "n_in"), (n_out, "n_out")):
        if int(v) != v or v < 0:
            raise ValueError(f"{what} must be a non-negative integer, got {v!r}")
    if not kernel_address:
        raise ValueError("kernel_address is null")
    min_rows_per_task = max(1, int(min_rows_per_task))
    max_threads = max(0, int(max_threads))
    key = (int(kernel_address), int(n_shared), int(n_in), int(n_out), min_rows_per_task)
    if max_threads or splits is not None:  # (keys, hence names, without either: as in earlier versions)
        key += (max_threads, None if splits is None else tuple(int(w) for w in splits))
    with _lock:
        if key in _targets:
            return _targets[key]
    import jax

    safe = re.sub(r"[^A-Za-z0-9_]", "_", label)[:48]
    ident = ("code", str(code_key)) + key[1:] if code_key is not None else key
    digest = hashlib.sha256(repr(ident).encode()).hexdigest()[:16]
    name = f"va2jax_{safe}_{digest}"
    with _lock:
        if name in _names:  # the same code built again at another address: same behaviour
            _targets[key] = name
            return name
    text = handler_ir(symbol=name, kernel_address=key[0], n_shared=key[1], n_in=key[2], n_out=key[3],
                      min_rows_per_task=min_rows_per_task, label=label, max_threads=max_threads,
                      splits=splits)
    # -O0 code generation: 4-9 ms instead of 25-40 ms per handler, and the handler's few loads and
    # compares cost nothing next to XLA's own ≈ 0.17 µs dispatch (benchmarks/ffi_bench.py)
    addr = jit_ir(text, [name], opt=0)[name]
    with _lock:
        if key in _targets:        # another thread won the race; its handler is equivalent
            return _targets[key]
        if name not in _names:
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(addr), platform="cpu", api_version=1)
            _names.add(name)
        _targets[key] = name
    return name


# ------------------------------------------------------------------------------------------------
# JAX wrappers
# ------------------------------------------------------------------------------------------------

def native_call(kernel_address: int, n_shared: int, n_in: int, n_out: int, *, label: str = "kernel",
                min_rows_per_task: int = 256, max_threads: int = 0,
                splits: Sequence[int] | None = None, code_key: str | None = None) -> Callable:
    """A JAX function ``call(shared, rows) -> out`` running a native kernel through the XLA FFI.

    ``shared`` has shape ``(n_shared,)``; ``rows`` ``(..., n_in)``; ``out`` is ``(..., n_out)`` float64
    (needs ``jax_enable_x64``; real inputs are converted to float64). One FFI call per ``call`` whatever
    the batch shape; under ``jax.vmap`` the mapped axis is folded into the kernel's batch (one call for
    all rows) when ``shared`` is not mapped, and runs as a ``lax.map`` of calls when it is. Works
    under ``jit``, ``lax.while_loop``/``scan``/``fori_loop``. Batches of at least
    ``2 * min_rows_per_task`` rows are split over XLA's CPU thread pool (bit-identical results);
    waking pool threads costs some 5–50 µs (measured on a loaded 2-core VM), so a good value is about
    50 µs divided by the kernel's time per row (the default, 256, suits ≈ 0.2 µs rows and up);
    ``max_threads`` > 0 caps the threads one call uses (1: never split). With ``splits`` (widths
    summing to ``n_out``) ``call`` returns a tuple: ``out[..., o_r:o_r + splits[r]]`` for each ``r``,
    each written by the kernel's threads directly (no slice copies where they leave a program).
    No derivative rules: wrap it with :func:`native_jvp`. ``call.target`` is the FFI target name.
    The kernel's machine code must stay loaded for the life of the process: the registration (and
    any executable compiled with it) is permanent.
    """
    import jax
    import jax.numpy as jnp
    from jax.custom_batching import custom_vmap

    target = ffi_target(kernel_address, n_shared, n_in, n_out, label=label,
                        min_rows_per_task=min_rows_per_task, max_threads=max_threads, splits=splits,
                        code_key=code_key)
    widths = (n_out,) if splits is None else tuple(int(w) for w in splits)

    @custom_vmap
    def core(shared, rows):
        out_type = [jax.ShapeDtypeStruct((rows.shape[0], w), jnp.float64) for w in widths]
        return tuple(jax.ffi.ffi_call(target, out_type, vmap_method="sequential")(shared, rows))

    @core.def_vmap
    def _fold(axis_size, in_batched, shared, rows):
        shared_b, rows_b = in_batched
        every = tuple(True for _ in widths)
        if not shared_b and not rows_b:
            return core(shared, rows), tuple(False for _ in widths)
        if not shared_b:
            n = rows.shape[1]
            outs = core(shared, rows.reshape(axis_size * n, n_in))
            return tuple(o.reshape(axis_size, n, w) for o, w in zip(outs, widths)), every
        if not rows_b:
            rows = jnp.broadcast_to(rows, (axis_size,) + rows.shape)
        return jax.lax.map(lambda sr: core(*sr), (shared, rows)), every

    def call(shared, rows):
        if not jax.config.jax_enable_x64:
            raise ValueError(f"native kernel {label!r} computes in float64: enable jax_enable_x64")
        shared, rows = jnp.asarray(shared), jnp.asarray(rows)
        for nm, x in (("shared", shared), ("rows", rows)):
            if jnp.issubdtype(x.dtype, jnp.complexfloating):
                raise TypeError(f"native kernel {label!r}: {nm} is complex ({x.dtype}); it takes float64")
        if shared.shape != (n_shared,):
            raise ValueError(f"native kernel {label!r}: shared must have shape ({n_shared},), got {shared.shape}")
        if rows.ndim < 1 or rows.shape[-1] != n_in:
            raise ValueError(f"native kernel {label!r}: rows must have shape (..., {n_in}), got {rows.shape}")
        lead = rows.shape[:-1]
        outs = core(shared.astype(jnp.float64), rows.astype(jnp.float64).reshape(-1, n_in))
        outs = tuple(o.reshape(lead + (w,)) for o, w in zip(outs, widths))
        return outs[0] if splits is None else outs

    call.target = target
    call.n_shared, call.n_in, call.n_out = n_shared, n_in, n_out
    return call


def kernel_calls(kernel: Any, *, label: str = "model", min_rows_per_task: int = 256,
                 max_threads: int = 0) -> tuple[Callable, Callable]:
    """``(init_call, eval_call)``: :func:`native_call` for the two entry points of a compiled model
    that exposes the native ABI's attributes (``init_batch_address``, ``eval_batch_address``,
    ``n_shared``, ``n_in_init``, ``n_out_init``, ``n_in_eval``, ``n_out_eval``)."""
    with _lock:
        _engines.append(kernel)  # its code must outlive every registered handler that calls it
    key = getattr(kernel, "key", None) if getattr(kernel, "content_keyed", False) else None
    init = native_call(kernel.init_batch_address, kernel.n_shared, kernel.n_in_init, kernel.n_out_init,
                       label=f"{label}_init", min_rows_per_task=min_rows_per_task, max_threads=max_threads,
                       code_key=f"{key}:init" if key else None)
    ev = native_call(kernel.eval_batch_address, kernel.n_shared, kernel.n_in_eval, kernel.n_out_eval,
                     label=f"{label}_eval", min_rows_per_task=min_rows_per_task, max_threads=max_threads,
                     code_key=f"{key}:eval" if key else None)
    return init, ev


def native_jvp(call: Callable, *, voltage_cols: Sequence[int], residual_cols: Sequence[int],
               jacobian: Sequence[tuple[int, int, int]], fallback: Callable | None = None,
               differentiate_jacobian: bool = True) -> Callable:
    """Make a native call differentiable: ``f(shared, rows, v) -> out`` with a ``jax.custom_jvp`` rule.

    ``rows`` is ``(..., n_in)``; ``v`` ``(..., len(voltage_cols))`` holds the values of the input
    columns ``voltage_cols`` (they replace those columns of ``rows``; the leading shapes broadcast).
    ``jacobian`` lists ``(r, c, j)``: output column ``j`` equals ∂ out[..., r] / ∂ rows[..., c] with
    ``r`` in ``residual_cols`` and ``c`` in ``voltage_cols``; pairs not listed are zero. Tangents:

    * of residual columns w.r.t. ``v``: ``d out[..., r] = Σ_(r,c,j) out[..., j] · dv[..., c]`` from the
      kernel's own outputs (no extra evaluation);
    * of anything w.r.t. ``shared`` or the other columns of ``rows``, and of non-residual columns
      (e.g. the Jacobian columns themselves, for second derivatives) w.r.t. ``v``: forward-mode JAX
      through ``fallback(shared, rows) -> out``, a JAX function computing the same outputs as the
      kernel (the model's JAX path); it is only traced for the tangents that are not symbolically
      zero, so ``jax.grad`` w.r.t. ``v`` alone never runs it.

    Without ``fallback``, a tangent of ``shared`` or ``rows`` raises ``ValueError`` at trace time and
    non-residual columns do not depend on ``v`` for differentiation (as under ``lax.stop_gradient``).
    ``differentiate_jacobian=False`` asks for that last behaviour even with a ``fallback``, so that
    first derivatives w.r.t. ``v`` never trace the (possibly large) JAX path; second derivatives
    w.r.t. ``v`` are then zero.
    Works with ``jax.jvp``/``jacfwd``/``grad``/``jacrev``/``hessian`` (with ``fallback``) and ``vmap``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.custom_derivatives import SymbolicZero

    vcols = tuple(int(c) for c in voltage_cols)
    rset = tuple(sorted({int(r) for r in residual_cols}))
    if len(set(vcols)) != len(vcols):
        raise ValueError(f"voltage_cols has duplicates: {vcols}")
    ent_r, ent_v, ent_j = [], [], []
    for r, c, j in jacobian:
        if c not in vcols:
            raise ValueError(f"jacobian entry {(r, c, j)}: input column {c} is not in voltage_cols {vcols}")
        if r not in rset:
            raise ValueError(f"jacobian entry {(r, c, j)}: output column {r} is not in residual_cols")
        ent_r.append(int(r))
        ent_v.append(vcols.index(c))
        ent_j.append(int(j))
    vidx, ridx, jidx = (np.asarray(x, dtype=np.int32) for x in (ent_v, ent_r, ent_j))
    vcol_idx = np.asarray(vcols, dtype=np.int32)

    def place(rows, v):
        lead = jnp.broadcast_shapes(rows.shape[:-1], v.shape[:-1])
        rows = jnp.broadcast_to(rows, lead + rows.shape[-1:])
        v = jnp.broadcast_to(v, lead + v.shape[-1:])
        return rows.at[..., vcol_idx].set(v, unique_indices=True)

    @jax.custom_jvp
    def f(shared, rows, v):
        rows, v = jnp.asarray(rows, jnp.float64), jnp.asarray(v, jnp.float64)
        return call(shared, place(rows, v))

    def _rule(primals, tangents):
        shared, rows, v = primals
        ds, dr, dv = tangents
        rows, v = jnp.asarray(rows, jnp.float64), jnp.asarray(v, jnp.float64)
        full = place(rows, v)
        out = f(shared, rows, v)  # through f itself, so that higher orders use this rule again
        n_out = out.shape[-1]
        res_mask = np.zeros(n_out, bool)
        res_mask[list(rset)] = True
        dout = jnp.zeros_like(out)
        zs, zr, zv = (isinstance(t, SymbolicZero) for t in (ds, dr, dv))
        if not zv:
            dv = jnp.broadcast_to(jnp.asarray(dv, out.dtype), out.shape[:-1] + v.shape[-1:])
            if ent_r:
                prod = out[..., jidx] * dv[..., vidx]
                dout = dout.at[..., ridx].add(prod)
            if fallback is not None and differentiate_jacobian and not res_mask.all():
                t0 = jnp.zeros_like(full).at[..., vcol_idx].set(dv, unique_indices=True)
                _, t_v = jax.jvp(fallback, (jnp.asarray(shared, out.dtype), full),
                                 (jnp.zeros(jnp.shape(shared), out.dtype), t0))
                dout = dout + jnp.where(res_mask, 0.0, t_v)
        if not (zs and zr):
            if fallback is None:
                raise ValueError("native_jvp: a tangent w.r.t. shared or rows (parameters, temperature, "
                                 "other inputs) needs a JAX fallback function; only v is covered by the "
                                 "kernel's Jacobian")
            ts = jnp.zeros(jnp.shape(shared), out.dtype) if zs else jnp.asarray(ds, out.dtype)
            tr = jnp.zeros_like(full) if zr else \
                jnp.broadcast_to(jnp.asarray(dr, out.dtype), full.shape).at[..., vcol_idx].set(0.0, unique_indices=True)
            _, t_p = jax.jvp(fallback, (jnp.asarray(shared, out.dtype), full), (ts, tr))
            dout = dout + t_p
        return out, dout

    f.defjvp(_rule, symbolic_zeros=True)
    return f
