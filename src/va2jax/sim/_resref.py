"""VACASK's residual tolerance reference: the largest single element contribution to each equation.

VACASK's Newton (``lib/coreopnr.cpp``, ``checkResidual``) accepts an iteration only when every
equation ``i`` of a node that is not a device's internal node satisfies::

    |F_i| ≤ max(reltol · max(c_i, c_i^hist), abstol),     c_i = max_e |r_{e,i}|

``r_{e,i}`` is element ``e``'s own contribution to equation ``i`` at the iterate (A for a node's
current balance):

* a device instance (OSDI): per instance node, its resistive residual ``f_e`` corrected by its
  limiting RHS (``f_e + lim_f,e`` in va2jax's sign), and in the transient its *flow*
  ``a0·(q_e + lim_q,e) + hist_e`` — the integration formula applied to the instance's own charge
  with the instance's own charge and flow history (``lib/osdiinstance.cpp``; the same array,
  ``lib/coretrannr.cpp``);
* a linear element stamped by va2jax (resistor, capacitor, controlled source, a voltage
  source's branch current at its nodes): the sum of its own stamps in that row, ``Σ_j G_ij·x_j``
  (and the flow of its own ``Σ_j C_ij·x_j``);
* independent sources: ``|b_i|`` (an isource's value at its nodes; a vsource's value sits in its
  branch row, which is a device-internal unknown and not checked). Two current sources into one
  node count as one element here (their sum), VACASK takes the larger.

``c_i^hist`` is the largest ``c_i`` over the accepted time points (``relref="alllocal"``); rows
of device-internal unknowns (model internal nodes, branch currents of sources and inductors)
are not checked at all. Everything is O(nnz): segment maxima over the instances' outputs.

The *reactive slots* are one entry per (instance, local node) of every device group followed by
one per (element, row) of the linear charge stamps; the transient carries their charge and flow
history (:class:`.tran.TranState` ``eqh``, ``eqdot``) as it carries the global ``q``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .mna import System


def _keys(owner: np.ndarray | None, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(entry → key index, key → row) for keys (element, row) of stamp entries."""
    own = np.arange(len(rows)) if owner is None else np.asarray(owner, np.int64)
    k = own * (n + 1) + np.asarray(rows, np.int64)
    uniq, inv = np.unique(k, return_inverse=True)
    return inv.astype(np.int32), (uniq % (n + 1)).astype(np.int32)


class ResRef:
    """The static tables of VACASK's per-element residual reference for ``system``."""

    def __init__(self, system: System):
        n = self.n = system.n
        ext = np.zeros(n, bool)
        ext[[i for i in system.node_index.values() if 0 <= i < n]] = True
        #: rows checked by the residual test: node voltages of the netlist (not device-internal)
        self.checked = ext
        gr, gc, gv = system.G_coo
        cr, cc, cv = system.C_coo
        self.g_key, g_rows = _keys(system.G_owner, gr, n)
        self.c_key, c_rows = _keys(system.C_owner, cr, n)
        self.g_rows, self.c_rows = g_rows, c_rows
        self.gc, self.gv = gc.astype(np.int32), np.asarray(gv, np.float64)
        self.cc, self.cv = cc.astype(np.int32), np.asarray(cv, np.float64)
        rows = [np.asarray(g.idx, np.int64).ravel() for g in system.groups]
        #: rows of the reactive slots: device (instance, node) pairs, then linear charge keys
        self.slot_rows = np.concatenate(rows + [c_rows.astype(np.int64)]).astype(np.int32)
        self.size = len(self.slot_rows)

    def resistive(self, x: jax.Array, b: jax.Array, dev: list[jax.Array]) -> jax.Array:
        """(n,) ``max_e |r_e,i|`` of the resistive contributions at ``x``: device outputs ``dev``
        (one (N, n_local) array per group: ``f + lim_f``), the linear stamps, the sources."""
        n = self.n
        ref = jnp.abs(b)
        if len(self.gv):
            lin = jax.ops.segment_sum(jnp.asarray(self.gv) * x[self.gc], self.g_key,
                                      num_segments=len(self.g_rows))
            ref = jnp.maximum(ref, jax.ops.segment_max(jnp.abs(lin), self.g_rows, num_segments=n + 1)[:n])
        if dev:
            vals = jnp.concatenate([jnp.abs(d).ravel() for d in dev])
            rows = self.slot_rows[: vals.shape[0]]
            ref = jnp.maximum(ref, jax.ops.segment_max(vals, rows, num_segments=n + 1)[:n])
        return jnp.maximum(ref, 0.0)  # segment_max of an empty segment is −inf

    def charges(self, x: jax.Array, dev_q: list[jax.Array]) -> jax.Array:
        """(size,) the reactive slots' charges at ``x``: device outputs ``dev_q`` (one
        (N, n_local) array per group: ``q + lim_q``) and the linear charge stamps per element."""
        parts = [d.ravel() for d in dev_q]
        if len(self.cv):
            parts.append(jax.ops.segment_sum(jnp.asarray(self.cv) * x[self.cc], self.c_key,
                                             num_segments=len(self.c_rows)))
        return jnp.concatenate(parts) if parts else jnp.zeros(0)

    def reactive(self, flows: jax.Array) -> jax.Array:
        """(n,) ``max_e |flow_e,i|`` over the reactive slots."""
        n = self.n
        if self.size == 0:
            return jnp.zeros(n)
        return jnp.maximum(jax.ops.segment_max(jnp.abs(flows), self.slot_rows, num_segments=n + 1)[:n], 0.0)
