"""The whole Newton solve of one time point as one native kernel: the simulator's CPU dense path.

:func:`va2jax.sim.engine.make_newton` builds the Newton iteration as a ``lax.while_loop`` whose
body is some 30 XLA operations (device-row fill, one FFI call per device group, the level sums
of :mod:`._gsum`, the residual, the solve of :mod:`._lu`, the convergence test); on a circuit of a
few diodes each costs 0.05–0.2 µs, several times the arithmetic. Here the loop itself is emitted
as LLVM IR (the text builder of :mod:`._llir`) and compiled in-process: one XLA FFI call per
Newton solve, with the ABI of :mod:`._ffi` (``void k(int64 rows, const double *shared, const
double *in, double *out)``), one solve per row (``vmap`` lanes are rows: each lane runs its own
loop). ``shared`` = ``[G (n·n), C (n·n)]`` (row-major), ``in`` = ``[x0, b, a0, hist, gshunt,
maxiter, dvmax, xref, rref, keep_input]`` (5n + 5), ``out`` = ``[x, iterations, converged, singular, q, F,
r]`` (4n + 3) — :func:`va2jax.sim.engine.make_newton`'s signature. With VACASK's per-element
residual reference (:class:`DeviceRef`, K reactive slots) ``in`` ends with ``[use_ehist, ehist
(K)]`` and ``out`` with the slots' charges (K).

Per iteration, with ``x_e = [x, 0]`` (the last entry: ground):

1. each device group's kernel rows: the static columns once per call (:class:`~._device.DevicePlan`),
   the branch voltages ``x_e[a] − x_e[b]``, the previous ``$limit`` states and ``enable_lim``
   (iteration > 0 when limiting is on) written in place; the group's eval kernel called by its
   address; the dense local outputs summed from the kernel's columns as
   :meth:`DevicePlan.dense <._device.DevicePlan.dense>` sums them (first term, then the others
   in level order, ``+ 0.0`` where a level is empty; the limiting RHS negated);
2. the circuit's vectors and matrices as :func:`va2jax.sim.assembly.limited_assemble_fn` forms
   them: ``f = G·x`` (sequential dot products) then the groups' stamps in the order of its gather
   tables (:func:`~va2jax.sim.assembly._gather_table`), ``q`` and the Jacobians likewise;
3. ``F = f − b + a0·q + hist + gshunt·m·x``, ``J = Jf + a0·Jq + diag(gshunt·m)``, the residual
   reference ``r_i = max(|f_i|, |b_i|, |a0·q_i|, |hist_i|, max_j |J_ij·x_j|)`` — or, with a
   :class:`DeviceRef`, VACASK's: the largest single element contribution to row ``i``
   (:func:`_device_reference`: ``|b_i|``, each linear element's own current, each instance's own
   ``f + lim_f`` from its dense local outputs of step 1 and, given ``ehist``, each reactive
   slot's flow ``a0·(q + lim_q)_e + ehist_e``), device-internal rows left out of the test —
   ``R = F + lim_f + a0·lim_q``;
4. ``Δx = J⁻¹·(−R)``: the equilibrated LU with partial pivoting of :mod:`._lu`, the same operations
   in the same order, as loops (any ``n``); rows whose multiplier is exactly 0 skip their update
   (``a − 0·b = a`` for finite ``b``), which makes the cost follow the matrix's fill;
5. ``dvmax`` clipping of node voltages and VACASK's convergence test exactly as ``make_newton``'s
   loop body; ``x ← x + Δx`` and ``q ← q + Jq·Δx``, except with the row's last entry
   (``keep_input``) non-zero: then ``q`` is the charges evaluated at the iterate and a converged
   iteration's input ``x`` is the result (VACASK's accepted point).

**Sparse variant** (``pattern``; from :data:`SPARSE_FROM` unknowns, :func:`use_sparse_kernel`):
``Jf``, ``Jq`` and ``J`` are kept as values at the entries of :func:`jacobian_pattern` (CSR order, ascending
columns; ``nnz`` instead of ``n²``): ``G·x``, ``C·x``, ``Jq·Δx``, the residual reference, the stamps
and the equilibration (``J_ij/s_i`` scattered into a zeroed dense ``A``, then the pattern's entries
divided by the column scales) touch only the pattern, and the level sums only the device outputs
some kernel column feeds. The LU is the dense one above on that ``A`` (partial pivoting at run
time: no pivot order is fixed in advance). Every operation it skips is a sum with ``0·v``, a
maximum with 0 or a quotient ``0/s``, and it performs the others in the same order, so its
results are the dense kernel's bit for bit (for a finite iterate). ``G``/``C`` known only at run
time are checked against the pattern once per call; outside it the dense kernel of the same
circuit runs instead (``fallback``).

Against the XLA loop the results agree bit for bit except where XLA computes the three dot
products (``G·x``, ``C·x``, ``Jq·Δx``) in another order (its CPU gemv uses partial sums): those
differ in the last bits, and n > 12 uses LAPACK there. No fast-math flags: the IR rounds the same
on every x86-64 CPU.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import _llir as ir

_F64 = ir.DoubleType()
_I64 = ir.IntType(64)
_I32 = ir.IntType(32)
_I1 = ir.IntType(1)
_PTR = ir.PointerType()
_DBL_MIN = 2.2250738585072014e-308  # smallest normal double (LAPACK's dlamch('S'))


@dataclass(frozen=True)
class GroupSpec:
    """One device group as the Newton kernel sees it (from its :class:`~._device.DevicePlan` and
    the group's global node indices ``idx`` (N, n_loc), ``n`` = ground)."""

    address: int  # eval_batch
    n_in: int
    n_out: int
    shared: np.ndarray  # kernel shared values
    static: np.ndarray  # (N, n_in)
    volt_cols: np.ndarray  # (nv,)
    volt_ia: np.ndarray  # (N, nv) global indices into x_e
    volt_ib: np.ndarray
    state_cols: np.ndarray  # (ns,)
    state_k: np.ndarray  # (ns,)
    lim_cols: np.ndarray
    gather: np.ndarray  # (m, N, P) into [out, nothing = n_out]
    n_loc: int
    num_states: int
    stateful: bool  # carries $limit states (limiting on and num_states > 0)
    code: str | None = None  # the eval kernel's code identity (its cache key), None: unknown

    @property
    def size(self) -> int:
        return self.static.shape[0]

    @property
    def P(self) -> int:
        return self.gather.shape[2]


@dataclass(frozen=True)
class DeviceRef:
    """VACASK's per-element residual reference (``options nr_resref="device"``,
    :mod:`va2jax.sim._resref`) as the kernel's constants: the linear stamps grouped by (element,
    row) key — entries of key ``k`` at ``ptr[k]:ptr[k + 1]`` in the stamps' order (the order of
    ``jax.ops.segment_sum``'s additions), their columns, values and the key's row — and the rows of
    the *reactive slots* (each instance's local nodes group by group, then the charge keys)."""

    checked: np.ndarray  # (n,) bool: rows the residual test checks (the netlist's nodes)
    g_ptr: np.ndarray  # (Kg + 1,)
    g_col: np.ndarray  # (Eg,)
    g_val: np.ndarray  # (Eg,) A/V
    g_rows: np.ndarray  # (Kg,)
    c_ptr: np.ndarray  # (Kc + 1,)
    c_col: np.ndarray  # (Ec,)
    c_val: np.ndarray  # (Ec,) F
    slot_rows: np.ndarray  # (K,) device slots then the Kc charge keys; n: ground

    @property
    def size(self) -> int:
        """K: the reactive slots."""
        return len(self.slot_rows)

    def arrays(self) -> tuple[np.ndarray, ...]:
        return (np.asarray(self.checked, bool), self.g_ptr, self.g_col, self.g_val, self.g_rows,
                self.c_ptr, self.c_col, self.c_val, self.slot_rows)


class _Gen:
    """IR emission helpers: loops with ``phi`` counters, ``if`` blocks, stack variables, globals."""

    def __init__(self, symbol: str):
        self.mod = ir.Module(name=symbol)
        self.fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [_I64, _PTR, _PTR, _PTR]), name=symbol)
        self.fn.attributes.add("nounwind")
        self.entry = self.fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self.fabs_fn = ir.Function(self.mod, ir.FunctionType(_F64, [_F64]), name="llvm.fabs.f64")
        self._nglob = 0
        self._nalloca = 0
        self._loops: list = []

    # constants and globals
    @staticmethod
    def f(v: float) -> ir.Value:
        return ir.Constant(_F64, v)

    @staticmethod
    def i(v: int) -> ir.Value:
        return ir.Constant(_I64, v)

    def global_i32(self, data) -> ir.Value:
        data = np.asarray(data, np.int64).ravel()
        if data.size and (data.min() < -2**31 or data.max() >= 2**31):
            raise ValueError("index table does not fit int32")
        name = f"@g{self._nglob}"
        self._nglob += 1
        body = ", ".join(f"i32 {int(v)}" for v in data) if data.size else ""
        n = max(1, data.size)
        if not data.size:
            body = "i32 0"
        self.mod.raw.append(f"{name} = private unnamed_addr constant [{n} x i32] [{body}], align 4")
        return ir.Value(_PTR, name)

    def global_f64(self, data) -> ir.Value:
        data = np.asarray(data, np.float64).ravel()
        name = f"@g{self._nglob}"
        self._nglob += 1
        if not data.size:
            data = np.zeros(1)
        body = ", ".join(f"double {ir.Constant(_F64, v).ref}" for v in data)
        self.mod.raw.append(f"{name} = private unnamed_addr constant [{data.size} x double] [{body}], align 8")
        return ir.Value(_PTR, name)

    def var(self, ty: ir.Type, init: ir.Value | None = None) -> ir.Value:
        """A stack slot (allocated in the entry block; LLVM promotes it to registers)."""
        r = f"%v{self._nalloca}"
        self._nalloca += 1
        self.entry.lines.insert(0, f"  {r} = alloca {ty.s}")
        p = ir.Value(_PTR, r)
        if init is not None:
            self.b.store(init, p)
        return p

    # memory
    def gep(self, base: ir.Value, idx: ir.Value | int, ety: ir.Type = _F64) -> ir.Value:
        if isinstance(idx, int):
            idx = self.i(idx)
        return self.b._def(_PTR, f"getelementptr inbounds {ety.s}, ptr {base.ref}, i64 {idx.ref}")

    def ld(self, base: ir.Value, idx: ir.Value | int = 0) -> ir.Value:
        return self.b.load(self.gep(base, idx))

    def st(self, v: ir.Value, base: ir.Value, idx: ir.Value | int = 0) -> None:
        self.b.store(v, self.gep(base, idx))

    def ldi(self, tab: ir.Value, idx: ir.Value | int) -> ir.Value:
        """``tab[idx]`` of an i32 table, as i64."""
        v = self.b.load(self.gep(tab, idx, _I32), _I32)
        return self.b._def(_I64, f"sext i32 {v.ref} to i64")

    def load(self, p: ir.Value, ty: ir.Type = _F64) -> ir.Value:
        return self.b.load(p, ty)

    def store(self, v: ir.Value, p: ir.Value) -> None:
        self.b.store(v, p)

    def call_addr(self, address: int, args: list[ir.Value]) -> None:
        fp = self.b._def(_PTR, f"inttoptr i64 {int(address)} to ptr")
        self.b._emit(f"  call void {fp.ref}(" + ", ".join(f"{a.type.s} {a.ref}" for a in args) + ")")

    def call_ret(self, address: int, ret: ir.Type, args: list[ir.Value]) -> ir.Value:
        fp = self.b._def(_PTR, f"inttoptr i64 {int(address)} to ptr")
        return self.b._def(ret, f"call {ret.s} {fp.ref}(" + ", ".join(f"{a.type.s} {a.ref}" for a in args) + ")")

    # arithmetic
    def fabs(self, x):
        return self.b.call(self.fabs_fn, [x])

    def fmax(self, a, x):
        """``x > a ? x : a`` (:mod:`._lu`'s maximum of finite values)."""
        return self.b.select(self.b.fcmp_ordered(">", x, a), x, a)

    def nmax(self, a, c):
        """``jnp.maximum(a, c)``: NaN when either is NaN."""
        b = self.b
        r = b.select(b.fcmp_ordered(">", a, c), a, c)
        return b.select(b.fcmp_unordered("!=", a, a), a, r)

    # control flow
    def loop(self, lo, hi) -> ir.Value:
        """Start ``for (i = lo; i < hi; ++i)``; returns ``i``; close with :meth:`end`."""
        lo = self.i(lo) if isinstance(lo, int) else lo
        hi = self.i(hi) if isinstance(hi, int) else hi
        pre = self.b.block
        head = self.fn.append_basic_block("lh")
        body = self.fn.append_basic_block("lb")
        exit_ = self.fn.append_basic_block("lx")
        self.b.branch(head)
        self.b.block = head
        i = self.b.phi(_I64)
        i.add_incoming(lo, pre)
        self.b.cbranch(self.b.icmp_signed("<", i, hi), body, exit_)
        self.b.block = body
        self._loops.append(("loop", i, head, exit_))
        return i

    def down(self, hi) -> ir.Value:
        """Start ``for (i = hi − 1; i ≥ 0; −−i)``; close with :meth:`end`."""
        hi = self.i(hi) if isinstance(hi, int) else hi
        pre = self.b.block
        head = self.fn.append_basic_block("dh")
        body = self.fn.append_basic_block("db")
        exit_ = self.fn.append_basic_block("dx")
        self.b.branch(head)
        self.b.block = head
        i = self.b.phi(_I64)
        i.add_incoming(hi, pre)
        self.b.cbranch(self.b.icmp_signed(">", i, self.i(0)), body, exit_)
        self.b.block = body
        k = self.b.sub(i, self.i(1))
        self._loops.append(("down", (i, k), head, exit_))
        return k

    def if_(self, cond) -> None:
        then, end = self.fn.append_basic_block("it"), self.fn.append_basic_block("ie")
        self.b.cbranch(cond, then, end)
        self.b.block = then
        self._loops.append(("if", None, None, end))

    def end(self) -> None:
        kind, i, head, exit_ = self._loops.pop()
        if kind == "loop":
            i.add_incoming(self.b.add(i, self.i(1)), self.b.block)
            self.b.branch(head)
        elif kind == "down":
            phi, k = i
            phi.add_incoming(k, self.b.block)
            self.b.branch(head)
        else:
            self.b.branch(exit_)
        self.b.block = exit_


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    ptr = np.zeros(len(lists) + 1, np.int64)
    ptr[1:] = np.cumsum([len(x) for x in lists])
    idx = np.asarray([v for x in lists for v in x], np.int64)
    return ptr, idx


def _gather_lists(tab: np.ndarray, n_src: int, src_map: np.ndarray) -> tuple[list[list[int]], np.ndarray]:
    """Per position of a gather table ``tab`` (m, size): its real sources (through ``src_map``)
    in level order, and whether a level is empty there (``+ 0.0`` at the end)."""
    tab = np.asarray(tab, np.int64)
    m, size = tab.shape
    lists, nothing = [], np.zeros(size, bool)
    for p in range(size):
        col = tab[:, p]
        real = [int(src_map[k]) for k in col if 0 <= k < n_src]
        lists.append(real)
        nothing[p] = len(real) < m
    return lists, nothing


def newton_ir(symbol: str, n: int, groups: list[GroupSpec], vec_tab: np.ndarray, lim_tab: np.ndarray,
              mat_tab: np.ndarray, gmask: np.ndarray, is_current: np.ndarray, *, reltol: float,
              vntol: float, abstol: float, rescheck: bool, limiting: bool, malloc: int, free: int,
              pattern: np.ndarray | None = None, fallback: int | None = None,
              clip_mask: np.ndarray | None = None, dref: DeviceRef | None = None) -> str:
    """LLVM IR text of the Newton kernel (see the module doc). ``vec_tab``/``lim_tab``/``mat_tab``:
    :func:`va2jax.sim.assembly._gather_table`'s tables over the groups' flattened outputs (all
    groups; the stateful ones; the local Jacobians with global positions ``i·n + j``).
    ``pattern`` (n, n) bool: the sparse variant on that pattern (:func:`jacobian_pattern`; every
    position where ``G``, ``C`` or a stamp may be non-zero, and the diagonal); None: dense.
    ``fallback``: the address of the dense kernel of the same circuit, called instead (with this
    call's arguments) when ``G`` or ``C`` has a non-zero outside ``pattern`` — for ``G``/``C`` known
    only at run time (a batched sweep's), whose pattern is the nominal circuit's.
    ``clip_mask`` (n,) bool: the unknowns whose update is clipped at ``dvmax`` (default: every
    node voltage, ``~is_current``).
    ``dref``: VACASK's per-element residual reference instead of the bound from the sums (the
    row gains ``[use_ehist, ehist (K)]``, the result the K reactive slots' charges)."""
    g = _Gen(symbol)
    b = g.b
    nrows, shared, src, dst = g.fn.args
    K = dref.size if dref is not None else 0
    NIN, NOUT = 5 * n + 5 + (1 + K if dref is not None else 0), 4 * n + 3 + K
    nn = n * n
    sparse = pattern is not None
    if sparse:  # the pattern in CSR order: row pointers, columns, dense positions i·n + j
        pi, pj = np.nonzero(np.asarray(pattern, bool))  # row-major: ascending j within each row
        nnz = len(pi)
        pat_pos = pi * n + pj
        pat_ptr = np.searchsorted(pi, np.arange(n + 1))
    msize = nnz if sparse else nn  # Jf, Jq, J: values at the pattern's entries, or dense
    # workspace layout (doubles)
    off: dict[str, int] = {}
    pos = 0
    for name, size in (("xe", n + 1), ("f", n), ("q", n), ("Jf", msize), ("Jq", msize), ("lf", n), ("lq", n),
                       ("F", n), ("R", n), ("ref", n + 1), ("J", msize), ("A", nn), ("r", n), ("cs", n),
                       ("dx", n), ("cl", n), ("qs", K)):
        off[name] = pos
        pos += size
    goff = []
    for gs in groups:
        o = {"rows": pos}
        pos += gs.size * gs.n_in
        o["out"] = pos
        pos += gs.size * gs.n_out
        o["D"] = pos
        pos += gs.size * gs.P
        goff.append(o)
    total = pos
    if sparse and fallback is not None:  # G, C zero outside the pattern, else the dense kernel
        outside = g.global_i32((~np.asarray(pattern, bool)).ravel().astype(np.int64))
        flag = g.var(_I1, ir.Constant(_I1, 0))
        t = g.loop(0, nn)
        nz = b.or_(b.fcmp_unordered("!=", g.ld(shared, t), g.f(0.0)),
                   b.fcmp_unordered("!=", g.ld(shared, b.add(t, g.i(nn))), g.f(0.0)))
        bad = b.and_(nz, b.icmp_signed("!=", g.ldi(outside, t), g.i(0)))
        g.store(b.or_(g.load(flag, _I1), bad), flag)
        g.end()
        fb, cont = g.fn.append_basic_block("fallback"), g.fn.append_basic_block("sparse")
        b.cbranch(g.load(flag, _I1), fb, cont)
        b.block = fb
        g.call_addr(fallback, [nrows, shared, src, dst])
        b.ret_void()
        b.block = cont
    W = g.call_ret(malloc, _PTR, [g.i(8 * total)])

    def ws(name: str) -> ir.Value:
        return g.gep(W, off[name])

    # static kernel rows, once per call
    gconst = []
    for gs, o in zip(groups, goff):
        stat = g.global_f64(gs.static)
        sh = g.global_f64(gs.shared)
        rows = g.gep(W, o["rows"])
        t = g.loop(0, gs.size * gs.n_in)
        g.st(g.ld(stat, t), rows, t)
        g.end()
        N = gs.size
        nv = len(gs.volt_cols)
        c = {"sh": sh, "rows": rows, "out": g.gep(W, o["out"]), "D": g.gep(W, o["D"]),
             "vcol": g.global_i32(gs.volt_cols), "ia": g.global_i32(gs.volt_ia.reshape(N, nv)),
             "ib": g.global_i32(gs.volt_ib.reshape(N, nv)), "scol": g.global_i32(gs.state_cols),
             "sk": g.global_i32(gs.state_k), "lcol": g.global_i32(gs.lim_cols)}
        # dense level sums: per (r, p) the kernel columns in level order (absolute in OUT)
        m, _, P = gs.gather.shape
        lists, flags = [], []
        negs = np.zeros(P, bool)
        nl = gs.n_loc
        negs[2 * nl + 2 * nl * nl:4 * nl + 2 * nl * nl] = True
        dst_d = []
        for r in range(N):
            for p in range(P):
                col = gs.gather[:, r, p]
                real = [r * gs.n_out + int(k) for k in col if 0 <= k < gs.n_out]
                if sparse and not real:  # no term: the entry keeps the zero written per call
                    continue
                lists.append(real)
                flags.append((1 if len(real) < m else 0) | (2 if negs[p] else 0))
                dst_d.append(r * P + p)
        ptr, idx = _csr(lists)
        c.update(dptr=g.global_i32(ptr), didx=g.global_i32(idx), dflag=g.global_i32(flags),
                 ddst=g.global_i32(dst_d), nd=len(lists))
        gconst.append(c)
    # global stamp tables: the sources are the groups' dense outputs in W, flattened per group in
    # the order of assembly's gathers (group by group, instance by instance)
    st_idx = [k for k, gs in enumerate(groups) if gs.stateful]

    def srcmap(ks: list[int], start, width) -> np.ndarray:
        parts = []
        for k in ks:
            gs, nl = groups[k], groups[k].n_loc
            r = np.arange(gs.size)[:, None]
            parts.append((goff[k]["D"] + r * gs.P + start(nl) + np.arange(width(nl))[None, :]).ravel())
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    dead = set()  # workspace offsets of the dense local outputs without terms
    if sparse:
        for gs, o in zip(groups, goff):
            live = np.any((gs.gather >= 0) & (gs.gather < gs.n_out), axis=0).ravel()
            dead.update((o["D"] + np.nonzero(~live)[0]).tolist())
    all_k = list(range(len(groups)))
    vec, mat = (lambda nl: nl), (lambda nl: nl * nl)
    tabs = {}
    for name, tab, ks, start, width in (
            ("f", vec_tab, all_k, lambda nl: 0, vec), ("q", vec_tab, all_k, lambda nl: nl, vec),
            ("Jf", mat_tab, all_k, lambda nl: 2 * nl, mat), ("Jq", mat_tab, all_k, lambda nl: 2 * nl + nl * nl, mat),
            ("lf", lim_tab, st_idx, lambda nl: 2 * nl + 2 * nl * nl, vec),
            ("lq", lim_tab, st_idx, lambda nl: 3 * nl + 2 * nl * nl, vec)):
        size = nn if name in ("Jf", "Jq") else n
        smap = srcmap(ks, start, width)
        if tab is None or smap.size == 0:
            lists, nothing = [[] for _ in range(size)], np.zeros(size, bool)
        else:
            lists, nothing = _gather_lists(tab, smap.size, smap)
            if sparse:  # sources that are always +0.0 (no kernel column) leave a sum unchanged
                lists = [[w for w in lst if w not in dead] for lst in lists]
        if sparse and name in ("Jf", "Jq"):  # the pattern holds every position with a term
            if any(lists[p] for p in np.setdiff1d(np.arange(nn), pat_pos)):
                raise ValueError("native Newton kernel: a stamp outside the sparse pattern")
            lists, nothing, size = [lists[p] for p in pat_pos], nothing[pat_pos], nnz
        ptr, idx = _csr(lists)
        tabs[name] = (g.global_i32(ptr), g.global_i32(idx), g.global_i32(nothing.astype(np.int64)), size)
    if sparse:
        sp_ptr, sp_col, sp_pos = g.global_i32(pat_ptr), g.global_i32(pj), g.global_i32(pat_pos)
    gm = g.global_f64(np.asarray(gmask, np.float64))
    if dref is not None:
        chk = g.global_i32(np.asarray(dref.checked, bool).astype(np.int64))
        dt = {k: g.global_i32(getattr(dref, k)) for k in ("g_ptr", "g_col", "g_rows", "c_ptr", "c_col", "slot_rows")}
        dt["g_val"], dt["c_val"] = g.global_f64(dref.g_val), g.global_f64(dref.c_val)
    vm = g.global_i32(_clip_mask(clip_mask, is_current).astype(np.int64))
    tolabs = g.global_f64(np.where(is_current, abstol, vntol))
    resabs = g.global_f64(np.where(is_current, vntol, abstol))
    G = shared
    C = g.gep(shared, nn)
    zero, one = g.f(0.0), g.f(1.0)
    xe, f, q, Jf, Jq, lf, lq = (ws(k) for k in ("xe", "f", "q", "Jf", "Jq", "lf", "lq"))
    F, R, ref, J, A, rv, cs, dx, cl = (ws(k) for k in ("F", "R", "ref", "J", "A", "r", "cs", "dx", "cl"))
    qs = ws("qs")
    # scalar state of one lane
    it_v, conv_v, bad_v = g.var(_I64), g.var(_I1), g.var(_I1)
    s_v, piv_v, best_v, ok_v, flag_v = g.var(_F64), g.var(_I64), g.var(_F64), g.var(_I1), g.var(_I1)

    # ---------------------------------------------------------------- the rows (lanes)
    row = g.loop(0, nrows)
    pin = g.gep(src, b.mul(row, g.i(NIN)))
    pout = g.gep(dst, b.mul(row, g.i(NOUT)))
    a0 = g.ld(pin, 2 * n)
    gsh = g.ld(pin, 3 * n + 1)
    maxit = b.fptosi(g.ld(pin, 3 * n + 2), _I64)
    dvmax = g.ld(pin, 3 * n + 3)
    i = g.loop(0, n)
    g.st(g.ld(pin, i), xe, i)
    g.st(zero, pout, b.add(i, g.i(n + 3)))
    g.st(zero, pout, b.add(i, g.i(2 * n + 3)))
    g.st(zero, pout, b.add(i, g.i(3 * n + 3)))
    g.end()
    if K:  # the slots' charges of the last iteration (none yet: 0)
        t = g.loop(0, K)
        g.st(zero, qs, t)
        g.end()
    g.st(zero, xe, n)
    for gs, c in zip(groups, gconst):  # previous $limit states: none yet (0)
        t = g.loop(0, gs.size * gs.P)
        g.st(zero, c["D"], t)
        g.end()
    g.store(g.i(0), it_v)
    g.store(ir.Constant(_I1, 0), conv_v)
    g.store(ir.Constant(_I1, 0), bad_v)
    head = g.fn.append_basic_block("nh")
    body = g.fn.append_basic_block("nb")
    done = g.fn.append_basic_block("nd")
    b.branch(head)
    b.block = head
    it = g.load(it_v, _I64)
    go = b.and_(b.and_(b.xor(g.load(conv_v, _I1), ir.Constant(_I1, 1)), b.icmp_signed("<", it, maxit)),
                b.xor(g.load(bad_v, _I1), ir.Constant(_I1, 1)))
    b.cbranch(go, body, done)
    b.block = body
    it = g.load(it_v, _I64)
    enable = b.select(b.icmp_signed(">", it, g.i(0)), one, zero) if limiting else zero

    # 1. device groups
    for gs, c in zip(groups, gconst):
        N, nv = gs.size, len(gs.volt_cols)
        r = g.loop(0, N)
        rbase = b.mul(r, g.i(gs.n_in))
        if nv:
            k = g.loop(0, nv)
            e = b.add(b.mul(r, g.i(nv)), k)
            va = g.ld(xe, g.ldi(c["ia"], e))
            vb = g.ld(xe, g.ldi(c["ib"], e))
            g.st(b.fsub(va, vb), c["rows"], b.add(rbase, g.ldi(c["vcol"], k)))
            g.end()
        if len(gs.state_cols):
            k = g.loop(0, len(gs.state_cols))
            if gs.stateful:
                v = g.ld(c["D"], b.add(b.mul(r, g.i(gs.P)),
                                       b.add(g.i(4 * gs.n_loc + 2 * gs.n_loc ** 2), g.ldi(c["sk"], k))))
            else:
                v = zero
            g.st(v, c["rows"], b.add(rbase, g.ldi(c["scol"], k)))
            g.end()
        if len(gs.lim_cols):
            k = g.loop(0, len(gs.lim_cols))
            g.st(enable if gs.stateful else zero, c["rows"], b.add(rbase, g.ldi(c["lcol"], k)))
            g.end()
        g.end()
        g.call_addr(gs.address, [g.i(N), c["sh"], c["rows"], c["out"]])
        t = g.loop(0, c["nd"] if sparse else N * gs.P)
        lo, hi = g.ldi(c["dptr"], t), g.ldi(c["dptr"], b.add(t, g.i(1)))
        fl = g.ldi(c["dflag"], t)
        g.store(zero, s_v)
        g.if_(b.icmp_signed("<", lo, hi))
        g.store(g.ld(c["out"], g.ldi(c["didx"], lo)), s_v)
        e = g.loop(b.add(lo, g.i(1)), hi)
        g.store(b.fadd(g.load(s_v), g.ld(c["out"], g.ldi(c["didx"], e))), s_v)
        g.end()
        g.if_(b.icmp_signed("!=", b.and_(fl, g.i(1)), g.i(0)))
        g.store(b.fadd(g.load(s_v), zero), s_v)
        g.end()
        g.end()
        v = g.load(s_v)
        v = b.select(b.icmp_signed("!=", b.and_(fl, g.i(2)), g.i(0)), b.fneg(v), v)
        g.st(v, c["D"], g.ldi(c["ddst"], t) if sparse else t)
        g.end()

    # 2. circuit vectors and matrices: linear part, then the stamps in gather order
    def dot_rows(M: ir.Value, v: ir.Value, dstp: ir.Value) -> None:
        i = g.loop(0, n)
        base = b.mul(i, g.i(n))
        g.store(zero, s_v)
        j = g.loop(0, n)
        g.store(b.fadd(g.load(s_v), b.fmul(g.ld(M, b.add(base, j)), g.ld(v, j))), s_v)
        g.end()
        g.st(g.load(s_v), dstp, i)
        g.end()

    def dot_sparse(M: ir.Value, v: ir.Value, dstp: ir.Value, dense_m: bool) -> None:
        """``dst_i = Σ_j M_ij·v_j`` over row ``i``'s pattern entries in ascending ``j``: the
        dense sum's value (its other terms are ``0·v_j``, which leave a sum unchanged)."""
        i = g.loop(0, n)
        g.store(zero, s_v)
        e = g.loop(g.ldi(sp_ptr, i), g.ldi(sp_ptr, b.add(i, g.i(1))))
        m = g.ld(M, g.ldi(sp_pos, e)) if dense_m else g.ld(M, e)
        g.store(b.fadd(g.load(s_v), b.fmul(m, g.ld(v, g.ldi(sp_col, e)))), s_v)
        g.end()
        g.st(g.load(s_v), dstp, i)
        g.end()

    if sparse:
        dot_sparse(G, xe, f, True)
        dot_sparse(C, xe, q, True)
        t = g.loop(0, nnz)
        pt = g.ldi(sp_pos, t)
        g.st(g.ld(G, pt), Jf, t)
        g.st(g.ld(C, pt), Jq, t)
        g.end()
    else:
        dot_rows(G, xe, f)
        dot_rows(C, xe, q)
        t = g.loop(0, nn)
        g.st(g.ld(G, t), Jf, t)
        g.st(g.ld(C, t), Jq, t)
        g.end()
    i = g.loop(0, n)
    g.st(zero, lf, i)
    g.st(zero, lq, i)
    g.end()
    for name, out_p in (("f", f), ("q", q), ("Jf", Jf), ("Jq", Jq), ("lf", lf), ("lq", lq)):
        ptr_t, idx_t, not_t, size = tabs[name]
        p = g.loop(0, size)
        g.store(g.ld(out_p, p), s_v)
        e = g.loop(g.ldi(ptr_t, p), g.ldi(ptr_t, b.add(p, g.i(1))))
        g.store(b.fadd(g.load(s_v), g.ld(W, g.ldi(idx_t, e))), s_v)
        g.end()
        g.if_(b.icmp_signed("!=", g.ldi(not_t, p), g.i(0)))
        g.store(b.fadd(g.load(s_v), zero), s_v)
        g.end()
        g.st(g.load(s_v), out_p, p)
        g.end()

    if dref is not None:
        _device_reference(g, n, dref, dt, groups, gconst, pin, a0, xe, ref, qs, s_v)

    # 3. residual, Jacobian, residual reference, Newton right-hand side
    i = g.loop(0, n)
    xi = g.ld(xe, i)
    d = b.fmul(gsh, g.ld(gm, i))
    fi, bi, qi, hi_ = g.ld(f, i), g.ld(pin, b.add(i, g.i(n))), g.ld(q, i), g.ld(pin, b.add(i, g.i(2 * n + 1)))
    aq = b.fmul(a0, qi)
    Fi = b.fadd(b.fadd(b.fadd(b.fsub(fi, bi), aq), hi_), b.fmul(d, xi))
    g.st(Fi, F, i)
    if dref is None:
        rf = g.nmax(g.nmax(g.fabs(fi), g.fabs(bi)), g.nmax(g.fabs(aq), g.fabs(hi_)))
        g.store(rf, s_v)
    if sparse:  # the other terms |0·x_j| = 0 never raise the maximum
        e = g.loop(g.ldi(sp_ptr, i), g.ldi(sp_ptr, b.add(i, g.i(1))))
        j = g.ldi(sp_col, e)
    else:
        base = b.mul(i, g.i(n))
        j = g.loop(0, n)
        e = b.add(base, j)
    Jij = b.fadd(b.fadd(g.ld(Jf, e), b.fmul(a0, g.ld(Jq, e))), b.select(b.icmp_signed("==", i, j), d, zero))
    g.st(Jij, J, e)
    if dref is None:
        g.store(g.nmax(g.load(s_v), g.fabs(b.fmul(Jij, g.ld(xe, j)))), s_v)
    g.end()
    if dref is None:
        g.st(g.load(s_v), ref, i)
    Ri = b.fadd(Fi, b.fadd(g.ld(lf, i), b.fmul(a0, g.ld(lq, i))))
    g.st(Ri, R, i)
    g.st(b.fneg(Ri), rv, i)
    g.end()

    # 4. the equilibrated LU solve of _lu (same operations, as loops)
    inf = g.f(float("inf"))
    g.store(ir.Constant(_I1, 1), ok_v)
    if sparse:
        _sparse_equilibrate(g, n, nnz, sp_ptr, sp_col, sp_pos, J, A, rv, cs, s_v, ok_v)
    else:
        _dense_equilibrate(g, n, J, A, rv, cs, s_v, ok_v)
    _dense_lu(g, n, A, rv, dx, flag_v, best_v, piv_v)
    badlu = b.or_(g.load(flag_v, _I1), b.xor(g.load(ok_v, _I1), ir.Constant(_I1, 1)))
    nan = g.f(float("nan"))

    # 5. clipping, convergence test, charge update
    g.store(ir.Constant(_I1, 0), flag_v)  # some dx non-finite
    g.store(ir.Constant(_I1, 1), ok_v)  # residual, update and no clipping within tolerance
    rt = g.f(reltol)
    ndv = b.fneg(dvmax)
    i = g.loop(0, n)
    dxi = b.select(badlu, nan, b.fdiv(g.ld(dx, i), g.ld(cs, i)))
    fin = b.fcmp_ordered("<", g.fabs(dxi), inf)
    g.store(b.or_(g.load(flag_v, _I1), b.xor(fin, ir.Constant(_I1, 1))), flag_v)
    clip = g.nmax(dxi, ndv)
    clip = b.select(b.fcmp_unordered("!=", clip, clip), clip,
                    b.select(b.fcmp_ordered("<", dvmax, clip), dvmax, clip))
    isv = b.icmp_signed("!=", g.ldi(vm, i), g.i(0))
    cli = b.select(isv, clip, dxi)
    g.st(cli, cl, i)
    xi = g.ld(xe, i)
    ok = g.load(ok_v, _I1)
    if rescheck:
        rtol = g.nmax(b.fmul(rt, g.nmax(g.ld(ref, i), g.ld(pin, b.add(i, g.i(4 * n + 4))))), g.ld(resabs, i))
        rok = b.fcmp_ordered("<=", g.fabs(g.ld(R, i)), rtol)
        if dref is not None:  # device-internal rows: not checked (VACASK)
            rok = b.or_(rok, b.icmp_signed("==", g.ldi(chk, i), g.i(0)))
        ok = b.and_(ok, rok)
    xtol = g.nmax(b.fmul(rt, g.nmax(g.fabs(xi), g.ld(pin, b.add(i, g.i(3 * n + 4))))), g.ld(tolabs, i))
    ok = b.and_(ok, b.fcmp_ordered("<=", g.fabs(cli), xtol))
    ok = b.and_(ok, b.fcmp_ordered("==", cli, dxi))
    g.store(ok, ok_v)
    g.end()
    badv = g.load(flag_v, _I1)
    conv = b.and_(b.and_(b.icmp_signed(">=", it, g.i(1)), g.load(ok_v, _I1)), b.xor(badv, ir.Constant(_I1, 1)))
    # keep_input (the row's last entry ≠ 0): q is the charges of this iterate and a converged
    # iteration's input x is kept (VACASK's accepted point); otherwise q + Jq·Δx and x + Δx
    keep_in = b.fcmp_ordered("!=", g.ld(pin, 5 * n + 4), zero)
    i = g.loop(0, n)  # q (+ Jq·Δx), F and the residual reference of this iterate
    g.store(zero, s_v)
    if sparse:
        e = g.loop(g.ldi(sp_ptr, i), g.ldi(sp_ptr, b.add(i, g.i(1))))
        g.store(b.fadd(g.load(s_v), b.fmul(g.ld(Jq, e), g.ld(cl, g.ldi(sp_col, e)))), s_v)
    else:
        base = b.mul(i, g.i(n))
        j = g.loop(0, n)
        g.store(b.fadd(g.load(s_v), b.fmul(g.ld(Jq, b.add(base, j)), g.ld(cl, j))), s_v)
    g.end()
    qi = g.ld(q, i)
    g.st(b.select(keep_in, qi, b.fadd(qi, g.load(s_v))), pout, b.add(i, g.i(n + 3)))
    g.st(g.ld(F, i), pout, b.add(i, g.i(2 * n + 3)))
    g.st(g.ld(ref, i), pout, b.add(i, g.i(3 * n + 3)))
    g.end()
    keep = b.and_(conv, keep_in)
    i = g.loop(0, n)
    xi = g.ld(xe, i)
    g.st(b.select(keep, xi, b.fadd(xi, g.ld(cl, i))), xe, i)
    g.end()
    g.store(b.add(it, g.i(1)), it_v)
    g.store(conv, conv_v)
    g.store(badv, bad_v)
    b.branch(head)
    b.block = done
    i = g.loop(0, n)
    g.st(g.ld(xe, i), pout, i)
    g.end()
    g.st(b.sitofp(g.load(it_v, _I64), _F64), pout, n)
    g.st(b.select(g.load(conv_v, _I1), one, zero), pout, n + 1)
    g.st(b.select(g.load(bad_v, _I1), one, zero), pout, n + 2)
    if K:  # the reactive slots' charges at the last iterate evaluated
        t = g.loop(0, K)
        g.st(g.ld(qs, t), pout, b.add(t, g.i(4 * n + 3)))
        g.end()
    g.end()  # rows
    b._emit(f"  call void {g.b._def(_PTR, f'inttoptr i64 {int(free)} to ptr').ref}(ptr {W.ref})")
    b.ret_void()
    return str(g.mod)


def _device_reference(g: _Gen, n: int, dref: DeviceRef, dt: dict, groups: list[GroupSpec], gconst: list[dict],
                      pin, a0, xe, ref, qs, s_v) -> None:
    """VACASK's per-element reference (:class:`va2jax.sim._resref.ResRef`'s ``resistive``,
    ``charges`` and ``reactive``): ``ref_i`` = the largest of ``|b_i|``, each linear element's own
    ``|Σ_j G_ij·x_j|`` in row ``i``, each instance's own ``|f + lim_f|`` at its local nodes on row
    ``i`` and, where the row's ``use_ehist`` is non-zero, each reactive slot's ``|a0·q_e + ehist_e|``
    (A); ``qs`` the slots' charges (C): each instance's ``q + lim_q`` per local node (its dense
    local outputs, summed as the gather assembly's ``elements``), then ``Σ_j C_ij·x_j`` per charge
    key. The sums are ``jax.ops.segment_sum``'s additions (from 0, in the stamps' order); the
    maxima are of non-negative values (or NaN, which propagates), so their order does not matter.
    Rows ``n`` (ground) go to ``ref[n]``, which is not read."""
    b = g.b
    zero = g.f(0.0)

    def upd(row, v):
        g.st(g.nmax(g.ld(ref, row), g.fabs(v)), ref, row)

    i = g.loop(0, n)
    g.st(g.fabs(g.ld(pin, b.add(i, g.i(n)))), ref, i)
    g.end()
    g.st(zero, ref, n)
    if len(dref.g_rows):  # the linear elements' own currents per row
        k = g.loop(0, len(dref.g_rows))
        g.store(zero, s_v)
        e = g.loop(g.ldi(dt["g_ptr"], k), g.ldi(dt["g_ptr"], b.add(k, g.i(1))))
        g.store(b.fadd(g.load(s_v), b.fmul(g.ld(dt["g_val"], e), g.ld(xe, g.ldi(dt["g_col"], e)))), s_v)
        g.end()
        upd(g.ldi(dt["g_rows"], k), g.load(s_v))
        g.end()
    off = 0
    for gs, c in zip(groups, gconst):  # each instance's own residual and charge per local node
        nl, P = gs.n_loc, gs.P
        r = g.loop(0, gs.size)
        p = g.loop(0, nl)
        d = b.add(b.mul(r, g.i(P)), p)
        slot = b.add(g.i(off), b.add(b.mul(r, g.i(nl)), p))
        D = c["D"]
        fv, qv = g.ld(D, d), g.ld(D, b.add(d, g.i(nl)))
        if gs.stateful:  # + the limiting RHS (negated in D, as the assembly's lim_f, lim_q)
            fv = b.fadd(fv, g.ld(D, b.add(d, g.i(2 * nl + 2 * nl * nl))))
            qv = b.fadd(qv, g.ld(D, b.add(d, g.i(3 * nl + 2 * nl * nl))))
        upd(g.ldi(dt["slot_rows"], slot), fv)
        g.st(qv, qs, slot)
        g.end()
        g.end()
        off += gs.size * nl
    kc = len(dref.c_ptr) - 1
    if kc:  # the linear charge stamps per (element, row)
        k = g.loop(0, kc)
        g.store(zero, s_v)
        e = g.loop(g.ldi(dt["c_ptr"], k), g.ldi(dt["c_ptr"], b.add(k, g.i(1))))
        g.store(b.fadd(g.load(s_v), b.fmul(g.ld(dt["c_val"], e), g.ld(xe, g.ldi(dt["c_col"], e)))), s_v)
        g.end()
        g.st(g.load(s_v), qs, b.add(k, g.i(off)))
        g.end()
    if dref.size:  # the transient's flows a0·q_e + ehist_e
        g.if_(b.fcmp_ordered("!=", g.ld(pin, 5 * n + 5), zero))
        t = g.loop(0, dref.size)
        upd(g.ldi(dt["slot_rows"], t), b.fadd(b.fmul(a0, g.ld(qs, t)), g.ld(pin, b.add(t, g.i(5 * n + 6)))))
        g.end()
        g.end()


def _dense_equilibrate(g: _Gen, n: int, J, A, rv, cs, s_v, ok_v) -> None:
    """``A = J`` row- then column-equilibrated as :mod:`._lu` does it (``rv`` scaled by the row
    scales, the column scales in ``cs``); ``ok_v`` &= every entry of ``J`` and ``rv`` finite."""
    b = g.b
    nn = n * n
    zero, one, inf = g.f(0.0), g.f(1.0), g.f(float("inf"))
    t = g.loop(0, nn)
    a = g.ld(J, t)
    g.st(a, A, t)
    g.store(b.and_(g.load(ok_v, _I1), b.fcmp_ordered("<", g.fabs(a), inf)), ok_v)
    g.end()
    i = g.loop(0, n)
    g.store(b.and_(g.load(ok_v, _I1), b.fcmp_ordered("<", g.fabs(g.ld(rv, i)), inf)), ok_v)
    g.end()
    i = g.loop(0, n)  # row scales
    base = b.mul(i, g.i(n))
    g.store(g.fabs(g.ld(A, base)), s_v)
    j = g.loop(1, n)
    g.store(g.fmax(g.load(s_v), g.fabs(g.ld(A, b.add(base, j)))), s_v)
    g.end()
    s = g.load(s_v)
    s = b.select(b.fcmp_ordered(">", s, zero), s, one)
    j = g.loop(0, n)
    g.st(b.fdiv(g.ld(A, b.add(base, j)), s), A, b.add(base, j))
    g.end()
    g.st(b.fdiv(g.ld(rv, i), s), rv, i)
    g.end()
    j = g.loop(0, n)  # column scales
    g.store(g.fabs(g.ld(A, j)), s_v)
    i = g.loop(1, n)
    g.store(g.fmax(g.load(s_v), g.fabs(g.ld(A, b.add(b.mul(i, g.i(n)), j)))), s_v)
    g.end()
    s = g.load(s_v)
    s = b.select(b.fcmp_ordered(">", s, zero), s, one)
    g.st(s, cs, j)
    i = g.loop(0, n)
    e = b.add(b.mul(i, g.i(n)), j)
    g.st(b.fdiv(g.ld(A, e), s), A, e)
    g.end()
    g.end()


def _sparse_equilibrate(g: _Gen, n: int, nnz: int, ptr, col, pos, J, A, rv, cs, s_v, ok_v) -> None:
    """:func:`_dense_equilibrate` of ``J`` given by its values at the pattern's entries (CSR:
    ``ptr``, ``col``, dense positions ``pos``): ``A`` zeroed, then each entry's scaled value at its
    position — the same quotients (the scales are maxima of the same magnitudes, as the zeros
    outside the pattern never raise a maximum, and ``0/s = 0`` there), in O(nnz) instead of O(n²)."""
    b = g.b
    zero, one, inf = g.f(0.0), g.f(1.0), g.f(float("inf"))
    t = g.loop(0, n * n)
    g.st(zero, A, t)
    g.end()
    t = g.loop(0, nnz)
    g.store(b.and_(g.load(ok_v, _I1), b.fcmp_ordered("<", g.fabs(g.ld(J, t)), inf)), ok_v)
    g.end()
    i = g.loop(0, n)
    g.store(b.and_(g.load(ok_v, _I1), b.fcmp_ordered("<", g.fabs(g.ld(rv, i)), inf)), ok_v)
    g.end()
    i = g.loop(0, n)  # row scales
    lo, hi = g.ldi(ptr, i), g.ldi(ptr, b.add(i, g.i(1)))
    g.store(zero, s_v)
    e = g.loop(lo, hi)
    g.store(g.fmax(g.load(s_v), g.fabs(g.ld(J, e))), s_v)
    g.end()
    s = g.load(s_v)
    s = b.select(b.fcmp_ordered(">", s, zero), s, one)
    e = g.loop(lo, hi)
    g.st(b.fdiv(g.ld(J, e), s), A, g.ldi(pos, e))
    g.end()
    g.st(b.fdiv(g.ld(rv, i), s), rv, i)
    g.end()
    j = g.loop(0, n)  # column scales
    g.st(zero, cs, j)
    g.end()
    e = g.loop(0, nnz)
    c = g.ldi(col, e)
    g.st(g.fmax(g.ld(cs, c), g.fabs(g.ld(A, g.ldi(pos, e)))), cs, c)
    g.end()
    j = g.loop(0, n)
    s = g.ld(cs, j)
    g.st(b.select(b.fcmp_ordered(">", s, zero), s, one), cs, j)
    g.end()
    e = g.loop(0, nnz)
    p = g.ldi(pos, e)
    g.st(b.fdiv(g.ld(A, p), g.ld(cs, g.ldi(col, e))), A, p)
    g.end()


def _dense_lu(g: _Gen, n: int, A, rv, dx, flag_v, best_v, piv_v) -> None:
    """LU with partial pivoting of the equilibrated ``A`` as :mod:`._lu` (forward substitution
    folded in), back substitution into ``dx``; ``flag_v``: a zero pivot."""
    b = g.b
    zero, one = g.f(0.0), g.f(1.0)
    g.store(ir.Constant(_I1, 0), flag_v)  # singular
    k = g.loop(0, n)
    kn = b.mul(k, g.i(n))
    g.store(g.fabs(g.ld(A, b.add(kn, k))), best_v)
    g.store(k, piv_v)
    i = g.loop(b.add(k, g.i(1)), n)
    a = g.fabs(g.ld(A, b.add(b.mul(i, g.i(n)), k)))
    gt = b.fcmp_ordered(">", a, g.load(best_v))  # strictly greater: the first maximum wins
    g.store(b.select(gt, a, g.load(best_v)), best_v)
    g.store(b.select(gt, i, g.load(piv_v, _I64)), piv_v)
    g.end()
    pv = g.load(piv_v, _I64)
    g.if_(b.icmp_signed("!=", pv, k))
    pn = b.mul(pv, g.i(n))
    j = g.loop(k, n)
    x1, x2 = g.ld(A, b.add(kn, j)), g.ld(A, b.add(pn, j))
    g.st(x2, A, b.add(kn, j))
    g.st(x1, A, b.add(pn, j))
    g.end()
    x1, x2 = g.ld(rv, k), g.ld(rv, pv)
    g.st(x2, rv, k)
    g.st(x1, rv, pv)
    g.end()
    p = g.ld(A, b.add(kn, k))
    g.store(b.or_(g.load(flag_v, _I1), b.fcmp_ordered("==", p, zero)), flag_v)
    rec = b.fdiv(one, p)
    tiny = b.fcmp_ordered("<", g.fabs(p), g.f(_DBL_MIN))
    rk = g.ld(rv, k)
    i = g.loop(b.add(k, g.i(1)), n)
    inn = b.mul(i, g.i(n))
    aik = g.ld(A, b.add(inn, k))
    lik = b.select(tiny, b.fdiv(aik, p), b.fmul(aik, rec))
    # a zero multiplier leaves the row as it is (a − 0·b = a for finite b): skip it
    g.if_(b.fcmp_unordered("!=", lik, zero))
    j = g.loop(b.add(k, g.i(1)), n)
    e = b.add(inn, j)
    g.st(b.fsub(g.ld(A, e), b.fmul(lik, g.ld(A, b.add(kn, j)))), A, e)
    g.end()
    g.st(b.fsub(g.ld(rv, i), b.fmul(lik, rk)), rv, i)
    g.end()
    g.end()
    g.end()
    k = g.down(n)  # back substitution, column by column
    xk = b.fdiv(g.ld(rv, k), g.ld(A, b.add(b.mul(k, g.i(n)), k)))
    g.st(xk, dx, k)
    i = g.loop(0, k)
    g.st(b.fsub(g.ld(rv, i), b.fmul(xk, g.ld(A, b.add(b.mul(i, g.i(n)), k)))), rv, i)
    g.end()
    g.end()


def jacobian_pattern(n: int, G: np.ndarray, C: np.ndarray, groups: list[GroupSpec], mat_tab: np.ndarray) -> np.ndarray:
    """(n, n) bool: where the Newton matrix ``Jf + a0·Jq + diag(gshunt·m)`` can be non-zero — ``G``
    or ``C`` non-zero, the diagonal, and every position some device stamps a Jacobian entry into
    that its kernel computes (an entry none of the kernel's output columns feeds is always 0)."""
    pat = (np.asarray(G) != 0) | (np.asarray(C) != 0) | np.eye(n, dtype=bool)
    live = []
    for gs in groups:  # per instance and local (a, b): Jf or Jq has a kernel column
        nl = gs.n_loc
        has = np.any((gs.gather >= 0) & (gs.gather < gs.n_out), axis=0)  # (N, P)
        jf, jq = has[:, 2 * nl:2 * nl + nl * nl], has[:, 2 * nl + nl * nl:2 * nl + 2 * nl * nl]
        live.append((jf | jq).ravel())
    live = np.concatenate(live + [np.zeros(1, bool)])  # the table's "nothing" index: not live
    tab = np.asarray(mat_tab, np.int64)
    src = np.clip(tab, 0, live.size - 1)
    hit = np.any((tab >= 0) & (tab < live.size - 1) & live[src], axis=0)
    pat.ravel()[np.nonzero(hit)[0]] = True
    return pat


def use_sparse_kernel(n: int) -> bool:
    """The sparse variant for ``n`` unknowns: ``VA2JAX_SIM_NEWTON_MATRIX`` (dense | sparse), else from
    :data:`SPARSE_FROM` unknowns."""
    from ... import _config

    mode = _config.get("SIM_NEWTON_MATRIX")
    return mode == "sparse" if mode is not None else n >= SPARSE_FROM


#: Unknowns from which the Newton kernel is sparse by default: every size (measured, docs/sim.md
#: change 8: never slower, bit-identical to the dense kernel; inside the native step kernel rc/graetz/
#: mul 0.61/3.78/4.05 → 0.51/2.74/2.84 µs per step, the same points and iterations)
SPARSE_FROM = 1

_lock = threading.Lock()
_built: dict[str, int] = {}


def _jit(text: str, symbol: str) -> int:
    """Compile with LLVM's O2 pipeline (registers for the stack variables, no fast-math) and
    MCJIT; the engine lives as long as the process."""
    from ._ffi import jit_ir

    return jit_ir(text, [symbol], opt=2, ir_passes=2)[symbol]


def _clip_mask(clip_mask: np.ndarray | None, is_current: np.ndarray) -> np.ndarray:
    """The unknowns clipped at ``dvmax`` (bool, n): ``clip_mask``, or every node voltage."""
    if clip_mask is None:
        return ~np.asarray(is_current, bool)
    return np.asarray(clip_mask, bool)


def newton_kernel(n: int, groups: list[GroupSpec], tabs: tuple, gmask, is_current, *, reltol: float,
                  vntol: float, abstol: float, rescheck: bool, limiting: bool,
                  pattern: np.ndarray | None = None, fallback: bool = False,
                  clip_mask: np.ndarray | None = None, dref: DeviceRef | None = None) -> tuple[int, str | None]:
    """``(address, code_key)`` of the compiled Newton kernel (built once per circuit and process).
    ``code_key`` identifies its behaviour across processes (every group's kernel by its code, not
    its address; None when some group's code is unknown): the FFI target's name, so that JAX's
    persistent compilation cache can find a program calling it again in a later process.
    ``pattern``: the sparse variant (:func:`newton_ir`); ``fallback``: with the dense kernel as its
    fallback for ``G``/``C`` outside the pattern (built too); ``dref``: VACASK's residual
    reference (:func:`newton_ir`)."""
    from ._ffi import _libc_address
    from ._kernel import _own_digest

    # the generators' own code is part of the identity: a changed kernel gets a new FFI target
    # name, so that no persistent compilation cache entry of the old one is taken for it
    h = hashlib.sha256(_own_digest().encode())
    stable = all(gs.code is not None for gs in groups)
    for gs in groups:
        ident = gs.code if stable else gs.address
        h.update(repr((ident, gs.n_in, gs.n_out, gs.n_loc, gs.num_states, gs.stateful)).encode())
        for a in (gs.shared, gs.static, gs.volt_cols, gs.volt_ia, gs.volt_ib, gs.state_cols, gs.state_k,
                  gs.lim_cols, gs.gather):
            h.update(np.ascontiguousarray(a).tobytes())
    for t in tabs + (np.asarray(gmask), np.asarray(is_current), _clip_mask(clip_mask, is_current)):
        h.update(b"-" if t is None else np.ascontiguousarray(t).tobytes())
    h.update(repr((n, reltol, vntol, abstol, rescheck, limiting)).encode())
    if dref is not None:
        h.update(b"device-ref")
        for a in dref.arrays():
            h.update(np.ascontiguousarray(a).tobytes() + b"|")
    dense_addr = None
    if pattern is not None:  # the sparse variant (the dense one keeps its digest)
        h.update(b"sparse" + np.packbits(np.asarray(pattern, bool)).tobytes() + (b"checked" if fallback else b""))
        if fallback:
            dense_addr = newton_kernel(n, groups, tabs, gmask, is_current, reltol=reltol, vntol=vntol,
                                       abstol=abstol, rescheck=rescheck, limiting=limiting,
                                       clip_mask=clip_mask, dref=dref)[0]
    digest = h.hexdigest()[:16]
    with _lock:
        if digest in _built:
            return _built[digest], (symbol_of(digest) if stable else None)
        symbol = symbol_of(digest)
        text = newton_ir(symbol, n, groups, *tabs, gmask, is_current, reltol=reltol, vntol=vntol,
                         abstol=abstol, rescheck=rescheck, limiting=limiting,
                         malloc=_libc_address("malloc"), free=_libc_address("free"), pattern=pattern,
                         fallback=dense_addr, clip_mask=clip_mask, dref=dref)
        addr = _built[digest] = _jit(text, symbol)
    return addr, (symbol if stable else None)


def symbol_of(digest: str) -> str:
    """The Newton kernel's symbol for its digest."""
    return f"va2jax_newton_{digest}"


def make_native_newton(n: int, G: np.ndarray, C: np.ndarray, groups: list[GroupSpec], tabs: tuple,
                       gmask, is_current, *, reltol: float, vntol: float, abstol: float,
                       rescheck: bool, limiting: bool, nominal: tuple | None = None,
                       clip_mask: np.ndarray | None = None, dref: DeviceRef | None = None) -> Callable:
    """``newton(x0, b, a0, hist, gshunt, maxiter, dvmax, xref=None, rref=None) -> (x, iterations,
    converged, singular, q, F, r)`` (the signature of :func:`va2jax.sim.engine.make_newton`) as one
    XLA FFI call of the native kernel (CPU; ``jit``, ``vmap`` — one loop per lane — and ``lax``
    loops; no derivative rules). ``G``, ``C`` (n, n): NumPy (embedded) or traced JAX arrays.
    From :data:`SPARSE_FROM` unknowns (or as ``VA2JAX_SIM_NEWTON_MATRIX`` says) the kernel is the
    sparse variant on :func:`jacobian_pattern`; for traced ``G``/``C`` only given ``nominal`` =
    ``(G0, C0)`` (NumPy: the unswept circuit's, whose pattern theirs is expected to share), with the
    dense kernel as its fallback where they do not. ``clip_mask``: as :func:`newton_ir`.

    ``dref``: VACASK's per-element residual reference (:func:`newton_ir`); then ``newton`` takes
    ``ehist`` (K,), the reactive slots' integration history (their flows join the reference), and
    with it returns an eighth result, the slots' charges at the returned point (as
    :func:`va2jax.sim.engine.make_newton`'s XLA loop)."""
    import jax.numpy as jnp

    from ._ffi import native_call

    known = isinstance(G, np.ndarray) and isinstance(C, np.ndarray)
    pattern = None
    if use_sparse_kernel(n) and (known or nominal is not None):
        G0, C0 = (G, C) if known else (np.asarray(nominal[0]), np.asarray(nominal[1]))
        pattern = jacobian_pattern(n, G0, C0, groups, tabs[2])
    addr, code_key = newton_kernel(n, groups, tabs, gmask, is_current, reltol=reltol, vntol=vntol,
                                   abstol=abstol, rescheck=rescheck, limiting=limiting, pattern=pattern,
                                   fallback=pattern is not None and not known, clip_mask=clip_mask,
                                   dref=dref)
    K = dref.size if dref is not None else 0
    nin = 5 * n + 5 + (1 + K if dref is not None else 0)
    call = native_call(addr, 2 * n * n, nin, 4 * n + 3 + K, label="newton", min_rows_per_task=1,
                       code_key=code_key)
    if isinstance(G, np.ndarray) and isinstance(C, np.ndarray):  # a constant of the computation
        shared = np.concatenate([G.astype(np.float64).ravel(), C.astype(np.float64).ravel()])
    else:  # traced (a batched sweep of linear elements)
        shared = jnp.concatenate([jnp.ravel(jnp.asarray(G, jnp.float64)), jnp.ravel(jnp.asarray(C, jnp.float64))])

    def newton(x0, b, a0, hist, gshunt, maxiter, dvmax, xref=None, rref=None, keep_input=False,
               ehist=None):
        f64 = jnp.float64
        xref = jnp.zeros(n) if xref is None else xref
        rref = jnp.zeros(n) if rref is None else rref
        row = jnp.concatenate([jnp.asarray(x0, f64), jnp.asarray(b, f64), jnp.reshape(jnp.asarray(a0, f64), (1,)),
                               jnp.asarray(hist, f64), jnp.reshape(jnp.asarray(gshunt, f64), (1,)),
                               jnp.reshape(jnp.asarray(maxiter).astype(f64), (1,)),
                               jnp.reshape(jnp.asarray(dvmax, f64), (1,)), jnp.asarray(xref, f64),
                               jnp.asarray(rref, f64), jnp.full((1,), 1.0 if keep_input else 0.0, f64)])
        if dref is not None:  # [use_ehist, ehist]
            eh = jnp.zeros(K, f64) if ehist is None else jnp.asarray(ehist, f64)
            row = jnp.concatenate([row, jnp.full((1,), 0.0 if ehist is None else 1.0, f64), eh])
        out = call(shared, row)
        x, it, conv, bad = out[:n], out[n].astype(jnp.int32), out[n + 1] > 0, out[n + 2] > 0
        res = (x, it, conv, bad, out[n + 3:2 * n + 3], out[2 * n + 3:3 * n + 3], out[3 * n + 3:4 * n + 3])
        return res + (out[4 * n + 3:],) if ehist is not None else res

    # the kernel's address and constant ``shared`` for native callers (the transient step kernel
    # of ``_tstep``); None when ``G``/``C`` are traced
    newton.native = (addr, shared, code_key) if isinstance(shared, np.ndarray) else None
    newton.native_slots = K if dref is not None else None  # the kernel's reactive slots (dref)
    return newton


__all__ = ["DeviceRef", "GroupSpec", "jacobian_pattern", "make_native_newton", "newton_ir", "use_sparse_kernel"]
