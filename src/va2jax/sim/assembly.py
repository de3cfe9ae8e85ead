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


def assemble_fn(system: System) -> Callable[[jax.Array], tuple[jax.Array, jax.Array, jax.Array, jax.Array]]:
    """Return ``assemble(x) -> (f_dev+G·x, q, Jf, Jq)`` (without ``−b``); jit-traceable."""
    full = limited_assemble_fn(system)
    return lambda x: full(x, None, False)[:4]


def limited_assemble_fn(system: System, pattern: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
                        ) -> Callable:
    """Return ``assemble(x, states, enable) -> (f, q, Jf, Jq, lim_f, lim_q, new_states)``.

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
    G = jnp.asarray(system.G)
    C = jnp.asarray(system.C)
    groups = [(g.group, jnp.asarray(g.idx)) for g in system.groups]
    stateful = system.stateful_groups()
    sparse = pattern is not None
    if sparse:
        Ai, Aj, lut = pattern
        nnz = len(Ai)
        lin_g = jnp.concatenate([G[Ai, Aj], jnp.zeros(1)])
        lin_c = jnp.concatenate([C[Ai, Aj], jnp.zeros(1)])
        Ai_j, Aj_j = jnp.asarray(Ai), jnp.asarray(Aj)
        pos = [jnp.asarray(lut[np.asarray(g.idx)[:, :, None], np.asarray(g.idx)[:, None, :]])
               for g in system.groups]

        def linear(vals, x):  # (sparse linear stamps) · x
            return jax.ops.segment_sum(vals[:nnz] * x[Aj_j], Ai_j, num_segments=n)

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
        for k, (grp, idx) in enumerate(groups):
            V = xe[idx]
            if states is not None and k in stateful:
                fl, ql, jfl, jql, lfl, lql, st = grp.eval_limited(V, states[stateful.index(k)], enable)
                lf = lf.at[idx].add(lfl)
                lq = lq.at[idx].add(lql)
                new_states.append(st)
            else:
                fl, ql, jfl, jql = grp.eval(V)
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
        if sparse:
            return f[:n], q[:n], Jf[:nnz], Jq[:nnz], lf[:n], lq[:n], tuple(new_states)
        return f[:n], q[:n], Jf[:n, :n], Jq[:n, :n], lf[:n], lq[:n], tuple(new_states)

    return assemble

def zero_states(system: System) -> tuple[jax.Array, ...]:
    """Placeholder ``$limit`` states (zeros) for :func:`limited_assemble_fn`."""
    return tuple(jnp.zeros((system.groups[k].idx.shape[0], system.groups[k].group.num_states))
                 for k in system.stateful_groups())
