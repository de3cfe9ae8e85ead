"""The native kernel behind :class:`va2jax.Model`: ``eval``, ``evaluator`` and ``function``.

Hooks called from ``codegen/_model.py`` (one line each there):

* :func:`eval_numpy` — ``Model.eval(..., backend="native")``: NumPy in, NumPy out, the kernel's
  ``eval_dense`` entry called through ctypes; input rows built column-vectorised, the dense
  outputs written by the kernel itself (no JAX import, no per-entry Python loop).
* :func:`evaluator` — ``Model.evaluator`` on the native backend: the setup state is packed once into
  kernel rows on the device; each call is one jitted program (branch voltages gathered from ``V``,
  written into the rows, one XLA FFI call of ``eval_dense`` returning all dense outputs in one
  buffer). The returned ``f`` is traceable: it may be called inside ``jax.jit``/``lax.while_loop``/``scan``.
* :func:`function` — ``Model.function`` on the native backend: the values come from the native init
  and eval (XLA FFI), derivatives from a ``jax.custom_jvp`` rule: voltage tangents of the residuals
  are ``J · dV`` from the kernel's own Jacobian outputs; every other tangent (parameters,
  temperature, the Jacobian's own voltage tangents) from the native forward-mode tangent kernels
  (``_tangent``), for the directions whose tangents are not symbolically zero.

Assembly order (:class:`_Dense`, carried out by the kernel, ``_lower._dense``): a collapsed node
receives the contributions of all nodes mapped onto it; they are added to 0 one by one in entry
order (as OSDI's load functions and the NumPy backend do), so the sums are those of NumPy bit for bit.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import threading
from typing import Any

import numpy as np

from ...errors import Va2JaxError
from ._ffi import _CHUNKS_PER_THREAD, _ROW_ALIGN
from ._kernel import NativeKernel, model_kernel

_RES = ("rr", "rq", "lr", "lq")
_JAC = ("jr", "jq")


@dataclasses.dataclass
class _Plan:
    """Where each kernel column comes from / goes to, for one model."""

    kernel: NativeKernel
    n: int  # unknowns (dense width)
    num_states: int
    volt_ab: np.ndarray  # (m, 3): column, node a, node b (b ≥ 0)
    volt_a: np.ndarray  # (m, 2): column, node a (single-node probes, flows)
    prev: np.ndarray  # (m, 2): column, state index
    enable_lim: np.ndarray  # columns
    static_cols: list[tuple[int, str]]  # (column, MIR value name) filled from the setup state
    analysis_col: int
    res: dict[str, tuple[np.ndarray, np.ndarray]]  # prefix → (output columns, node)
    jac: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]  # prefix → (columns, row, col)
    ns: list[int | None]  # output column of each $limit state (None: absent → 0)
    assemblies: dict = dataclasses.field(default_factory=dict)  # (labels of one instance, scales) →
    #: ``Model.eval``'s last static rows: (key, the state's leaves, rows, labels) — see :func:`_state_rows`
    last_rows: tuple | None = None
    #: columns filled per call from the analysis flags (``enable_integration``)
    flag_cols: list[tuple[int, str]] = dataclasses.field(default_factory=list)

    def dense(self, lab: np.ndarray, with_scales: bool) -> _Dense:
        """The :class:`_Dense` table for node labels ``lab`` (N, n); cached when all rows are equal."""
        if not (lab == lab[:1]).all():
            return _Dense(self, lab, with_scales)
        key = (lab[0].tobytes(), with_scales)
        a = self.assemblies.get(key)
        if a is None:
            a = self.assemblies[key] = _Dense(self, lab[:1], with_scales)
        return a


def plan(model) -> _Plan:
    """The column plan of ``model``'s native kernel (built once per model)."""
    p = getattr(model, "_native_plan", None)
    if p is not None:
        return p
    k = model_kernel(model)
    how = {v: (h, d) for v, h, d in model._eval_inputs}
    ab, a1, prev, en, static = [], [], [], [], []
    analysis_col = -1
    for c, name in enumerate(k.eval_in_names):
        if name == "analysis":
            analysis_col = c
            continue
        h, d = how[name]
        if h == "volt":
            (ab if d[1] >= 0 else a1).append((c, d[0], d[1]) if d[1] >= 0 else (c, d[0]))
        elif h == "prev_state":
            prev.append((c, d))
        elif h == "enable_lim":
            en.append(c)
        else:
            static.append((c, name))
    col = {nm: c for c, nm in enumerate(k.eval_out_names)}
    res = {}
    for pre in _RES:
        ent = [(col[f"{pre}{i}"], i) for i in range(model._n) if f"{pre}{i}" in col]
        res[pre] = (np.array([e[0] for e in ent], np.int64), np.array([e[1] for e in ent], np.int64))
    jac = {}
    for pre in _JAC:
        ent = [(col[f"{pre}{kk}"], i, j) for kk, i, j in model._jr if f"{pre}{kk}" in col]
        jac[pre] = tuple(np.array([e[t] for e in ent], np.int64) for t in range(3))
    p = _Plan(k, model._n, model.num_states, np.array(ab, np.int64).reshape(-1, 3),
              np.array(a1, np.int64).reshape(-1, 2), np.array(prev, np.int64).reshape(-1, 2),
              np.array(en, np.int64), static, analysis_col, res, jac,
              [col.get(f"ns{s}") for s in range(model.num_states)],
              flag_cols=[(c, nm) for c, nm in static if how[nm][0] == "enable_integration"])
    model._native_plan = p
    return p


def _rows(model, p: _Plan, inp: dict[str, Any], nb: int, *, dynamic: bool = True) -> np.ndarray:
    """Kernel input rows (nb, n_in) from an eval input dict as ``Model.eval`` builds it.
    ``dynamic=False`` leaves the voltage, ``prev_state`` and ``enable_lim`` columns 0."""
    k = p.kernel
    rows = np.zeros((nb, k.n_in_eval), np.float64)
    ein, lab = model._batch_inputs(inp, nb, np, frozenset(n for _c, n in p.static_cols), which="static")
    for c, name in p.static_cols:
        rows[:, c] = ein[name]
    rows[:, p.analysis_col] = inp["analysis"]
    if dynamic:
        _fill_dynamic(rows, p, inp, lab, nb)
    return rows, lab


def _fill_dynamic(rows: np.ndarray, p, inp, lab: np.ndarray, nb: int) -> None:
    """Write the per-call columns of the kernel rows in place: branch voltages (V; differences
    of the instance's node voltages ``inp["V"]`` at its labels ``lab``), the previous ``$limit``
    states and ``enable_lim``."""
    vext = np.concatenate([np.asarray(inp["V"], np.float64), np.zeros((nb, 1))], axis=1)
    vused = np.take_along_axis(vext, lab, axis=1)
    if len(p.volt_ab):
        rows[:, p.volt_ab[:, 0]] = vused[:, p.volt_ab[:, 1]] - vused[:, p.volt_ab[:, 2]]
    if len(p.volt_a):
        rows[:, p.volt_a[:, 0]] = vused[:, p.volt_a[:, 1]]
    if len(p.prev):
        rows[:, p.prev[:, 0]] = np.asarray(inp["prev_state"], np.float64)[:, p.prev[:, 1]]
    if len(p.enable_lim):
        rows[:, p.enable_lim] = np.asarray(inp["enable_lim"], np.float64)[:, None]


class _Dense:
    """The table with which ``<prefix>_eval_dense`` (``_lower._dense``) writes the dense outputs.

    All dense outputs of one instance are concatenated into one row of :attr:`size` doubles (see
    :attr:`outputs`). Table entry ``e`` adds ``f(kernel output column)`` to row position
    ``tgt[e]`` (``f``: +x; −x for ``lim_rhs_*``; |x| for the scales); a collapsed node receives
    every node mapped onto it, added to 0 one by one in entry order (as OSDI's load functions and
    the NumPy backend). Equal labels for all instances (the usual case): one table, passed after
    the kernel's ``shared`` values; otherwise one per instance, appended to its input row
    (entries dropped by the collapsing have ``tgt = −1``)."""

    def __init__(self, p: _Plan, lab: np.ndarray, with_scales: bool):
        from ._lower import DENSE_KIND_SHIFT

        self.uniform = bool((lab == lab[:1]).all())
        if self.uniform:
            lab = lab[:1]
        nb, n = lab.shape[0], p.n
        self.kernel = p.kernel
        self._spec: dict[int, list] = {}
        self._reuse = _Reusable()
        specs = [("residual_resist", "rr", 0), ("residual_react", "rq", 0),
                 ("jacobian_resist", "jr", 0), ("jacobian_react", "jq", 0),
                 ("lim_rhs_resist", "lr", 1), ("lim_rhs_react", "lq", 1)]
        if with_scales:
            specs += [("scale_residual_resist", "rr", 2), ("scale_residual_react", "rq", 2),
                      ("scale_jacobian_resist", "jr", 2), ("scale_jacobian_react", "jq", 2)]
        self.outputs: list[tuple[str, int, tuple[int, ...]]] = []  # name, offset, shape
        tgts, codes = [], []
        off = 0
        for name, pre, kind in specs:
            if pre in p.res:
                cols, node = p.res[pre]
                li = lab[:, node]
                keep = li < n
                tgt = li
                shape = (nb, n)
            else:
                cols, i, j = p.jac[pre]
                li, lj = lab[:, i], lab[:, j]
                keep = (li < n) & (lj < n)
                tgt = li * n + lj
                shape = (nb, n, n)
            tgts.append(np.where(keep, off + tgt, -1))
            codes.append(np.broadcast_to((kind << DENSE_KIND_SHIFT) | cols[None, :], tgt.shape))
            self.outputs.append((name, off, shape))
            off += int(np.prod(shape[1:]))
        ns = p.num_states
        if ns:
            c = np.array([-1 if x is None else x for x in p.ns], np.int64)
            tgts.append(np.broadcast_to(np.where(c >= 0, off + np.arange(ns), -1)[None, :], (nb, ns)))
            codes.append(np.broadcast_to(np.maximum(c, 0)[None, :], (nb, ns)))
        self.outputs.append(("states", off, (nb, ns)))
        off += ns
        self.size = off
        tgt = np.concatenate(tgts, axis=1) if tgts else np.zeros((nb, 0), np.int64)
        code = np.concatenate(codes, axis=1) if codes else np.zeros((nb, 0), np.int64)
        if self.uniform:  # entries that add nothing are left out of the shared table
            sel = tgt[0] >= 0
            tgt, code = tgt[:, sel], code[:, sel]
        self.n_entries = tgt.shape[1]
        self.table = np.concatenate([tgt, code], axis=1).astype(np.float64)  # (1 or nb, 2E)
        self.mode = 0.0 if self.uniform else 1.0

    def shared(self, kernel_shared: np.ndarray) -> np.ndarray:
        """The dense kernel's ``shared`` (input rows passed as ``in``): the kernel's values,
        header, and the uniform table."""
        parts = [np.asarray(kernel_shared, np.float64), [self.size, self.n_entries, self.mode, 0, 0, 0]]
        if self.uniform:
            parts.append(self.table[0])
        return np.concatenate(parts)

    def shared_for(self, kernel: NativeKernel, sp: dict[str, Any]) -> np.ndarray:
        """:meth:`shared` for simulator parameters ``sp`` (the last one kept)."""
        vals = kernel.shared_values(sp)
        last = getattr(self, "_last_shared", None)
        if last is not None and np.array_equal(last[0], vals):
            return last[1]
        out = self.shared(vals)
        self._last_shared = (vals, out)
        return out

    def state_shared(self, kernel_shared: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                     a: np.ndarray, b: np.ndarray, w: int) -> np.ndarray:
        """The dense kernel's ``shared`` in state mode: the static input ``rows`` (N, n_in) kept
        there; each call's ``in`` row ``i`` is ``[j, src (w)]``, column ``cols[k]`` of static row
        ``j`` replaced by ``src[a[k]] − src[b[k]]``."""
        parts = [np.asarray(kernel_shared, np.float64),
                 [self.size, self.n_entries, self.mode, 1, w, len(cols)]]
        if self.uniform:
            parts.append(self.table[0])
        parts += [cols, a, b, self.rows(rows).ravel()]
        return np.concatenate([np.asarray(x, np.float64).ravel() for x in parts])

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """The dense kernel's input rows: ``rows``, followed by each instance's table if any."""
        return rows if self.uniform else np.concatenate([rows, self.table], axis=1)

    @property
    def n_in(self) -> int:
        return self.kernel.n_in_eval + (0 if self.uniform else 2 * self.n_entries)

    def numpy(self, shared: np.ndarray, rows: np.ndarray, min_rows: int = 1 << 62,
              threads: int | None = None) -> np.ndarray:
        """The dense kernel through ctypes: (nb, :attr:`size`); batches of ``2 · min_rows`` rows
        and more split over ``threads`` threads (:func:`run_rows`). Large results are written into
        the buffer of an earlier call whose outputs are all gone (:class:`_Reusable`)."""
        nb = rows.shape[0]
        out = self._reuse.get(nb, self.size) if nb * self.size * 8 >= _REUSE_BYTES else None
        return run_rows(self.kernel.eval_dense_address, shared, rows, self.size, min_rows, threads, out)

    def split(self, acc, nb: int) -> dict[str, Any]:
        """The dense rows (nb, :attr:`size`) → the outputs by name (views)."""
        spec = self._spec.get(nb)
        if spec is None:
            spec = self._spec[nb] = [(name, o, o + int(np.prod(shape[1:])), (nb,) + shape[1:])
                                     for name, o, shape in self.outputs]
        return {name: acc[:, a:b].reshape(shape) for name, a, b, shape in spec}


_POOL: list = []
_REUSE_BYTES = 1 << 20  # results from 1 MiB are written into a reused buffer when free
_FNS: dict[int, Any] = {}  # kernel address → its ctypes function
#: :func:`run_rows` claims chunks as the FFI handler does: 1 / (CHUNKS_PER_THREAD · threads) of the
#: rows left; chunk lengths are multiples of ROW_ALIGN rows (8 rows of float64 are whole 64-byte
#: cache lines: no line written by two threads)
CHUNKS_PER_THREAD, ROW_ALIGN = _CHUNKS_PER_THREAD, _ROW_ALIGN


@functools.lru_cache(maxsize=1)
def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def thread_limit() -> int:
    """Threads one native kernel call may use: ``VA2JAX_NATIVE_THREADS``, or (0, unset) every core
    this process may run on."""
    from ... import _config

    return _config.get("NATIVE_THREADS") or _threads()


class _Reusable:
    """An output buffer handed out again once nothing refers to what it handed out before.

    :meth:`get` returns a fresh-looking ``(rows, cols)`` float64 array whose memory is that of the
    previous call when every array the previous call returned (and every view of them, and every
    JAX array aliasing them) is gone — tracked by a weak reference to the array handed out, which
    all views share as their NumPy ``base``. Otherwise new memory. Saves a large result's first
    touch (page faults and zeroing: PSP103's 51 MB of dense outputs at 16,384 instances cost
    ≈ 6 ms a call, a fifth of the kernel). Thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._store: np.ndarray | None = None
        self._out: Any = None  # weak reference to the last array handed out

    def get(self, rows: int, cols: int) -> np.ndarray:
        import weakref

        with self._lock:
            s = self._store
            if s is None or s.size != rows * cols or (self._out is not None and self._out() is not None):
                s = self._store = np.empty(rows * cols, np.float64)
            flat = np.frombuffer(memoryview(s), np.float64)  # views of it have it as their base
            self._out = weakref.ref(flat)
            return flat.reshape(rows, cols)


def run_rows(address: int, shared: np.ndarray, rows: np.ndarray, n_out: int, min_rows: int,
             threads: int | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """A batch kernel (``void k(n, shared, in, out)``) through ctypes on NumPy arrays → (n, ``n_out``).

    From ``2 · min_rows`` rows, up to ``threads`` threads (default :func:`thread_limit`; a pool's
    and the calling thread) claim chunks until none is left (ctypes releases the GIL during the
    call), as the FFI handler does: ``max(min_rows, rows left / (CHUNKS_PER_THREAD · threads))``
    rows, rounded up to a multiple of :data:`ROW_ALIGN` (guided self-scheduling: chunks shrink as
    the work runs out, so a thread that loses its core to another process holds back little).
    Rows are independent, so the bits are those of one call. ``out``: a C-contiguous
    (n, ``n_out``) float64 array written in place (default: a fresh one)."""
    from ._kernel import BATCH_FN

    shared = np.ascontiguousarray(shared, np.float64)
    rows = np.ascontiguousarray(rows, np.float64)
    n = rows.shape[0]
    if out is None:
        out = np.empty((n, n_out), np.float64)
    elif out.shape != (n, n_out) or out.dtype != np.float64 or not out.flags.c_contiguous:
        raise ValueError(f"out must be a C-contiguous float64 array of shape {(n, n_out)}")
    if not n:
        return out
    fn = _FNS.get(address)
    if fn is None:
        fn = _FNS[address] = BATCH_FN(address)
    sp, ip, op = shared.ctypes.data, rows.ctypes.data, out.ctypes.data
    min_rows = max(1, min_rows)
    if n < 2 * min_rows:
        fn(n, sp, ip, op)
        return out
    threads = thread_limit() if threads is None else threads
    workers = min(threads, n // min_rows)
    if workers < 2:
        fn(n, sp, ip, op)
        return out
    if not _POOL or _POOL[0]._max_workers < workers - 1:
        from concurrent.futures import ThreadPoolExecutor

        _POOL[:] = [ThreadPoolExecutor(max_workers=max(workers - 1, _threads()), thread_name_prefix="va2jax-native")]
    wi, wo = rows.shape[1] * 8, n_out * 8
    div = CHUNKS_PER_THREAD * workers
    nxt, lock = [0], threading.Lock()  # each row goes to exactly one thread

    def work() -> None:
        while True:
            with lock:
                a = nxt[0]
                if a >= n:
                    return
                size = -(-max(min_rows, (n - a) // div) // ROW_ALIGN) * ROW_ALIGN
                nxt[0] = b = min(n, a + size)
            fn(b - a, sp, ip + a * wi, op + a * wo)

    futures = [_POOL[0].submit(work) for _ in range(workers - 1)]
    work()
    for f in futures:
        f.result()
    return out


def _state_rows(model, p: _Plan, inp: dict[str, Any], nb: int) -> tuple[np.ndarray, np.ndarray]:
    """Kernel input rows with the columns that come from the setup state filled (a fresh copy),
    and the node labels: built by :func:`_rows` (a Python walk over the input columns, ≈ 0.5 ms
    for PSP103) or, when ``inp`` holds the very arrays of the last call, copied from that call.

    The arrays of a state from :meth:`Model.setup` are read-only, so the same arrays hold the same
    values: rows are reused only for states all of whose arrays are read-only NumPy arrays (a
    state assembled by hand with writable arrays is walked every call)."""
    leaves = [inp["labels"], inp["temperature"], inp["mfactor"]]
    names = []
    for part in ("init", "given", "extra"):
        d = inp[part]
        names.append(tuple(d))
        leaves.extend(d.values())
    key = (nb, tuple(map(id, leaves)), tuple(names))
    last = p.last_rows
    if last is not None and last[0] == key:
        return last[2].copy(), last[3]
    rows, lab = _rows(model, p, inp, nb, dynamic=False)
    lab = np.asarray(lab)
    if all(isinstance(x, np.ndarray) and not x.flags.writeable for x in leaves):
        p.last_rows = (key, leaves, rows.copy(), lab)  # the leaves kept alive: their ids stay theirs
    return rows, lab


def eval_numpy(model, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, np.ndarray]:
    """``Model.eval(..., backend="native")``: the kernel through ctypes, NumPy in and out."""
    from .._inputs import enable_integration

    p = plan(model)
    rows, lab = _state_rows(model, p, inp, nb)
    rows[:, p.analysis_col] = inp["analysis"]
    if p.flag_cols:
        integ = enable_integration(inp, nb, np)
        for c, _nm in p.flag_cols:
            rows[:, c] = integ
    _fill_dynamic(rows, p, inp, lab, nb)
    d = p.dense(lab, model._with_scales)
    return d.split(d.numpy(d.shared_for(p.kernel, sp), d.rows(rows), min_rows_per_task(model)), nb)


def _limit() -> int:
    """``max_threads`` of the FFI handlers: ``VA2JAX_NATIVE_THREADS`` (0: XLA's whole pool)."""
    from ... import _config

    return _config.get("NATIVE_THREADS")


def _calls(model):
    """``(init_call, eval_call)`` XLA FFI functions of the model's kernel (registered once per
    thread limit)."""
    cache = model.__dict__.setdefault("_native_calls", {})
    lim = _limit()
    c = cache.get(lim)
    if c is None:
        from ._ffi import kernel_calls

        k = model_kernel(model)
        c = cache[lim] = kernel_calls(k, label=model.name, min_rows_per_task=min_rows_per_task(model),
                                      max_threads=lim)
    return c


def _dense_call(model, n_shared: int, n_in: int, size: int, splits: tuple[int, ...] | None = None):
    """The XLA FFI function of the model's ``eval_dense`` for these widths (registered once per
    thread limit); with ``splits``, one result per output (``_ffi.native_call``)."""
    cache = model.__dict__.setdefault("_native_dense_calls", {})
    lim = _limit()
    key = (n_shared, n_in, size, lim, splits)
    c = cache.get(key)
    if c is None:
        from ._ffi import native_call

        k = model_kernel(model)
        c = cache[key] = native_call(k.eval_dense_address, n_shared, n_in, size, label=f"{model.name}_dense",
                                     min_rows_per_task=min_rows_per_task(model), max_threads=lim,
                                     splits=splits, code_key=f"{k.key}:dense" if k.content_keyed else None)
    return c


def min_rows_per_task(model) -> int:
    """Rows per thread-pool task: about 50 µs of kernel work (pool wake-ups cost 5–50 µs).

    The kernel's time per row is estimated from its size: ≈ 1 ns per output column plus
    ≈ 1 ns per input column is a lower bound measured on diode-size kernels (15 ns per row with 16
    columns), PSP103 (455 in, 106 out) runs ≈ 1.6–2.6 µs per row; ``max(8, 50 µs / estimate)``
    keeps tasks at tens of µs for both."""
    k = model_kernel(model)
    est_ns = 4.0 * (k.n_in_eval + k.n_out_eval) + 10.0  # PSP103: ≈ 2.3 µs; diode: ≈ 80 ns
    return max(8, int(50_000.0 / est_ns))


def evaluator(model, state: dict[str, Any], flags: int, enable_lim: bool, limiting: bool):
    """``Model.evaluator`` on the native backend (see the module docstring); ``f`` as there."""
    from .._xla import _jax

    jax = _jax()  # float64 on (setup does not import JAX)
    import jax.numpy as jnp

    p = plan(model)
    nb = state["labels"].shape[0]
    n = p.n
    static = {"labels": state["labels"], "init": state["init"], "given": state["given"],
              "extra": state["extra"], "temperature": state["temperature"], "mfactor": state["mfactor"],
              "analysis": np.full(nb, flags, np.int32), "enable_lim": np.full(nb, bool(enable_lim)),
              "prev_state": np.zeros((nb, model.num_states))}
    rows0, lab = _rows(model, p, static, nb, dynamic=False)
    lab = np.asarray(lab)
    if len(p.enable_lim) and not limiting:
        rows0[:, p.enable_lim] = float(bool(enable_lim))
    dense = p.dense(lab, model._with_scales)
    # per-call columns: source row [V, 0, prev_state, enable]; column = src[ia] - src[ib] (ib → the
    # 0 slot for single-node probes: x − 0.0 is x), the labels folded into ia/ib
    ns = model.num_states
    dyn_cols, ia, ib = [], [], []
    for c, a, b in p.volt_ab:
        dyn_cols.append(c), ia.append(lab[:, a]), ib.append(lab[:, b])
    for c, a in p.volt_a:
        dyn_cols.append(c), ia.append(lab[:, a]), ib.append(np.full(nb, n))
    if limiting:
        for c, k in p.prev:
            dyn_cols.append(c), ia.append(np.full(nb, n + 1 + k)), ib.append(np.full(nb, n))
        for c in p.enable_lim:
            dyn_cols.append(c), ia.append(np.full(nb, n + 1 + ns)), ib.append(np.full(nb, n))
    dyn_cols = np.array(dyn_cols, np.int64)
    nd = len(dyn_cols)
    ia = np.stack(ia, axis=1).astype(np.int32) if nd else np.zeros((nb, 0), np.int32)
    ib = np.stack(ib, axis=1).astype(np.int32) if nd else np.zeros((nb, 0), np.int32)
    # the static rows stay in the kernel's ``shared``; per call only [row index, sources] travel.
    # Equal labels: the kernel takes the differences from [V, 0, prev_state, enable] itself;
    # otherwise they are gathered here and passed as sources [dyn, 0] (x − 0.0 is x).
    gather = not ((ia == ia[:1]).all() and (ib == ib[:1]).all())
    w = n + 1 + (ns + 1 if limiting else 0)
    if gather:
        ka, kb, w_in = np.arange(nd), np.full(nd, nd), nd + 1
    else:
        ka, kb, w_in = ia[0], ib[0], w
    shared_d = dense.state_shared(p.kernel.shared_values(state["sp"]), rows0, dyn_cols, ka, kb, w_in)
    dense_call = _dense_call(model, len(shared_d), 1 + w_in, dense.size)
    # traced (inside the caller's jit/loop) with ≥ 1 MiB of outputs: one result per output, written
    # in place by the kernel's threads — slices of one (N, size) buffer are copies where they leave
    # a program (PSP103 at 16,384: 15-20 ms of a 55 ms call); smaller ones: one buffer (fewer
    # results to allocate per loop iteration, the slices fused into their users)
    widths = tuple(int(np.prod(shape[1:])) for _nm, _o, shape in dense.outputs)
    index = np.arange(nb, dtype=np.float64)[:, None]
    consts = (shared_d, ia, ib) if gather else (shared_d,)
    if sum(np.asarray(x).nbytes for x in consts) > (1 << 20):
        # large batches: the state goes to the device once and is passed as arguments
        consts = tuple(jnp.asarray(x) for x in consts)
        baked = None
    else:
        # small ones: NumPy constants baked into the program (each argument costs dispatch time)
        baked, consts = consts, None

    def call_rows(consts, V, prev_state, enable):
        """(the dense call's ``shared``, its input rows ``[index, sources]``)."""
        cs = baked if consts is None else consts
        V = jnp.asarray(V, jnp.float64)
        parts = [V, jnp.zeros((nb, 1), V.dtype)]
        if limiting:
            parts += [jnp.broadcast_to(jnp.asarray(prev_state, jnp.float64), (nb, ns)),
                      jnp.broadcast_to(jnp.asarray(enable, jnp.float64), (nb, 1))]
        src = jnp.concatenate(parts, axis=1)
        if gather:
            ia_, ib_ = cs[1], cs[2]
            dyn = jnp.take_along_axis(src, ia_, axis=1) - jnp.take_along_axis(src, ib_, axis=1)
            src = jnp.concatenate([dyn, jnp.zeros((nb, 1), V.dtype)], axis=1)
        return cs[0], jnp.concatenate([index, src], axis=1)

    def flat_body(consts, V, prev_state, enable):
        """The dense outputs of all instances, (nb, ``dense.size``): one FFI call."""
        return dense_call(*call_rows(consts, V, prev_state, enable))

    def body(consts, V, prev_state, enable):
        if nb * dense.size * 8 < (1 << 20):  # small: slices of one buffer, fused into their users
            return dense.split(flat_body(consts, V, prev_state, enable), nb)
        split_call = _dense_call(model, len(shared_d), 1 + w_in, dense.size, widths)  # registered once
        outs = split_call(*call_rows(consts, V, prev_state, enable))
        return {name: o.reshape((nb,) + shape[1:]) for (name, _o, shape), o in zip(dense.outputs, outs)}

    from .._xla import FUSION_ON

    # inside the caller's jit / loop: the program above. Fusion on: the gathers and selects here
    # are exact whatever XLA fuses (no multiplication to contract); fewer kernels, less latency.
    jitted = jax.jit(flat_body, compiler_options=FUSION_ON)
    host_shared = np.asarray(shared_d, np.float64)
    host_ia, host_ib = np.asarray(ia, np.int64), np.asarray(ib, np.int64)
    per_task = min_rows_per_task(model)
    threads = thread_limit()  # read once: the FFI handler above has the same limit baked in
    reuse = _Reusable()

    def eager(V, prev_state, enable):
        """Called eagerly: the same kernel and rows through ctypes into a NumPy buffer (split
        over the cores as XLA's pool would), the buffer of an earlier call when its outputs are
        all gone (:class:`_Reusable`). XLA's own (N, size) output buffer cost more than the
        kernel at large batches (BSIM4 at 16,384: 75 MB a call)."""
        parts = [np.asarray(V, np.float64), np.zeros((nb, 1))]
        if limiting:
            parts += [np.broadcast_to(np.asarray(prev_state, np.float64), (nb, ns)),
                      np.broadcast_to(np.asarray(enable, np.float64), (nb, 1))]
        src = np.concatenate(parts, axis=1)
        if gather:
            dyn = np.take_along_axis(src, host_ia, axis=1) - np.take_along_axis(src, host_ib, axis=1)
            src = np.concatenate([dyn, np.zeros((nb, 1))], axis=1)
        return dense.split(run_rows(p.kernel.eval_dense_address, host_shared,
                                    np.concatenate([index, src], axis=1), dense.size, per_task, threads,
                                    reuse.get(nb, dense.size)), nb)

    # small batches: XLA's dispatch of the jitted program is quicker than NumPy's preparation of
    # the rows (PSP103 at batch 1: ≈ 25 vs 43 µs); large ones: ctypes (no XLA output buffer)
    big = nb * dense.size * 8 >= (1 << 20)

    def g(consts, V, prev_state, enable):
        if any(isinstance(x, jax.core.Tracer) for x in (V, prev_state, enable)):
            return body(consts, V, prev_state, enable)  # inside the caller's jit / loop
        if big:
            return eager(V, prev_state, enable)
        # one output buffer (each output of a jitted call costs dispatch time), split into
        # NumPy views (zero-copy on the CPU)
        return dense.split(np.asarray(jitted(consts, V, prev_state, enable)), nb)

    def check(V) -> int:
        shp = np.shape(V)
        if len(shp) != 2 or shp[1] != n:
            raise Va2JaxError(f"module {model.name}: evaluator expects (N, {n}) node "
                              f"voltages {model.nodes}, got shape {shp}")
        if shp[0] != nb and nb != 1:
            raise Va2JaxError(f"module {model.name}: {shp[0]} operating points for {nb} instances")
        return shp[0]

    wider: dict[int, Any] = {}

    def broadcast(m: int):
        if m not in wider:
            wider[m] = evaluator(model, model._tile_state(state, m), flags, enable_lim, limiting)
        return wider[m]

    if limiting:
        def f(V, prev_state, enable):
            m = check(V)
            return g(consts, V, prev_state, enable) if m == nb else broadcast(m)(V, prev_state, enable)

        f(np.zeros((nb, n)), np.zeros((nb, model.num_states)), False)
    else:
        def f(V):
            m = check(V)
            return g(consts, V, None, False) if m == nb else broadcast(m)(V)

        f(np.zeros((nb, n)))
    f.jitted, f.consts, f.body = jitted, consts, body
    return f


def choose_backend(backend: str | None) -> str:
    """The backend ``Model.eval``/``evaluator`` use: ``backend`` when given, else
    ``VA2JAX_BACKEND``, else ``"native"`` when computations go to the CPU and ``"jax"`` otherwise
    (an accelerator). Never a silent fallback: a native kernel that cannot be built is an error."""
    if backend is None:
        from ... import _config

        backend = _config.get("BACKEND")
    if backend is None:
        backend = "native" if _cpu_target() else "jax"
    if backend not in ("jax", "numpy", "native"):
        raise Va2JaxError(f"unknown backend {backend!r} (jax, numpy or native)")
    return backend


def _cpu_target() -> bool:
    """Whether computations started now would run on the CPU — answered without importing JAX
    when JAX is not imported yet and cannot find an accelerator: ``JAX_PLATFORMS`` names the CPU
    first, or no accelerator plugin is installed (JAX finds those through the ``jax_plugins``
    namespace package or entry points, and TPUs through ``libtpu``). Otherwise JAX is asked."""
    import os
    import sys

    if "jax" not in sys.modules:
        plats = os.environ.get("JAX_PLATFORMS", os.environ.get("JAX_PLATFORM_NAME", "")).strip().lower()
        if plats:
            if plats.split(",")[0].strip() == "cpu":
                return True
        elif not _accelerator_plugins():
            return True
    from .._exe_cache import target_platform

    return target_platform() == "cpu"


_PLUGINS: list[bool] = []


def _accelerator_plugins() -> bool:
    """Whether a JAX accelerator plugin (or ``libtpu``) is installed (looked up once)."""
    if not _PLUGINS:
        import importlib.util
        from importlib.metadata import entry_points

        found = bool(entry_points(group="jax_plugins"))
        for name in ("jax_plugins", "libtpu"):
            try:
                found = found or importlib.util.find_spec(name) is not None
            except (ImportError, ValueError):
                found = True  # unsure: let JAX decide
        _PLUGINS.append(found)
    return _PLUGINS[0]


def function(model, jax_f, init_inputs, extra_inputs, mfactor, probe: dict[str, Any], given: set[str],
             flags: int):
    """``Model.function`` on the native backend: ``f(values, temperature, V) -> dict`` for one
    instance, the values from the native init and eval (XLA FFI, traceable), derivatives from a
    ``jax.custom_jvp`` rule whose tangents all come from native kernels: voltage tangents of the
    residuals are ``J · dV`` from the kernel's own Jacobian outputs; parameter and temperature
    tangents, and the voltage tangents of the other outputs (the Jacobian's: second derivatives),
    from the forward-mode tangent kernels (``_tangent``), which return ``d(outputs)/d(direction)``
    for the directions whose tangents are not symbolically zero. The JAX side of the rule is a
    linear contraction of those derivatives with the tangents (transposable: reverse mode works),
    so no part of the model's JAX function is traced or compiled. ``jax_f`` is the JAX function
    ``Model.function`` built (same signature and outputs; not used here); ``init_inputs``/
    ``extra_inputs``/``mfactor`` its helpers; ``probe`` the setup state node collapsing was decided
    from; ``given`` the parameter names (lower case) that count as given."""
    from .._xla import _jax

    jax = _jax()  # float64 on
    import jax.numpy as jnp
    from jax.custom_derivatives import SymbolicZero

    from .._rt_ops import ANALYSIS_BITS
    from ._lower import DENSE_KIND_SHIFT
    from ._tangent import MAX_LANES, lanes_for, tangent_calls

    p = plan(model)
    k = p.kernel
    init_call, _eval_call = _calls(model)
    shared = k.shared_values(probe["sp"])
    lab = np.asarray(probe["labels"])[:1]
    lab = np.where(lab < 0, p.n, lab)  # ground → the zero column, as Model._batch_inputs
    asm = _Dense(p, lab, model._with_scales)
    shared_d = asm.shared(shared)
    dense_call = _dense_call(model, len(shared_d), asm.n_in, asm.size)
    how = {v: (h, d) for v, h, d in model._eval_inputs}
    init_col = {nm: c for c, nm in enumerate(k.init_out_names)}
    integrate = float((flags & ANALYSIS_BITS["ic"]) == 0)
    n = p.n
    # the dense assembly's table (uniform: one instance), for the tangents of the dense outputs
    E = asm.n_entries
    t_tgt = asm.table[0, :E].astype(np.int64)
    t_code = asm.table[0, E:].astype(np.int64)
    t_col = t_code & ((1 << DENSE_KIND_SHIFT) - 1)
    t_kind = t_code >> DENSE_KIND_SHIFT
    t_sign = np.where(t_kind == 1, -1.0, 1.0)
    t_abs = t_kind == 2

    def init_row(values, temperature):
        """The init kernel's input row (n_in_init,)."""
        if not k.n_in_init:
            return jnp.zeros((0,), jnp.float64)
        inp = init_inputs(values, temperature)
        return jnp.stack([jnp.asarray(inp[nm], jnp.float64) for nm in k.init_in_names])

    def eval_row(values, temperature, iout, V):
        """The eval kernel's input row (n_in_eval,) from the init outputs ``iout``."""
        extra = extra_inputs({nm: None for nm in k.init_out_names}, values)
        vext = jnp.concatenate([jnp.asarray(V, jnp.float64).reshape(n), jnp.zeros(1)])
        temp = jnp.asarray(temperature, jnp.float64)
        cols = []
        for nm in k.eval_in_names:
            if nm == "analysis":
                cols.append(float(flags))
                continue
            h, d = how[nm]
            if h == "volt":
                va = vext[lab[0, d[0]]]
                cols.append(va - vext[lab[0, d[1]]] if d[1] >= 0 else va)
            elif h == "param":
                cols.append(iout[init_col[f"param:{d}"]] if f"param:{d}" in init_col else extra[d])
            elif h == "given":
                cols.append(float(d.lower() in given))
            elif h == "temp":
                cols.append(temp)
            elif h == "mfactor":
                cols.append(mfactor(values))
            elif h == "cache":
                cols.append(iout[init_col[f"cache{d}"]])
            elif h == "enable_integration":
                cols.append(integrate)
            else:  # enable_lim, prev_state (no limiting here), zero
                cols.append(0.0)
        return jnp.stack([jnp.asarray(c, jnp.float64) for c in cols])

    def init_out(values, temperature):
        return init_call(shared, init_row(values, temperature)[None, :])[0]

    def primal(values, temperature, V):
        row = eval_row(values, temperature, init_out(values, temperature), V)[None, :]
        res = asm.split(dense_call(shared_d, row), 1)
        return {key: v[0] for key, v in res.items()}

    def lanes(which: int, row, seeds):
        """Kernel ``which`` (0 init, 1 eval) on ``row`` with seeds (n_in, L): its outputs (n_out,)
        and their tangents (n_out, L), in calls of at most ``MAX_LANES`` lanes."""
        L = seeds.shape[1]
        out, Ts = None, []
        for s0 in range(0, L, MAX_LANES):
            S = seeds[:, s0:s0 + MAX_LANES]
            m = S.shape[1]
            K = lanes_for(m)
            S = jnp.pad(S, ((0, 0), (0, K - m)))
            res = tangent_calls(model, K)[which](shared, jnp.concatenate([row, S.reshape(-1)])[None, :])[0]
            n_out = res.shape[0] // (K + 1)
            out = res[:n_out]
            Ts.append(res[n_out:].reshape(n_out, K)[:, :m])
        return out, jnp.concatenate(Ts, axis=1)

    def dense_tangents(eout, T):
        """Eval outputs ``eout`` (n_out,) with tangents ``T`` (n_out, L) → each dense output's
        tangents (shape + (L,)), assembled as the kernel assembles the values (|x| of the scales:
        ±, + at 0 as JAX's ``abs``)."""
        coef = jnp.where(t_abs, jnp.where(eout[t_col] >= 0, 1.0, -1.0), t_sign)
        D = jnp.zeros((asm.size, T.shape[1]), jnp.float64).at[t_tgt].add(coef[:, None] * T[t_col, :])
        return {name: D[o:o + int(np.prod(shape[1:]))].reshape(tuple(shape[1:]) + (T.shape[1],))
                for name, o, shape in asm.outputs}

    def is_zero(t) -> bool:
        return isinstance(t, SymbolicZero)

    @jax.custom_jvp
    def f(values, temperature, V):
        return primal(values, temperature, V)

    def rule(primals, tangents):
        values, temperature, V = primals
        dvals, dT, dV = tangents
        out = f(values, temperature, V)
        tan = {key: jnp.zeros_like(v) for key, v in out.items()}
        leaves, tdef = jax.tree_util.tree_flatten(values)
        tl = tdef.flatten_up_to(dvals)
        nz = [i for i, t in enumerate(tl) if not is_zero(t)]
        use_t = not is_zero(dT)
        if nz or use_t:  # parameters and temperature
            parts = [(leaves[i], tl[i]) for i in nz] + ([(temperature, dT)] if use_t else [])
            x0 = jnp.concatenate([jnp.ravel(jnp.asarray(x, jnp.float64)) for x, _t in parts])
            td = jnp.concatenate([jnp.ravel(jnp.asarray(t, jnp.float64)) for _x, t in parts])
            sizes = [int(np.size(x)) for x, _t in parts]

            def rebuild(x):
                ls, o = list(leaves), 0
                for i, sz in zip(nz, sizes):
                    ls[i] = x[o:o + sz].reshape(np.shape(leaves[i]))
                    o += sz
                temp = x[o:o + 1].reshape(np.shape(temperature)) if use_t else temperature
                return tdef.unflatten(ls), temp

            kp = x0.shape[0]
            eye = jnp.eye(kp, dtype=jnp.float64)
            if k.n_in_init:
                s_init = jax.jacfwd(lambda x: init_row(*rebuild(x)))(x0)  # (n_in_init, kp)
                iout, t_iout = lanes(0, init_row(values, temperature), s_init)
            else:
                iout = init_out(values, temperature)
                t_iout = jnp.zeros((k.n_out_init, kp), jnp.float64)

            def erow(x, io):
                vals, temp = rebuild(x)
                return eval_row(vals, temp, io, V)

            s_eval = jax.vmap(lambda ex, ei: jax.jvp(erow, (x0, iout), (ex, ei))[1],
                              in_axes=(1, 1), out_axes=1)(eye, t_iout)
            eout, t_eout = lanes(1, erow(x0, iout), s_eval)
            tp = dense_tangents(eout, t_eout)
            tan = {key: tan[key] + tp[key] @ td for key in tan}
        if not is_zero(dV):
            dV = jnp.asarray(dV, jnp.float64)
            # residuals: the kernel's own Jacobian; the other outputs: the eval tangent kernel
            iout = init_out(values, temperature)
            s_v = jax.jacfwd(lambda v: eval_row(values, temperature, iout, v))(jnp.asarray(V, jnp.float64))
            eout, t_v = lanes(1, eval_row(values, temperature, iout, V), s_v.reshape(k.n_in_eval, n))
            tv = dense_tangents(eout, t_v)
            dVf = dV.reshape(n)
            for key in tan:
                if key == "residual_resist":
                    tan[key] = tan[key] + out["jacobian_resist"] @ dV
                elif key == "residual_react":
                    tan[key] = tan[key] + out["jacobian_react"] @ dV
                else:
                    tan[key] = tan[key] + tv[key] @ dVf
        return out, tan

    f.defjvp(rule, symbolic_zeros=True)
    return f
