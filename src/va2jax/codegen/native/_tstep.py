"""Whole transient time steps as one native kernel: the simulator's CPU dense path.

:class:`va2jax.sim.tran.TranKernel` runs the time loop as a ``lax.while_loop`` whose body (the
sources ``b(t)``, the breakpoint search, the predictor, the Newton solve, the LTE, the step-size
control and the output row) is some 33 XLA operations besides the Newton call; on a circuit of a
few elements those cost more than the whole step of VACASK. Here the loop that fills one chunk of
output rows is LLVM IR (the text builder of :mod:`._llir`, the helpers of :mod:`._newton`),
compiled in-process: one XLA FFI call per chunk, with the ABI of :mod:`._ffi` (``void k(int64 rows,
const double *shared, const double *in, double *out)``). ``shared`` is the Newton kernel's
(``[G, C]``); the Newton solve of each attempt is a call of the Newton kernel by its address
(its ABI unchanged: one row ``[x0, b, a0, hist, gshunt, maxiter, dvmax, xref, rref, keep_input]``,
``keep_input`` as :class:`~va2jax.sim.tran.TranKernel` chooses it).

Row layout (doubles): ``in`` = ``[t, h, th₀, th₁, th₂, hmin, maxstep, stop, step, B | 13 counters
| xh (3n), qh (3n), fh (3n), qdot, xmax, rmax, flast | eqh (3K), eqdot (K) | bps (B)]``; ``out`` =
``[t, h, th₀, th₁, th₂ | 13 counters | the 13 vectors | eqh, eqdot | chunk rows (t, x)]`` — the
fields of :class:`~va2jax.sim.tran.TranState` (counters in its ``I_FIELDS`` order); ``eqh``,
``eqdot``: the K reactive slots' charge and flow history of VACASK's per-element residual
reference (``slots``; K = 0 and none with the reference from the sums), integrated with the
formula of the global charges and passed to the Newton kernel as its ``ehist``.

Each attempt performs :class:`~va2jax.sim.tran.TranKernel`'s ``attempt`` operation by operation
(the same IEEE operations in the same order, NaN-propagating minima/maxima as ``jnp.minimum``;
``sin``, ``pow`` and ``fmod`` are the C library's, which XLA's CPU code calls too), so the time
points, iterations and values are the XLA loop's bit for bit. Two things are computed another way
with the same result: the breakpoint index (``#{i: bps_i ≤ t·(1 + 10⁻¹²) + 10⁻³⁰⁰}``, a comparison
with every breakpoint in XLA) is moved from the last attempt's index (the table is sorted and
``t`` never decreases), and quantities of the not-taken branch of a ``where`` are not computed.

Sources: ``dc``, ``pulse``, ``pwl`` and undamped ``sine`` (``damp = 0``: XLA's ``exp(−0·t)`` is
exactly 1, and XLA's ``exp`` is not the C library's) with the formulas of
:meth:`va2jax.sim.sources.Waveform.jax_value`; a circuit with another waveform keeps the XLA loop
(:func:`supported`).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import math
import threading
from collections.abc import Callable

import numpy as np

from . import _llir as ir
from ._newton import _F64, _I1, _I64, _PTR, _Gen

#: TranState's int32 fields, in the order of ``sim/tran.py``'s ``I_FIELDS``
I_FIELDS = ("nh", "after_bp", "bpi", "k", "rej", "iters", "done", "fail", "nd", "ordr", "trh",
            "lastit", "lastbad")
#: its vector fields (rows of n)
V_FIELDS = (("xh", 3), ("qh", 3), ("fh", 3), ("qdot", 1), ("xmax", 1), ("rmax", 1), ("flast", 1))
NF_IN, NF_OUT, NI = 10, 5, len(I_FIELDS)


def n_in(n: int, nb: int, slots: int = 0) -> int:
    return NF_IN + NI + 13 * n + 4 * slots + nb


def n_out(n: int, chunk: int, slots: int = 0) -> int:
    return NF_OUT + NI + 13 * n + 4 * slots + chunk * (n + 1)


def supported(sources) -> bool:
    """Whether every source's waveform has a native form (dc, pulse, pwl, undamped sine)."""
    for s in sources:
        w = s.wave
        if w.kind in ("dc", "pulse") or (w.kind == "pwl" and w.wave is not None and len(w.wave) >= 2):
            continue
        if w.kind == "sine" and float(w.p.get("damp", 0.0)) == 0.0:
            continue
        return False
    return True


_libm_lock = threading.Lock()
_libm_addr: dict[str, int] = {}


def _libm(name: str) -> int:
    with _libm_lock:
        if name not in _libm_addr:
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            _libm_addr[name] = ctypes.cast(getattr(lib, name), ctypes.c_void_p).value
        return _libm_addr[name]


def _wave_ir(g: _Gen, w, t: ir.Value) -> ir.Value:
    """The waveform's value at ``t``: :meth:`Waveform.jax_value`'s operations."""
    b = g.b
    p = w.p
    f = g.f
    if w.kind == "dc":
        return b.fadd(f(float(w.dc)), b.fmul(f(0.0), t))
    if w.kind == "pulse":
        v0, v1 = p.get("val0", 0.0), p.get("val1", 0.0)
        td, tr, tf = p.get("delay", 0.0), p.get("rise", 0.0), p.get("fall", 0.0)
        pw, per = p.get("width", math.inf), p.get("period", math.inf)
        tt = b.fsub(t, f(td))
        # the fall's argument (tt − tr) − pw: XLA combines the constants with the delay's when
        # nothing stands between them (no period), else with tr's only
        targ = b.fadd(t, f(-td - tr - pw))
        if per > 0 and math.isfinite(per):
            # jnp.mod = fmod for tt ≥ 0 (and a positive period); the other branch is not taken
            m = g.call_ret(_libm("fmod"), _F64, [tt, f(per)])
            tt = b.select(b.fcmp_ordered(">=", tt, f(0.0)), m, tt)
            targ = b.fsub(tt, f(tr + pw))
        # as XLA's simplifier rewrites jax_value's ``(v1 − v0)·tt/tr`` and ``(tt − tr − pw)``: a
        # division by a constant becomes a product with its reciprocal, and the constants of
        # ``(tt·c₁)·c₂`` and ``(tt − c₁) − c₂`` are combined first (``tt·(c₁·c₂)``, ``tt − (c₁ + c₂)``)
        kr = (v1 - v0) * (1.0 / (tr if tr > 0 else 1.0))
        kf = (v0 - v1) * (1.0 / (tf if tf > 0 else 1.0))
        rise = b.fadd(f(v0), b.fmul(tt, f(kr)))
        fall = b.fadd(f(v1), b.fmul(targ, f(kf)))
        pw_ = pw if math.isfinite(pw) else 1e300
        r = b.select(b.fcmp_ordered("<", tt, f(tr + pw_ + tf)), fall, f(v0))
        r = b.select(b.fcmp_ordered("<=", tt, f(tr + pw_)), f(v1), r)
        r = b.select(b.fcmp_ordered("<", tt, f(tr)), rise, r)
        return b.select(b.fcmp_ordered("<", tt, f(0.0)), f(v0), r)
    if w.kind == "sine":
        off, a, fr = p.get("sinedc", 0.0), p.get("ampl", 0.0), p.get("freq", 0.0)
        td = p.get("delay", 0.0)
        ph = math.radians(p.get("sinephase", 0.0))
        tt = g.nmax(b.fsub(t, f(td)), f(0.0))
        arg = b.fadd(b.fmul(f(2 * math.pi * fr), tt), f(ph))
        s = g.call_ret(_libm("sin"), _F64, [arg])
        # exp(−0·tt) = 1 exactly: the product by 1.0 kept as written
        return b.fadd(f(off), b.fmul(b.fmul(f(a), s), f(1.0)))
    if w.kind == "pwl":
        return _pwl_ir(g, np.asarray(w.wave, np.float64), t)
    raise AssertionError(w.kind)


def _pwl_ir(g: _Gen, wave: np.ndarray, x: ir.Value) -> ir.Value:
    """``jnp.interp(x, xp, fp)`` (its default ``left``/``right``): ``i`` = the number of
    ``xp ≤ x`` clipped to ``[1, K − 1]`` (a binary search: ``xp`` is sorted),
    ``fp[i−1] + ((x − xp[i−1])/(xp[i] − xp[i−1]))·(fp[i] − fp[i−1])`` (``fp[i−1]`` where the
    interval is shorter than ``spacing(eps)``), ``fp[0]`` below ``xp[0]``, ``fp[−1]`` above
    ``xp[−1]``."""
    b = g.b
    K = wave.shape[0]
    xp, fp = g.global_f64(wave[:, 0]), g.global_f64(wave[:, 1])
    lo, hi = g.var(_I64, g.i(0)), g.var(_I64, g.i(K))
    wh, wb, wx = (g.fn.append_basic_block(x_) for x_ in ("ph", "pb", "px"))
    b.branch(wh)
    b.block = wh
    b.cbranch(b.icmp_signed("<", g.load(lo, _I64), g.load(hi, _I64)), wb, wx)
    b.block = wb
    lo_, hi_ = g.load(lo, _I64), g.load(hi, _I64)
    mid = b.ashr(b.add(lo_, hi_), g.i(1))
    le = b.fcmp_ordered("<=", g.ld(xp, mid), x)
    g.store(b.select(le, b.add(mid, g.i(1)), lo_), lo)
    g.store(b.select(le, hi_, mid), hi)
    b.branch(wh)
    b.block = wx
    i = g.load(lo, _I64)
    i = b.select(b.icmp_signed("<", i, g.i(1)), g.i(1), i)
    i = b.select(b.icmp_signed(">", i, g.i(K - 1)), g.i(K - 1), i)
    im = b.sub(i, g.i(1))
    f0 = g.ld(fp, im)
    df = b.fsub(g.ld(fp, i), f0)
    x0 = g.ld(xp, im)
    dx = b.fsub(g.ld(xp, i), x0)
    delta = b.fsub(x, x0)
    dx0 = b.fcmp_ordered("<=", g.fabs(dx), g.f(float(np.spacing(np.finfo(np.float64).eps))))
    f = b.select(dx0, f0, b.fadd(f0, b.fmul(b.fdiv(delta, b.select(dx0, g.f(1.0), dx)), df)))
    f = b.select(b.fcmp_ordered("<", x, g.f(float(wave[0, 0]))), g.f(float(wave[0, 1])), f)
    return b.select(b.fcmp_ordered(">", x, g.f(float(wave[-1, 0]))), g.f(float(wave[-1, 1])), f)


def tstep_ir(symbol: str, n: int, method: str, sources, *, newton_addr: int, chunk: int,
             is_current: np.ndarray, reltol: float, vntol: float, abstol: float, lteratio: float,
             redo: float, ft: float, itl: int, gshunt: float, dvmax: float, predictor: bool,
             has_lte: bool, fbr: float, keep_input: bool, malloc: int, free: int,
             slots: int | None = None) -> str:
    """LLVM IR text of the step kernel (see the module doc). ``slots``: the Newton kernel's
    reactive slots K with VACASK's per-element residual reference (its rows carry ``[use_ehist,
    ehist]``, its results the slots' charges; the state their history ``eqh`` (3K), ``eqdot`` (K));
    None: the reference from the sums."""
    g = _Gen(symbol)
    b = g.b
    f, i64 = g.f, g.i
    nrows, shared, src, dst = g.fn.args
    order = 1 if method == "be" else 2
    device = slots is not None
    K = slots or 0
    NOUT = n_out(n, chunk, K)
    VIN, VOUT = NF_IN + NI, NF_OUT + NI
    NV = 13 * n + 4 * K  # the state vectors, then the slots' history
    true = ir.Constant(_I1, 1)
    nnin, nnout = 5 * n + 5 + (1 + K if device else 0), 4 * n + 3 + K
    # workspace: the 13 state vectors and the slots' history, the Newton row and result, xpred,
    # xf, b (n + 1)
    o_v, o_nin = 0, NV
    o_nout = o_nin + nnin
    o_xp = o_nout + nnout
    o_xf = o_xp + n
    o_b = o_xf + n
    total = o_b + n + 1
    W = g.call_ret(malloc, _PTR, [i64(8 * total)])
    V = g.gep(W, o_v)
    nin, nout, xp_w, xf_w, bb = (g.gep(W, o) for o in (o_nin, o_nout, o_xp, o_xf, o_b))
    xh = [g.gep(V, r * n) for r in range(3)]
    qh = [g.gep(V, (3 + r) * n) for r in range(3)]
    fh = [g.gep(V, (6 + r) * n) for r in range(3)]
    qdot, xmax, rmax, flast = (g.gep(V, r * n) for r in (9, 10, 11, 12))
    eqh = [g.gep(V, 13 * n + r * K) for r in range(3)]
    eqdot = g.gep(V, 13 * n + 3 * K)
    xabs = g.global_f64(np.where(is_current, abstol, vntol))
    fv = {k: g.var(_F64) for k in ("t", "h", "th0", "th1", "th2")}
    iv = {k: g.var(_I64) for k in I_FIELDS}
    s_v = g.var(_F64)

    def nmin(a, c):
        """``jnp.minimum``: NaN when either is NaN."""
        r = b.select(b.fcmp_ordered("<", a, c), a, c)
        return b.select(b.fcmp_unordered("!=", a, a), a, r)

    def ld(name):
        return g.load(fv[name]) if name in fv else g.load(iv[name], _I64)

    def sel(c, x, y):
        return b.select(c, x, y)

    row = g.loop(0, nrows)
    B = b.fptosi(g.ld(src, 9), _I64)  # breakpoints per row (the same in every row)
    pin = g.gep(src, b.mul(row, b.add(i64(n_in(n, 0, K)), B)))
    pout = g.gep(dst, b.mul(row, i64(NOUT)))
    for j, k in enumerate(("t", "h", "th0", "th1", "th2")):
        g.store(g.ld(pin, j), fv[k])
    hmin, maxstep, stop, _step = (g.ld(pin, j) for j in (5, 6, 7, 8))
    for j, k in enumerate(I_FIELDS):
        g.store(b.fptosi(g.ld(pin, NF_IN + j), _I64), iv[k])
    t_ = g.loop(0, NV)
    g.st(g.ld(pin, b.add(t_, i64(VIN))), V, t_)
    g.end()
    bps = g.gep(pin, VIN + NV)
    t_ = g.loop(0, chunk * (n + 1))
    g.st(f(0.0), pout, b.add(t_, i64(VOUT + NV)))
    g.end()

    # ------------------------------------------------------------ attempts until the chunk is full
    head = g.fn.append_basic_block("sh")
    body = g.fn.append_basic_block("sb")
    done_b = g.fn.append_basic_block("sd")
    b.branch(head)
    b.block = head
    go = b.and_(b.and_(b.icmp_signed("==", ld("done"), i64(0)), b.icmp_signed("==", ld("fail"), i64(0))),
                b.icmp_signed("<", ld("k"), i64(chunk)))
    b.cbranch(go, body, done_b)
    b.block = body
    t, h0 = ld("t"), ld("h")
    th0, th1, th2 = ld("th0"), ld("th1"), ld("th2")
    # breakpoint index: #{i: bps_i <= v}, moved from the last attempt's
    v = b.fadd(b.fmul(t, f(1 + 1e-12)), f(1e-300))
    bpv = g.var(_I64, ld("bpi"))
    for up in (True, False):
        wh, wb, wx = (g.fn.append_basic_block(x) for x in ("wh", "wb", "wx"))
        b.branch(wh)
        b.block = wh
        k = g.load(bpv, _I64)
        if up:
            kc = sel(b.icmp_signed("<", k, B), k, b.sub(B, i64(1)))
            c = b.and_(b.icmp_signed("<", k, B), b.fcmp_ordered("<=", g.ld(bps, kc), v))
        else:
            kc = sel(b.icmp_signed(">", k, i64(0)), b.sub(k, i64(1)), i64(0))
            c = b.and_(b.icmp_signed(">", k, i64(0)), b.xor(b.fcmp_ordered("<=", g.ld(bps, kc), v), true))
        b.cbranch(c, wb, wx)
        b.block = wb
        g.store(b.add(k, i64(1 if up else -1)), bpv)
        b.branch(wh)
        b.block = wx
    bpi = g.load(bpv, _I64)
    nb1 = b.sub(B, i64(1))
    next_bp = sel(b.icmp_signed("<", bpi, B), g.ld(bps, sel(b.icmp_signed("<", bpi, nb1), bpi, nb1)), stop)
    next_bp = nmin(next_bp, stop)
    # largest step: maxstep and tran_fbr × the breakpoint interval holding t (sim/tran.py)
    prev_bp = sel(b.icmp_signed(">", bpi, i64(0)),
                  g.ld(bps, sel(b.icmp_signed(">", b.sub(bpi, i64(1)), i64(0)), b.sub(bpi, i64(1)), i64(0))),
                  f(0.0))
    # (not the first attempt, iters = 0: its step is VACASK's first, bounded when chosen)
    hmax = sel(b.icmp_signed("==", ld("iters"), i64(0)), f(float("inf")), maxstep)
    h = nmin(h0, nmin(hmax, b.fmul(f(fbr), b.fsub(next_bp, prev_bp))))
    tph = b.fadd(t, h)
    # past the next breakpoint: cut onto it (t_new = the breakpoint); short of it by < h/10: halved
    hit = b.fcmp_ordered(">", tph, next_bp)
    h = sel(hit, b.fsub(next_bp, t), sel(b.fcmp_ordered("<", b.fsub(next_bp, tph), b.fmul(f(0.1), h)),
                                          b.fmul(f(0.5), h), h))
    tn = sel(hit, next_bp, b.fadd(t, h))
    ordr, nd = ld("ordr"), ld("nd")
    be = b.icmp_signed("<", ordr, i64(2)) if order == 2 else true
    nbe = b.xor(be, true)
    inv_h = b.fdiv(f(1.0), h)
    if method == "gear2":
        hp = b.fsub(th2, th1)
        w = b.fdiv(h, sel(b.fcmp_ordered(">", hp, f(0.0)), hp, h))
        opw = b.fadd(f(1.0), w)
        a0_2 = b.fdiv(b.fadd(f(1.0), b.fmul(f(2.0), w)), b.fmul(opw, h))
        c1 = b.fneg(opw)
        c2 = b.fdiv(b.fmul(w, w), opw)
        e_i2 = b.fdiv(b.fmul(opw, opw), b.fmul(w, b.fadd(f(1.0), b.fmul(f(2.0), w))))
    elif method == "trap":
        a0_2 = b.fdiv(f(2.0), h)
        e_i2 = f(0.5)
    else:
        a0_2, e_i2 = inv_h, f(0.5)
    a0 = sel(be, inv_h, a0_2)

    def history(q3, qdot_p, i):
        """``hist`` at entry ``i`` of charges with the accepted values ``q3`` (three arrays,
        oldest first) and derivative ``qdot_p``: TranKernel's ``history``, operation by operation."""
        qk = g.ld(q3[2], i)
        hist_be = b.fmul(b.fneg(qk), inv_h)
        if method == "trap":
            hist_2 = b.fsub(b.fmul(b.fmul(f(-2.0), qk), inv_h), g.ld(qdot_p, i))
        elif method == "gear2":
            hist_2 = b.fmul(b.fadd(b.fmul(c1, qk), b.fmul(c2, g.ld(q3[1], i))), inv_h)
        else:
            hist_2 = hist_be
        return sel(be, hist_be, hist_2)

    # predictor through (th2, th1, th0)
    t1, t2, t3 = th2, th1, th0
    hh = b.fsub(tn, t1)
    r1 = b.fdiv(hh, b.fsub(t1, t2))
    l1 = b.fdiv(b.fmul(b.fsub(tn, t2), b.fsub(tn, t3)), b.fmul(b.fsub(t1, t2), b.fsub(t1, t3)))
    l2 = b.fdiv(b.fmul(b.fsub(tn, t1), b.fsub(tn, t3)), b.fmul(b.fsub(t2, t1), b.fsub(t2, t3)))
    l3 = b.fdiv(b.fmul(b.fsub(tn, t1), b.fsub(tn, t2)), b.fmul(b.fsub(t3, t1), b.fsub(t3, t2)))
    e1 = b.fdiv(b.fneg(b.fsub(tn, t2)), hh)
    e_p = sel(nbe, b.fdiv(b.fmul(e1, b.fsub(tn, t3)), hh), e1)
    have_pred = b.icmp_signed(">=", nd, sel(be, i64(2), i64(3)))
    i = g.loop(0, n)
    y = [g.ld(sel(be, xh[r], fh[r]), i) for r in range(3)]  # y[2] latest
    p1 = b.fadd(y[2], b.fmul(b.fsub(y[2], y[1]), r1))
    p2 = b.fadd(b.fadd(b.fmul(l1, y[2]), b.fmul(l2, y[1])), b.fmul(l3, y[0]))
    xpi = sel(nbe, p2, p1)
    g.st(xpi, xp_w, i)
    g.st(xpi if predictor else g.ld(xh[2], i), nin, i)
    g.st(history(qh, qdot, i), nin, b.add(i, i64(2 * n + 1)))
    g.st(g.ld(xmax, i), nin, b.add(i, i64(3 * n + 4)))
    g.st(g.ld(rmax, i), nin, b.add(i, i64(4 * n + 4)))
    g.end()
    if device:  # the same formula on each reactive slot's own history (TranKernel's ehist)
        g.st(f(1.0), nin, 5 * n + 5)
        i = g.loop(0, K)
        g.st(history(eqh, eqdot, i), nin, b.add(i, i64(5 * n + 6)))
        g.end()
    # sources b(tn): sim/mna.py's make_source_fn, adds in the sources' order
    i = g.loop(0, n + 1)
    g.st(f(0.0), bb, i)
    g.end()
    for s in sources:
        val = _wave_ir(g, s.wave, tn)
        adds = [(s.row, val)] if s.kind == "v" else [(s.p, b.fneg(val)), (s.n, val)]
        for r, x in adds:
            g.st(b.fadd(g.ld(bb, int(r)), x), bb, int(r))
    i = g.loop(0, n)
    g.st(g.ld(bb, i), nin, b.add(i, i64(n)))
    g.end()
    g.st(a0, nin, 2 * n)
    g.st(f(gshunt), nin, 3 * n + 1)
    g.st(f(float(itl)), nin, 3 * n + 2)
    g.st(f(dvmax), nin, 3 * n + 3)
    g.st(f(1.0 if keep_input else 0.0), nin, 5 * n + 4)  # the Newton kernel's keep_input
    g.call_addr(newton_addr, [i64(1), shared, nin, nout])
    it = b.fptosi(g.ld(nout, n), _I64)
    conv = b.fcmp_ordered(">", g.ld(nout, n + 1), f(0.0))
    g.store(it, iv["lastit"])
    g.store(sel(b.fcmp_ordered(">", g.ld(nout, n + 2), f(0.0)), i64(1), i64(0)), iv["lastbad"])
    # ringing filter, LTE ratio
    trh = ld("trh")
    if method == "trap":
        trap2 = nbe
        filt = b.and_(trap2, b.icmp_signed(">=", trh, i64(3)))
        rk13 = b.fdiv(f(1.0), b.fsub(th2, th0))
        dt10 = b.fsub(th1, th0)
        trh_n = sel(conv, sel(trap2, sel(b.icmp_signed("<", b.add(trh, i64(1)), i64(10)),
                                         b.add(trh, i64(1)), i64(10)), i64(0)), trh)
    else:
        trh_n = sel(conv, i64(0), trh)
    e_i = sel(be, f(1.0), e_i2)
    cl = b.fdiv(e_i, b.fsub(e_i, e_p))
    g.store(f(-math.inf), s_v)
    i = g.loop(0, n)
    xn = g.ld(nout, i)
    if method == "trap":
        k13 = b.fmul(b.fsub(g.ld(xh[2], i), g.ld(xh[0], i)), rk13)
        corr = b.fmul(b.fsub(b.fsub(g.ld(xh[1], i), g.ld(xh[0], i)), b.fmul(k13, dt10)), f(0.5))
        xfi = sel(filt, b.fsub(xn, corr), xn)
    else:
        xfi = xn
    g.st(xfi, xf_w, i)
    if has_lte:
        tol = b.fmul(g.nmax(b.fmul(f(reltol), g.ld(xmax, i)), g.ld(xabs, i)), f(lteratio))
        q = b.fdiv(g.fabs(b.fmul(cl, b.fsub(xfi, g.ld(xp_w, i)))), tol)
        g.store(g.nmax(g.load(s_v), q), s_v)
    g.end()
    ratio = g.load(s_v) if has_lte else f(0.0)
    kk = sel(be, f(1.0), f(2.0))
    expo = b.fdiv(f(-1.0), b.fadd(kk, f(1.0)))
    rpos = b.fcmp_ordered(">", ratio, f(0.0))
    pw = g.call_ret(_libm("pow"), _F64, [sel(rpos, ratio, f(1.0)), expo])
    h2 = b.fmul(f(2.0), h)
    h_lte = sel(rpos, nmin(h2, b.fmul(h, pw)), h2)
    h_lte = sel(have_pred, h_lte, h)
    lte_ok = b.or_(b.xor(have_pred, true), b.fcmp_ordered("<=", h, b.fmul(f(redo), h_lte)))
    if redo <= 0:
        lte_ok = true
    h10 = b.fmul(f(10.0), hmin)
    accept = b.and_(conv, b.or_(lte_ok, b.fcmp_ordered("<=", h, h10)))
    hft = b.fmul(h, f(ft))
    h_rej = sel(conv, h_lte, hft)
    fail_now = b.and_(b.xor(conv, true), b.fcmp_ordered("<", hft, hmin))
    h_acc = g.nmax(h_lte, h10)
    ordp = b.add(ordr, i64(1))
    ordr_n = sel(accept, sel(hit, i64(1), sel(have_pred, sel(b.icmp_signed("<", ordp, i64(order)), ordp,
                                                              i64(order)), ordr)),
                 sel(conv, ordr, i64(1)))
    # the output row at the chunk's next free place (kept when accepted)
    kcur = ld("k")
    ro = g.gep(pout, b.add(i64(VOUT + NV), b.mul(kcur, i64(n + 1))))
    g.st(tn, ro, 0)
    i = g.loop(0, n)
    g.st(g.ld(nout, i), ro, b.add(i, i64(1)))
    g.end()
    g.store(bpi, iv["bpi"])
    g.store(b.add(ld("iters"), it), iv["iters"])
    g.store(ordr_n, iv["ordr"])
    g.store(trh_n, iv["trh"])
    g.store(b.zext(fail_now, _I64), iv["fail"])
    g.store(sel(b.and_(accept, b.fcmp_ordered(">=", tn, b.fmul(stop, f(1 - 1e-12)))), i64(1), i64(0)),
            iv["done"])
    g.if_(accept)
    i = g.loop(0, n)
    a0q = b.fadd(b.fmul(a0, g.ld(nout, b.add(i, i64(n + 3)))), g.ld(nin, b.add(i, i64(2 * n + 1))))
    g.st(a0q, qdot, i)
    for arr, new in ((xh, g.ld(nout, i)), (qh, g.ld(nout, b.add(i, i64(n + 3)))), (fh, g.ld(xf_w, i))):
        g.st(g.ld(arr[1], i), arr[0], i)
        g.st(g.ld(arr[2], i), arr[1], i)
        g.st(new, arr[2], i)
    g.st(g.nmax(g.ld(xmax, i), g.fabs(g.ld(nout, i))), xmax, i)
    g.st(g.nmax(g.ld(rmax, i), g.ld(nout, b.add(i, i64(3 * n + 3)))), rmax, i)
    g.end()
    if device:  # the slots' flows and charge history
        i = g.loop(0, K)
        eqn = g.ld(nout, b.add(i, i64(4 * n + 3)))
        g.st(b.fadd(b.fmul(a0, eqn), g.ld(nin, b.add(i, i64(5 * n + 6)))), eqdot, i)
        g.st(g.ld(eqh[1], i), eqh[0], i)
        g.st(g.ld(eqh[2], i), eqh[1], i)
        g.st(eqn, eqh[2], i)
        g.end()
    g.store(ld("th1"), fv["th0"])
    g.store(ld("th2"), fv["th1"])
    g.store(tn, fv["th2"])
    g.store(tn, fv["t"])
    g.store(h_acc, fv["h"])
    g.store(b.add(ld("nh"), i64(1)), iv["nh"])
    g.store(sel(hit, i64(1), i64(0)), iv["after_bp"])
    g.store(b.add(kcur, i64(1)), iv["k"])
    g.store(sel(hit, i64(1), b.add(nd, i64(1))), iv["nd"])
    g.end()
    g.if_(b.xor(accept, true))
    i = g.loop(0, n)
    g.st(g.ld(nout, b.add(i, i64(2 * n + 3))), flast, i)
    g.end()
    g.store(h_rej, fv["h"])
    g.store(b.add(ld("rej"), i64(1)), iv["rej"])
    g.end()
    b.branch(head)
    b.block = done_b
    for j, k in enumerate(("t", "h", "th0", "th1", "th2")):
        g.st(ld(k), pout, j)
    for j, k in enumerate(I_FIELDS):
        g.st(b.sitofp(ld(k), _F64), pout, NF_OUT + j)
    t_ = g.loop(0, NV)
    g.st(g.ld(V, t_), pout, b.add(t_, i64(VOUT)))
    g.end()
    g.end()  # rows
    b._emit(f"  call void {b._def(_PTR, f'inttoptr i64 {int(free)} to ptr').ref}(ptr {W.ref})")
    b.ret_void()
    return str(g.mod)


_lock = threading.Lock()
_built: dict[str, int] = {}


def tstep_kernel(n: int, method: str, sources, *, newton_addr: int, newton_key: str | None,
                 chunk: int, is_current, **opts) -> tuple[int, str | None]:
    """``(address, code_key)`` of the compiled step kernel (once per circuit, method and process);
    ``code_key`` as :func:`._newton.newton_kernel`'s (None when the Newton kernel's is)."""
    from ._ffi import _libc_address, jit_ir

    h = hashlib.sha256()
    h.update(repr((n, method, chunk, newton_key if newton_key else newton_addr,
                   sorted(opts.items()))).encode())
    h.update(np.ascontiguousarray(np.asarray(is_current, bool)).tobytes())
    for s in sources:
        w = s.wave
        h.update(repr((s.kind, s.row if s.kind == "v" else (s.p, s.n), w.kind, float(w.dc),
                       sorted(w.p.items()))).encode())
        h.update(b"-" if w.wave is None else np.ascontiguousarray(w.wave, np.float64).tobytes())
    digest = h.hexdigest()[:16]
    symbol = f"va2jax_tstep_{digest}"
    with _lock:
        if digest not in _built:
            text = tstep_ir(symbol, n, method, sources, newton_addr=newton_addr, chunk=chunk,
                            is_current=np.asarray(is_current, bool), malloc=_libc_address("malloc"),
                            free=_libc_address("free"), **opts)
            _built[digest] = jit_ir(text, [symbol], opt=2, ir_passes=2)[symbol]
    return _built[digest], (symbol if newton_key else None)


def make_native_step(newton, n: int, method: str, sources, chunk: int, *, is_current,
                     device: bool = False, **opts) -> Callable | None:
    """``step(fs, ints, vs, bps) -> (fs, ints, vs, rows)``: one FFI call of the step kernel, or
    None where it does not apply (``newton`` is not :func:`._newton.make_native_newton`'s with
    constant ``G``/``C``, or a waveform has no native form, or LLVM rejected the kernel).

    In: ``fs`` (10,) ``[t, h, th₀, th₁, th₂, hmin, maxstep, stop, step, B]``, ``ints`` (13,) the
    counters of :data:`I_FIELDS`, ``vs`` (13n,) the vectors of :data:`V_FIELDS`, ``bps`` (B,) the
    breakpoints (padded with +inf). Out: ``fs`` (5,) ``[t, h, th₀, th₁, th₂]``, ``ints`` (13,)
    float64, ``vs`` (13n,), ``rows`` (chunk, n + 1) the attempts' ``(t, x)`` (the first ``k``
    accepted). ``opts``: :func:`tstep_ir`'s tolerances and options. ``device``: VACASK's
    per-element residual reference (``newton`` must be the Newton kernel built with it); then
    ``vs`` and the returned ``vs`` end with the reactive slots' history ``eqh`` (3K), ``eqdot`` (K)."""
    import jax.numpy as jnp

    from ._ffi import native_call

    info = getattr(newton, "native", None)
    if info is None or not supported(sources):
        return None
    addr_n, shared, key_n = info
    K = getattr(newton, "native_slots", None)
    if device != (K is not None):  # the Newton kernel's reference is not the one asked for
        return None
    try:
        addr, key = tstep_kernel(n, method, list(sources), newton_addr=addr_n, newton_key=key_n,
                                 chunk=chunk, is_current=is_current, slots=K, **opts)
    except ValueError as exc:  # LLVM rejected the kernel: the caller's XLA loop computes the same
        import logging

        logging.getLogger(__name__).warning("native step kernel unavailable (%s); using the XLA loop", exc)
        return None
    calls: dict[int, Callable] = {}
    K = K or 0
    r_i = NF_OUT
    r_v = NF_OUT + NI
    r_rows = r_v + 13 * n + 4 * K

    def step(fs, ints, vs, bps):
        nb = bps.shape[0]
        if nb not in calls:
            calls[nb] = native_call(addr, shared.size, n_in(n, nb, K), n_out(n, chunk, K), label="tstep",
                                    min_rows_per_task=1, code_key=key)
        f64 = jnp.float64
        row = jnp.concatenate([jnp.asarray(fs, f64), jnp.asarray(ints, f64), jnp.asarray(vs, f64),
                               jnp.asarray(bps, f64)])
        out = calls[nb](shared, row[None])[0]
        return (out[:r_i], out[r_i:r_v], out[r_v:r_rows],
                jnp.reshape(out[r_rows:], (chunk, n + 1)))

    return step


__all__ = ["I_FIELDS", "V_FIELDS", "make_native_step", "n_in", "n_out", "supported", "tstep_kernel"]
