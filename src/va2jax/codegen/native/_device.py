"""A circuit simulator's view of a model's native eval kernel: :class:`DevicePlan`.

A simulator evaluates ``N`` instances of a model (one :meth:`va2jax.Model.setup` state) at local
node voltages ``V`` (N, n) — V, or A for flow unknowns — many times per time step. The kernel's
``in`` row (:class:`~._kernel.NativeKernel`) holds hundreds of columns that do not change between
calls (parameters, ``cache`` values of init, temperature, analysis bits) and a few that do:

* branch voltages ``V[a] − V[b]`` (``a``/``b`` after node collapsing; ground reads 0),
* the previous ``$limit`` states and OSDI's ``enable_lim`` flag.

:func:`device_plan` packs the static columns once (NumPy, at bind time); :meth:`DevicePlan.rows`
writes the dynamic ones into a copy per call (traceable JAX), and :meth:`DevicePlan.dense` turns
the kernel's ``out`` row into the dense, collapsed arrays of :meth:`va2jax.Model.eval`:

    residual_resist/react (N, n) [A or V; C or Wb], jacobian_resist/react (N, n, n) [S; F],
    lim_rhs_resist/react (N, n) (OSDI's limiting RHS, the negated MIR value), states (N, s)

Contributions of collapsed nodes are added at their representative in output order (residual
index, then Jacobian-entry order), as ``Model.eval`` adds them; the sum starts from the first
term instead of 0.0, which gives the same value (x + 0.0 = x, only −0.0 becomes +0.0 there).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._kernel import NativeKernel, model_kernel

#: Eval-input kinds that change from call to call (``Model._batch_inputs``'s names).
_DYNAMIC = frozenset({"volt", "prev_state", "enable_lim"})


@dataclass(frozen=True)
class DevicePlan:
    """Static ``in`` rows and the index tables that connect a kernel to ``(V, states, enable)``.

    ``static`` (N, n_in): the rows with 0 in every dynamic column. ``volt_cols``/``volt_a``/
    ``volt_b``: the branch-voltage columns and, per instance, the indices into ``[V, 0]``
    (N, n + 1) of their two nodes (``n`` = ground). ``state_cols``/``state_k``: the columns taking
    ``prev_state[:, k]``; ``lim_cols``: the columns taking ``enable_lim`` (1.0 or 0.0).
    ``gather`` (m, N, P) indices into ``[out, 0]`` (N, n_out + 1): the dense outputs, flattened in
    the order ``rr (n), rq (n), jr (n·n), jq (n·n), lr (n), lq (n), ns (s)``, are the sums over
    the ``m`` levels (index ``n_out``: nothing). ``uniform``: every instance has the same tables
    (then row 0 of each is used for all)."""

    kernel: NativeKernel
    n: int
    num_states: int
    shared: np.ndarray
    static: np.ndarray
    volt_cols: np.ndarray
    volt_a: np.ndarray
    volt_b: np.ndarray
    state_cols: np.ndarray
    state_k: np.ndarray
    lim_cols: np.ndarray
    gather: np.ndarray
    uniform: bool

    @property
    def size(self) -> int:
        return self.static.shape[0]

    def rows(self, V: Any, prev_state: Any = None, enable: Any = False) -> Any:
        """The kernel's ``in`` rows (N, n_in) for voltages ``V`` (N, n) (JAX, traceable)."""
        import jax.numpy as jnp

        N = self.size
        vext = jnp.concatenate([jnp.asarray(V, jnp.float64), jnp.zeros((N, 1))], axis=1)
        if self.uniform:
            vals = [vext[:, self.volt_a[0]] - vext[:, self.volt_b[0]]]
        else:
            vals = [jnp.take_along_axis(vext, jnp.asarray(self.volt_a), axis=1)
                    - jnp.take_along_axis(vext, jnp.asarray(self.volt_b), axis=1)]
        cols = [self.volt_cols]
        if len(self.state_cols):
            ps = jnp.zeros((N, self.num_states)) if prev_state is None else jnp.asarray(prev_state, jnp.float64)
            vals.append(ps[:, self.state_k])
            cols.append(self.state_cols)
        if len(self.lim_cols):
            en = jnp.asarray(enable).astype(jnp.float64)
            vals.append(jnp.broadcast_to(en, (N, len(self.lim_cols))))
            cols.append(self.lim_cols)
        # one select of the static rows and the dynamic values gathered into place (a scatter
        # into a copy of ``static`` costs two XLA operations per call on the CPU; this fuses)
        cols = np.concatenate(cols)
        pos = np.zeros(self.static.shape[1], np.int64)
        pos[cols] = np.arange(len(cols))
        dyn = np.zeros(self.static.shape[1], bool)
        dyn[cols] = True
        # the static rows from their distinct rows (usually one or two per model card): a
        # constant of N × n_in doubles in the compiled program (73 MB for 20,000 PSP103) costs
        # compile time growing with N and is streamed from memory on every call
        # (the gather's operands pass an optimization barrier: XLA would otherwise fold the
        # gather of two constants back into the N × n_in constant at compile time)
        import jax

        uniq, inv = self.static_distinct
        if len(uniq) == 1:
            static = jnp.broadcast_to(jnp.asarray(uniq[0]), self.static.shape)
        else:
            u, i = jax.lax.optimization_barrier((jnp.asarray(uniq), jnp.asarray(inv)))
            static = u[i]
        return jnp.where(dyn, jnp.concatenate(vals, axis=1)[:, pos], static)

    @functools.cached_property
    def static_distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, index)``: the distinct rows of :attr:`static` (bit for bit: −0.0 and NaN
        payloads kept) and, per instance, its row's index (int32); ``rows[index] == static``."""
        st = np.ascontiguousarray(self.static, np.float64)
        bits = st.view(np.uint64)
        _, first, inv = np.unique(bits, axis=0, return_index=True, return_inverse=True)
        return st[first], inv.reshape(-1).astype(np.int32)

    def dense(self, out: Any) -> dict[str, Any]:
        """The kernel's ``out`` rows (N, n_out) → dense collapsed outputs (see the module doc)."""
        import jax.numpy as jnp

        N, n, s = self.size, self.n, self.num_states
        if self.uniform and _level_sums():
            # one native call: the same sums in the same order (``_gsum.level_sum``); XLA's
            # gathers of every level cost ≈ m·N·P loads (a PSP103 ring: 14 levels × 18 × 390)
            from ._gsum import level_sum

            acc = level_sum(self.gather[:, 0], out.shape[-1])(out)
        else:
            ext = jnp.concatenate([out, jnp.zeros((N, 1))], axis=1)
            acc = None
            for lvl in range(self.gather.shape[0]):
                g = ext[:, self.gather[lvl, 0]] if self.uniform else \
                    jnp.take_along_axis(ext, jnp.asarray(self.gather[lvl]), axis=1)
                acc = g if acc is None else acc + g
        o = 0
        res = {}
        for name, w, shape, neg in (("residual_resist", n, (n,), False), ("residual_react", n, (n,), False),
                                    ("jacobian_resist", n * n, (n, n), False),
                                    ("jacobian_react", n * n, (n, n), False),
                                    ("lim_rhs_resist", n, (n,), True), ("lim_rhs_react", n, (n,), True),
                                    ("states", s, (s,), False)):
            v = acc[:, o:o + w].reshape((N,) + shape)
            res[name] = -v if neg else v
            o += w
        return res


def _level_sums() -> bool:
    """Whether :meth:`DevicePlan.dense` sums its levels in a native kernel
    (``VA2JAX_SIM_NATIVE_STAMPS``, default on)."""
    from ... import _config

    return bool(_config.get("SIM_NATIVE_STAMPS"))


def device_plan(model: Any, state: dict[str, Any], *, analysis: str = "tran") -> DevicePlan:
    """The :class:`DevicePlan` of ``model``'s native kernel for the ``N`` instances of ``state``
    (from :meth:`va2jax.Model.setup`, batched) evaluated for ``analysis``."""
    from .._rt_ops import ANALYSIS_BITS

    k = model_kernel(model)
    nb = int(np.shape(state["labels"])[0])
    n = model._n
    flags = ANALYSIS_BITS[analysis] if isinstance(analysis, str) else int(analysis)
    static_in = {"labels": state["labels"], "init": state["init"], "given": state["given"],
                 "extra": state["extra"], "temperature": state["temperature"],
                 "mfactor": state["mfactor"], "analysis": np.full(nb, flags, np.int32),
                 "enable_lim": np.zeros(nb, bool), "prev_state": np.zeros((nb, model.num_states))}
    ein, lab = model._batch_inputs(static_in, nb, np, k.eval_in_set, "static", _DYNAMIC)
    lab = np.asarray(lab, np.int64)
    col = {name: c for c, name in enumerate(k.eval_in_names)}
    static = np.zeros((nb, k.n_in_eval), np.float64)
    for name, v in ein.items():
        if name in col:
            static[:, col[name]] = np.broadcast_to(np.asarray(v, np.float64), (nb,))
    volt_cols, va, vb, state_cols, state_k, lim_cols = [], [], [], [], [], []
    for value, how, data in model._eval_inputs:
        if value not in col or how not in _DYNAMIC:
            continue
        if how == "volt":
            a, b = data
            volt_cols.append(col[value])
            va.append(lab[:, a])
            vb.append(lab[:, b] if b >= 0 else np.full(nb, n))
        elif how == "prev_state":
            state_cols.append(col[value])
            state_k.append(data)
        else:
            lim_cols.append(col[value])
    # output gather tables
    n_out = k.n_out_eval
    ocol = {name: c for c, name in enumerate(k.eval_out_names)}
    s = model.num_states
    P = 4 * n + 2 * n * n + s  # rr, rq, jr, jq, lr, lq (n or n·n each), ns (s)
    lists: list[list[list[int]]] = [[[] for _ in range(P)] for _ in range(nb)]
    base = {"rr": 0, "rq": n, "jr": 2 * n, "jq": 2 * n + n * n, "lr": 2 * n + 2 * n * n,
            "lq": 3 * n + 2 * n * n}
    ns0 = 4 * n + 2 * n * n
    for r in range(nb):
        L = lists[r]
        for prefix in ("rr", "rq", "lr", "lq"):
            for i in range(n):
                c = ocol.get(f"{prefix}{i}")
                if c is not None and lab[r, i] < n:
                    L[base[prefix] + lab[r, i]].append(c)
        for prefix in ("jr", "jq"):
            for kk, i, j in model._jr:
                c = ocol.get(f"{prefix}{kk}")
                if c is not None and lab[r, i] < n and lab[r, j] < n:
                    L[base[prefix] + lab[r, i] * n + lab[r, j]].append(c)
        for q in range(s):
            c = ocol.get(f"ns{q}")
            if c is not None:
                L[ns0 + q].append(c)
    m = max([1] + [len(x) for L in lists for x in L])
    gather = np.full((m, nb, P), n_out, np.int64)
    for r in range(nb):
        for p, cs in enumerate(lists[r]):
            for lvl, c in enumerate(cs):
                gather[lvl, r, p] = c
    va_a = np.stack(va, axis=1) if va else np.zeros((nb, 0), np.int64)
    vb_a = np.stack(vb, axis=1) if vb else np.zeros((nb, 0), np.int64)
    uniform = bool(np.all(gather == gather[:, :1]) and np.all(va_a == va_a[:1]) and np.all(vb_a == vb_a[:1]))
    return DevicePlan(k, n, s, k.shared_values(state["sp"]), static, np.asarray(volt_cols, np.int64),
                      va_a, vb_a, np.asarray(state_cols, np.int64), np.asarray(state_k, np.int64),
                      np.asarray(lim_cols, np.int64), gather, uniform)
