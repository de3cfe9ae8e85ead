"""Residual and Jacobian assembly of an MNA :class:`~.mna.System` (the engine's view of a circuit).

Each device group gathers its local unknowns ``V = x[idx]`` (ground and collapsed nodes read 0
from a dump slot), evaluates ``(f, q, Jf, Jq)`` and scatter-adds them into the global vectors and
matrices on top of the linear stamps::

    f(x) = G·x + Σ_groups scatter(f_dev(x[idx]))      q(x) = C·x + Σ_groups scatter(q_dev(x[idx]))

The functions returned here are pure and traceable: the Newton iteration of :mod:`.engine` is
jitted around them; the circuit (:class:`~.mna.System`) holds no compiled state.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from .mna import System


def assemble_fn(system: System, pattern=None
                ) -> Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
    """Return ``assemble(x) -> (f_dev+G·x, q, Jf, Jq)`` (without ``−b``); jit-traceable
    (``pattern``: as for :func:`limited_assemble_fn`)."""
    full = limited_assemble_fn(system, pattern)
    return lambda x: full(x, None, False)[:4]


#: Most contributions to one position for which assembly by gathers is used (see below). The
#: gathers of all levels fuse into one XLA kernel per output: at 5 levels (the graetz bridge's
#: output nodes) they measured 3.7 → 1.9 µs against 15 scatter-adds (benchmarks/newton_profile.py).
_MAX_GATHER_LEVELS = 8
#: the largest stamping tables (entries, all three together) built for the native sums of the dense
#: path (int64: 128 MiB); larger ones fall back to the scatter-add
_MAX_TABLE_ENTRIES = 1 << 24


def _gather_levels(targets: list[np.ndarray], size: int) -> int:
    """The number of gathers :func:`_gather_table` would need: the most contributions to one
    position (counted without building the table, which is that many times ``size``)."""
    flats = [np.asarray(t, np.int64).ravel() for t in targets]
    tg = np.concatenate(flats) if flats else np.zeros(0, np.int64)
    tg = tg[(tg >= 0) & (tg < size)]
    return int(np.bincount(tg, minlength=1).max()) if tg.size else 1


def _gather_table(targets: list[np.ndarray], size: int) -> np.ndarray:
    """Scatter-add as gathers: ``targets[k]`` gives, for each entry of group ``k``'s output
    (flattened in C order), its position in the global array of ``size`` entries (``≥ size``:
    dropped). Returns ``tab`` (m, size) of indices into the concatenation of the flattened
    outputs followed by one 0.0 (index ``total``), so that ``acc + cat[tab[0]] + cat[tab[1]] + …``
    adds each position's contributions in the order a scatter-add of group 0, 1, … adds them."""
    flats = [np.asarray(t, np.int64).ravel() for t in targets]
    total = sum(f.size for f in flats)
    tg = np.concatenate(flats) if flats else np.zeros(0, np.int64)
    src = np.arange(total)
    keep = (tg >= 0) & (tg < size)
    tg, src = tg[keep], src[keep]
    order = np.argsort(tg, kind="stable")  # per position: sources in their original order
    tg, src = tg[order], src[order]
    lvl = np.arange(tg.size) - np.searchsorted(tg, tg, side="left")
    m = int(lvl.max()) + 1 if tg.size else 1
    tab = np.full((m, size), total, np.int32)
    tab[lvl, tg] = src
    return tab


def _gathered(acc: jax.Array, outs: list[jax.Array], tab: np.ndarray) -> jax.Array:
    """``acc`` plus the outputs ``outs`` placed by :func:`_gather_table`'s ``tab``."""
    if not outs:
        return acc
    cat = jnp.concatenate([o.ravel() for o in outs] + [jnp.zeros(1, acc.dtype)])
    for lvl in range(tab.shape[0]):
        acc = acc + cat[tab[lvl]]
    return acc


def _native_stamps(tabs: list[np.ndarray], gidx: list[np.ndarray], stateful: list[int]) -> dict | None:
    """``{id(tab): gather_sum}`` for the stamping tables (:func:`va2jax.codegen.native.gather_sum`:
    the same sums, one native call each) when JAX computes on the CPU, the native engine is
    available and no table is too large; else ``None`` (XLA gathers or scatter-adds).
    ``VA2JAX_SIM_NATIVE_STAMPS=0`` turns it off."""
    from .. import _config
    from ..codegen import native as nat

    if not _config.get("SIM_NATIVE_STAMPS") or jax.default_backend() != "cpu" or not nat.gather_sum_available():
        return None
    sizes = [int(sum(np.asarray(g).size for g in gidx)),
             int(sum(np.asarray(gidx[k]).size for k in stateful)),
             int(sum(np.asarray(g).shape[0] * np.asarray(g).shape[1] ** 2 for g in gidx))]
    if any(nat.gather_sum_terms(t, m) > nat.GATHER_SUM_MAX_TERMS for t, m in zip(tabs, sizes)):
        return None
    return {id(t): nat.gather_sum(t, m) for t, m in zip(tabs, sizes) if m}


def limited_assemble_fn(system: System, pattern: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                        elements: bool = False) -> Callable:
    """Return ``assemble(x, states, enable) -> (f, q, Jf, Jq, lim_f, lim_q, new_states)``.

    ``elements``: an eighth result, ``(fe, qe)``, lists with one (N, n_local) array per device
    group (every group, in order): each instance's own resistive residual ``f + lim_f`` and charge
    ``q + lim_q`` per local node (VACASK's per-element residual reference, :mod:`._resref`).

    ``pattern``: ``(Ai, Aj, lut)`` of :meth:`System.coo_lookup` (of the circuit with concrete values:
    ``G``/``C`` here may be traced) — then ``Jf``/``Jq`` are the values on that pattern (nnz,),
    added there directly (COO: O(nnz) per assembly instead of O(n²)); otherwise dense (n, n).

    ``states``: a tuple with one ``(N, num_states)`` array per group of
    :meth:`System.stateful_groups` (the ``$limit`` states of the previous Newton iteration), or
    ``None`` to evaluate every group without limiting. With ``enable`` the models limit their
    junction voltages against those states: ``f``/``q`` and the Jacobians are then taken at
    the limited voltages and ``lim_f``/``lim_q`` (OSDI's limiting RHS, ``J·(v_lim − v)`` of
    the limited branches) correct the Newton right-hand side. ``new_states`` are the states
    to pass to the next iteration (the unlimited voltages when ``enable`` is false)."""
    n = system.n
    sparse = pattern is not None
    if system.G is None and not sparse:
        from ..errors import Va2JaxError

        raise Va2JaxError(f"the circuit has {n} unknowns: the dense solver would need "
                          f"{2 * n * n * 8 / 2**30:.1f} GiB for its matrices; use options solver=klu")
    G = None if system.G is None else jnp.asarray(system.G)
    C = None if system.C is None else jnp.asarray(system.C)
    groups = [(g.group, jnp.asarray(g.idx)) for g in system.groups]
    stateful = system.stateful_groups()
    if sparse:
        Ai, Aj, find = pattern
        nnz = len(Ai)
        if G is not None:  # may be traced (batch sweeps of linear elements)
            lin_g = jnp.concatenate([G[Ai, Aj], jnp.zeros(1)])
            lin_c = jnp.concatenate([C[Ai, Aj], jnp.zeros(1)])
        else:  # large circuit: straight from the stamps, O(nnz)
            lg, lc = system.linear_values(find, nnz)
            lin_g, lin_c = jnp.asarray(lg), jnp.asarray(lc)
        Ai_j, Aj_j = jnp.asarray(Ai), jnp.asarray(Aj)
        pos = [jnp.asarray(find(np.asarray(g.idx)[:, :, None], np.asarray(g.idx)[:, None, :]))
               for g in system.groups]

        def linear(vals, x):  # (sparse linear stamps) · x
            return jax.ops.segment_sum(vals[:nnz] * x[Aj_j], Ai_j, num_segments=n)

    # device stamps: on a small circuit, added by a few gathers from static tables (XLA's CPU
    # scatter-add costs several µs per call there; the gathers add the same terms in the same
    # order, bit for bit); where a position gets many contributions (a supply node shared by
    # many transistors) each extra level is one more gather, and the scatter-add wins
    gidx = [np.asarray(g.idx) for g in system.groups]
    lim_idx = [gidx[k] for k in stateful]
    mat_tg = ([np.asarray(p) for p in pos] if sparse else
              [np.where((i[:, :, None] < n) & (i[:, None, :] < n), i[:, :, None] * n + i[:, None, :],
                        n * n) for i in gidx])
    msize = nnz if sparse else n * n
    # count the levels first: a table is (levels × size) entries — a supply node shared by
    # thousands of transistors would make it huge, and the scatter-add is used then anyway
    levels = (_gather_levels(gidx, n), _gather_levels(lim_idx, n), _gather_levels(mat_tg, msize))
    use_gather = max(levels) <= _MAX_GATHER_LEVELS
    small = levels[0] * n + levels[1] * n + levels[2] * msize <= _MAX_TABLE_ENTRIES
    vec_tab = lim_tab = mat_tab = None
    if use_gather or (not sparse and small):
        vec_tab = _gather_table(gidx, n)
        lim_tab = _gather_table(lim_idx, n)
        mat_tab = _gather_table(mat_tg, msize)
    # on the CPU (dense path) the same sums as one native kernel call per output, whatever the
    # number of levels: XLA's scatter-adds of a 48-unknown CMOS ring cost ≈ 100 µs per iteration
    native = None if sparse or vec_tab is None else _native_stamps([vec_tab, lim_tab, mat_tab], gidx, stateful)
    # sparse path, scatter assembly: natively evaluated groups skip their dense outputs
    direct = [None] * len(groups)
    if sparse and not use_gather:
        from ._direct import direct_stamp

        direct = [direct_stamp(g.group, np.asarray(g.idx), np.asarray(p))
                  for g, p in zip(system.groups, pos)]

    def gathered(acc, outs, tab):
        if native is None or not outs:
            return _gathered(acc, outs, tab)
        return native[id(tab)](acc, jnp.concatenate([o.ravel() for o in outs]))

    def assemble_gather(x: jax.Array, states, enable):
        if sparse:
            f, q = linear(lin_g, x), linear(lin_c, x)
            Jf, Jq = lin_g[:nnz], lin_c[:nnz]
        else:
            f, q = G @ x, C @ x
            Jf, Jq = G.ravel(), C.ravel()
        new_states = []
        fs, qs, jfs, jqs, lfs, lqs = [], [], [], [], [], []
        xe = jnp.concatenate([x, jnp.zeros(1, x.dtype)])
        for k, (grp, idx) in enumerate(groups):
            V = xe[idx]
            if states is not None and k in stateful:
                fl, ql, jfl, jql, lfl, lql, st = grp.eval_limited(V, states[stateful.index(k)], enable)
                new_states.append(st)
            else:
                fl, ql, jfl, jql = grp.eval(V)
                lfl = lql = jnp.zeros_like(fl)
            fs.append(fl)
            qs.append(ql)
            jfs.append(jfl)
            jqs.append(jql)
            if k in stateful:
                lfs.append(lfl)
                lqs.append(lql)
        el = ()
        if elements:
            lk = {k: j for j, k in enumerate(stateful)}
            el = ([fs[k] + lfs[lk[k]] if k in lk else fs[k] for k in range(len(fs))],
                  [qs[k] + lqs[lk[k]] if k in lk else qs[k] for k in range(len(qs))])
        f, q = gathered(f, fs, vec_tab), gathered(q, qs, vec_tab)
        lf, lq = gathered(jnp.zeros(n), lfs, lim_tab), gathered(jnp.zeros(n), lqs, lim_tab)
        Jf, Jq = gathered(Jf, jfs, mat_tab), gathered(Jq, jqs, mat_tab)
        if sparse:
            return (f, q, Jf, Jq, lf, lq, tuple(new_states)) + ((el,) if elements else ())
        return (f, q, Jf.reshape(n, n), Jq.reshape(n, n), lf, lq, tuple(new_states)) + (
            (el,) if elements else ())

    def assemble(x: jax.Array, states, enable):
        xe = jnp.concatenate([x, jnp.zeros(1, x.dtype)])
        lf = jnp.zeros(n + 1)
        lq = jnp.zeros(n + 1)
        if sparse:
            f = jnp.zeros(n + 1).at[:n].add(linear(lin_g, x))
            q = jnp.zeros(n + 1).at[:n].add(linear(lin_c, x))
            Jf, Jq = lin_g, lin_c
        else:
            f = jnp.zeros(n + 1).at[:n].add(G @ x)
            q = jnp.zeros(n + 1).at[:n].add(C @ x)
            Jf = jnp.zeros((n + 1, n + 1)).at[:n, :n].add(G)
            Jq = jnp.zeros((n + 1, n + 1)).at[:n, :n].add(C)
        new_states = []
        fes, qes = [], []
        for k, (grp, idx) in enumerate(groups):
            V = xe[idx]
            if direct[k] is not None:  # native kernel output → global places (sim/_direct.py)
                lim = states is not None and k in stateful
                acc = {"f": f, "q": q, "jf": Jf, "jq": Jq}
                if lim:
                    acc.update(lf=lf, lq=lq)
                acc, st = direct[k](V, states[stateful.index(k)] if lim else None,
                                    enable if lim else False, acc, local=elements)
                if elements:
                    fes.append(acc.pop("fe"))
                    qes.append(acc.pop("qe"))
                f, q, Jf, Jq = acc["f"], acc["q"], acc["jf"], acc["jq"]
                if lim:
                    lf, lq = acc["lf"], acc["lq"]
                    new_states.append(st)
                continue
            if states is not None and k in stateful:
                fl, ql, jfl, jql, lfl, lql, st = grp.eval_limited(V, states[stateful.index(k)], enable)
                lf = lf.at[idx].add(lfl)
                lq = lq.at[idx].add(lql)
                new_states.append(st)
                if elements:
                    fes.append(fl + lfl)
                    qes.append(ql + lql)
            else:
                fl, ql, jfl, jql = grp.eval(V)
                if elements:
                    fes.append(fl)
                    qes.append(ql)
            f = f.at[idx].add(fl)
            q = q.at[idx].add(ql)
            if sparse:
                Jf = Jf.at[pos[k]].add(jfl)
                Jq = Jq.at[pos[k]].add(jql)
            else:
                r = idx[:, :, None]
                c = idx[:, None, :]
                Jf = Jf.at[r, c].add(jfl)
                Jq = Jq.at[r, c].add(jql)
        el = ((fes, qes),) if elements else ()
        if sparse:
            return (f[:n], q[:n], Jf[:nnz], Jq[:nnz], lf[:n], lq[:n], tuple(new_states)) + el
        return (f[:n], q[:n], Jf[:n, :n], Jq[:n, :n], lf[:n], lq[:n], tuple(new_states)) + el

    return assemble_gather if use_gather or native is not None else assemble


def zero_states(system: System) -> tuple[jax.Array, ...]:
    """Placeholder ``$limit`` states (zeros) for :func:`limited_assemble_fn`."""
    return tuple(jnp.zeros((system.groups[k].idx.shape[0], system.groups[k].group.num_states))
                 for k in system.stateful_groups())
