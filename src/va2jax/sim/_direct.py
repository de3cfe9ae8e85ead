"""Sparse-path assembly of a natively evaluated device group straight from its kernel's output.

A group in ``native`` mode (:class:`.adapters.GeneratedGroup`) normally turns the kernel's
``out`` rows (N, n_out) into dense per-instance arrays — residuals (N, n), Jacobians (N, n, n) —
by ``m`` levels of gathers (:meth:`va2jax.codegen.native.DevicePlan.dense`), and the assembly
scatters those into the circuit. For PSP103 (n = 13 local nodes, most collapsed) that is
2·169 Jacobian slots per instance of which a few dozen are non-zero, and the gathers cost more
than the model evaluation itself. Here each kernel output column goes straight to its global
place::

    f[idx[r, i]]        += out[r, c]     for the columns c of residual entry i
    Jf[pos[r, i, j]]    += out[r, c]     for the columns c of Jacobian entry (i, j)
    lim_f[idx[r, i]]    −= out[r, c]     (OSDI's limiting RHS is the negated output)

(likewise ``q``, ``Jq``, ``lim_q``; new ``$limit`` states gathered per column). The values are
the same terms as the dense route's; only the order in which the terms meeting at one place
are added can differ (rounding).
Used where every instance of the group shares one plan (``DevicePlan.uniform``).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class DirectStamp:
    """The kernel call of a native group and its output columns' global targets."""

    def __init__(self, plan: Any, ev: Any, shared: Any, idx: np.ndarray, pos: np.ndarray):
        self.plan, self.ev, self.shared = plan, ev, shared
        n, s = plan.n, plan.num_states
        nout = plan.kernel.n_out_eval
        row = plan.gather[:, 0, :]  # (m, P): uniform plan, one row serves all instances
        # dense position p → (output, local index): rr, rq (n), jr, jq (n·n), lr, lq (n), ns (s)
        bounds = [("f", n), ("q", n), ("jf", n * n), ("jq", n * n), ("lf", n), ("lq", n), ("st", s)]
        cols: dict[str, list[tuple[int, int]]] = {k: [] for k, _ in bounds}
        for lvl in range(row.shape[0]):
            base = 0
            for key, w in bounds:
                for p in range(w):
                    c = int(row[lvl, base + p])
                    if c != nout:
                        cols[key].append((c, p))
                base += w
        self.targets = {}
        self.local = {}  # key → (columns, local node): the per-instance outputs (sim/_resref.py)
        for key in ("f", "q", "lf", "lq"):
            c = np.array([c for c, _ in cols[key]], np.int64)
            i = np.array([p for _, p in cols[key]], np.int64)
            self.local[key] = (c, i)
            tgt = idx[:, i] if len(i) else np.zeros((len(idx), 0), np.int64)
            self.targets[key] = (c, jnp.asarray(tgt.astype(np.int32)))  # int32: half the constant
        for key in ("jf", "jq"):
            c = np.array([c for c, _ in cols[key]], np.int64)
            p = np.array([p for _, p in cols[key]], np.int64)
            tgt = pos[:, p // n, p % n] if len(p) else np.zeros((len(idx), 0), np.int64)
            self.targets[key] = (c, jnp.asarray(tgt.astype(np.int32)))
        # states: one or more columns per state, summed in level order (as the dense route)
        self.state_cols = [[c for c, q in cols["st"] if q == k] for k in range(s)]

    def __call__(self, V: jax.Array, prev_state: Any, enable: Any, acc: dict[str, jax.Array],
                 local: bool = False) -> tuple[dict[str, jax.Array], jax.Array | None]:
        """Add the group's contributions at voltages ``V`` (N, n) to ``acc`` (keys f, q, lf, lq:
        (n+1,), jf, jq: (nnz+1,), last slot discarded); returns it and the new states.
        ``local``: also ``acc["fe"]``, ``acc["qe"]`` (N, n), each instance's own ``f + lim_f``
        and ``q + lim_q`` per local node (the limiting terms only where ``acc`` has ``lf``)."""
        out = self.ev(self.shared, self.plan.rows(V, prev_state, enable))
        if local:
            N = out.shape[0]
            for name, parts in (("fe", ("f", "lf")), ("qe", ("q", "lq"))):
                v = jnp.zeros((N, self.plan.n))
                for key in parts:
                    c, i = self.local[key]
                    if len(c) == 0 or key not in acc and key in ("lf", "lq"):
                        continue
                    v = v.at[:, i].add(-out[:, c] if key in ("lf", "lq") else out[:, c])
                acc[name] = v
        for key, (c, tgt) in self.targets.items():
            if len(c) == 0 or key not in acc:
                continue
            vals = out[:, c]
            acc[key] = acc[key].at[tgt].add(-vals if key in ("lf", "lq") else vals)
        st = None
        if self.state_cols:
            parts = []
            for cs in self.state_cols:
                v = out[:, cs[0]] if cs else jnp.zeros(out.shape[0])
                for c in cs[1:]:
                    v = v + out[:, c]
                parts.append(v)
            st = jnp.stack(parts, axis=1)
        return acc, st


def direct_stamp(grp: Any, idx: np.ndarray, pos: np.ndarray) -> DirectStamp | None:
    """A :class:`DirectStamp` for a device group evaluated by a native kernel with a uniform
    plan; ``None`` otherwise (the group is then assembled through its dense outputs)."""
    if getattr(grp, "mode", None) != "native" or not hasattr(grp, "_native_plan"):
        return None
    parts = grp._native_plan()
    if parts is None or not parts[0].uniform:
        return None
    plan, ev, shared = parts
    return DirectStamp(plan, ev, shared, np.asarray(idx), np.asarray(pos))
