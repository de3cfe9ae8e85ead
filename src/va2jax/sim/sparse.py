"""The sparse path's linear solver: KLU (through ``klujax``) with the symbolic analysis done
once per circuit.

Newton solves ``J·Δx = −F`` on a pattern fixed by the circuit (:meth:`.mna.System.sparsity`).
KLU splits a solve into a *symbolic analysis* (block triangular form and a fill-reducing
ordering, COLAMD/AMD — a function of the pattern only) and a *numeric factorisation* with
partial pivoting (``L·U = P·J·Q``). :func:`klu_solver` analyses the pattern once, when the
circuit is compiled, and each iteration pays only the numeric factorisation and the two
triangular solves (``klujax.solve``, used before, re-analyses on every call).

Cost per iteration: O(flops of L, U) for the factorisation, O(nnz(L) + nnz(U)) for the solves;
memory O(nnz(L) + nnz(U)). :func:`fill_estimate` reports these before a run.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np


class KluSolver:
    """``solve(Ax, b) -> x`` for matrices on the pattern ``(Ai, Ai)`` (row-major sorted, as
    :meth:`.mna.System.sparsity` returns it), with KLU's symbolic analysis done once.

    Traceable and vmappable (klujax's primitive has a batching rule). The analysis object
    stays alive as long as this solver (the compiled loops close over it)."""

    def __init__(self, Ai: np.ndarray, Aj: np.ndarray, n: int):
        import klujax

        self.n = n
        self._klujax = klujax
        self.Ai = np.asarray(Ai, np.int32)
        self.Aj = np.asarray(Aj, np.int32)
        # klujax sorts the pattern (lexsort by row, then column) on every call of its public
        # solve_with_symbol; the pattern here is already in that order, so the primitive is
        # bound directly and the O(nnz log nnz) sort stays out of the Newton loop
        order = np.lexsort((self.Aj, self.Ai))
        if not np.array_equal(order, np.arange(len(order))):
            raise ValueError("KluSolver: the pattern must be sorted row-major")
        with jax.ensure_compile_time_eval():  # also when built inside a trace (batch sweeps)
            self.symbolic = klujax.analyze(np.asarray(Ai, np.int32), np.asarray(Aj, np.int32), n)
        self._handle = np.uint64(self.symbolic.raw)

    def __call__(self, Ax: jax.Array, b: jax.Array) -> jax.Array:
        x = self._klujax.solve_with_symbol_f64.bind(
            jnp.asarray(self.Ai), jnp.asarray(self.Aj), Ax.astype(jnp.float64)[None, :],
            b.astype(jnp.float64)[None, :, None], jnp.asarray(self._handle))
        return x.reshape(self.n)


def fill_estimate(Ai: np.ndarray, Aj: np.ndarray, n: int) -> tuple[int, int]:
    """``(nnz, nnz(L+U))``: the pattern's entries and the entries of its LU factors under a
    fill-reducing ordering (SuperLU's COLAMD, static pivoting on a diagonally dominant matrix
    with that pattern — an estimate of what KLU will allocate; KLU's block triangular form
    can only reduce it)."""
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    nnz = len(Ai)
    vals = np.where(np.asarray(Ai) == np.asarray(Aj), float(n), 1e-3)
    A = sp.csc_matrix((vals, (Ai, Aj)), shape=(n, n))
    try:
        lu = splu(A, permc_spec="COLAMD", diag_pivot_thresh=0.0,
                  options={"SymmetricMode": False})
    except RuntimeError:
        return nnz, -1
    return nnz, int(lu.L.nnz + lu.U.nnz - n)


def structural_singularity(Ai: np.ndarray, Aj: np.ndarray, n: int) -> tuple[list[int], list[int]]:
    """Rows (equations) and columns (unknowns) left unmatched by a maximum bipartite matching of
    the pattern: non-empty when the matrix is singular whatever its values."""
    import scipy.sparse as sp
    from scipy.sparse.csgraph import maximum_bipartite_matching

    A = sp.csr_matrix((np.ones(len(Ai)), (Ai, Aj)), shape=(n, n))
    col_of_row = maximum_bipartite_matching(A, perm_type="column")
    rows = np.where(col_of_row < 0)[0]
    matched_cols = np.zeros(n, bool)
    matched_cols[col_of_row[col_of_row >= 0]] = True
    return [int(r) for r in rows], [int(c) for c in np.where(~matched_cols)[0]]


def singular_unknowns(Ai: np.ndarray, Aj: np.ndarray, Ax: np.ndarray, n: int) -> list[int]:
    """Unknowns involved in a (numerically) singular matrix: the structurally unmatched
    columns, else the columns of all-zero value, else the column of the smallest pivot of a
    sparse LU (SuperLU); empty when none is found."""
    _, cols = structural_singularity(np.asarray(Ai)[Ax != 0], np.asarray(Aj)[Ax != 0], n)
    if cols:
        return cols
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    A = sp.csc_matrix((Ax, (Ai, Aj)), shape=(n, n))
    try:
        lu = splu(A, permc_spec="COLAMD")
    except RuntimeError:  # an exactly zero pivot: SuperLU does not say where
        if n > 2000:
            return []
        from .._blas import single_threaded

        with single_threaded(n):
            _, _, vh = np.linalg.svd(A.toarray())  # the null vector's largest component
        return [int(np.argmax(np.abs(vh[-1])))]
    d = np.abs(lu.U.diagonal())
    k = int(np.argmin(d))
    return [int(np.argsort(lu.perm_c)[k])] if d[k] < 1e-14 * max(float(d.max()), 1e-300) else []


#: Unknowns from which the fill-in is estimated before a run (:func:`check_fill`; below, the
#: factors of a circuit matrix are small and the estimate not worth its time)
FILL_CHECK_FROM = 10000


def check_fill(Ai: np.ndarray, Aj: np.ndarray, n: int) -> None:
    """Refuse, before the run, a circuit whose LU factors would not fit in memory: estimated
    ``nnz(L+U)`` (:func:`fill_estimate`) × 12 bytes (value + row index) against half of the
    machine's physical memory. Checked from :data:`FILL_CHECK_FROM` unknowns on."""
    import os

    from ..errors import Va2JaxError

    if n < FILL_CHECK_FROM:
        return
    nnz, lu = fill_estimate(Ai, Aj, n)
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return
    need = 12 * max(lu, nnz)
    if lu < 0 or need > mem / 2:
        what = "cannot be estimated" if lu < 0 else f"{lu:,} entries (~{need / 2**30:.1f} GiB)"
        raise Va2JaxError(f"sparse matrix too large: {n:,} unknowns, {nnz:,} non-zeros; the LU "
                          f"factors' fill-in {what} exceeds half of this machine's "
                          f"{mem / 2**30:.1f} GiB")


SolveFn = Callable[[jax.Array, jax.Array], jax.Array]
