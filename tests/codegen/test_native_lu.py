"""The native small dense solve (``va2jax.codegen.native._lu``): equilibrated LU with partial
pivoting, one kernel per ``n``, called through the XLA FFI.

Expected values: LAPACK (``numpy.linalg.solve``), exact arithmetic where the system is chosen so
that every operation is exact, and NaN where LAPACK's ``getrf`` reports a zero pivot.
"""
from __future__ import annotations

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("llvmlite")
import jax.numpy as jnp  # noqa: E402 (after the skips)

jax.config.update("jax_enable_x64", True)

from va2jax.codegen.native._lu import MAX_N, dense_solve, lu_solve_ir  # noqa: E402

EPS = np.finfo(float).eps


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9, MAX_N])
def test_random_systems_match_lapack(n):
    rng = np.random.default_rng(n)
    solve = dense_solve(n)
    for _ in range(5):
        # rows of very different scales (as MNA rows in A and in S) exercise the equilibration
        A = rng.normal(size=(n, n)) * 10.0 ** rng.integers(-9, 3, size=(n, 1))
        r = rng.normal(size=n)
        x = np.asarray(solve(A, r))
        ref = np.linalg.solve(A, r)
        # both solves are backward stable but round in another order (LAPACK's blocked kernels
        # vs. a right-looking elimination): forward errors of order n·eps·cond(equilibrated A)
        D = 1.0 / np.max(np.abs(A), axis=1)
        cond = np.linalg.cond(D[:, None] * A)
        tol = 64 * n * EPS * cond
        assert np.max(np.abs(x - ref)) <= tol * np.max(np.abs(ref)), (n, cond)


def test_pivoting_exact():
    # every operation exact (powers of two): the row order must come from the pivot search
    A = np.array([[0.0, 2.0, 0.0], [4.0, 0.0, 0.0], [0.0, 0.0, 8.0]])
    x = np.asarray(dense_solve(3)(A, np.array([2.0, 4.0, 8.0])))
    assert np.array_equal(x, [1.0, 1.0, 1.0])
    x = np.asarray(dense_solve(2)(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([3.0, 5.0])))
    assert np.array_equal(x, [5.0, 3.0])


@pytest.mark.parametrize("A", [
    [[1.0, 2.0], [2.0, 4.0]],                     # rank 1: zero pivot in column 2
    [[1.0, 0.0], [0.0, 0.0]],                     # an unknown without equation
    [[1.0, np.inf], [0.0, 1.0]],                  # non-finite entry
    [[1.0, np.nan], [0.0, 1.0]],
])
def test_singular_or_non_finite_gives_nan(A):
    x = np.asarray(dense_solve(2)(np.asarray(A), np.ones(2)))
    assert np.all(np.isnan(x))


def test_vmap_and_loops_equal_single_calls():
    n = 4
    rng = np.random.default_rng(7)
    A = rng.normal(size=(6, n, n)) + 4 * np.eye(n)
    r = rng.normal(size=(6, n))
    solve = dense_solve(n)
    single = np.stack([np.asarray(solve(A[k], r[k])) for k in range(6)])
    assert np.array_equal(np.asarray(jax.vmap(solve)(A, r)), single)  # rows are independent

    Aj, rj = jnp.asarray(A), jnp.asarray(r)

    def body(k, acc):
        return acc.at[k].set(solve(Aj[k], rj[k]))

    looped = jax.jit(lambda: jax.lax.fori_loop(0, 6, body, jnp.zeros((6, n))))()
    assert np.array_equal(np.asarray(looped), single)


def test_size_limits():
    with pytest.raises(ValueError, match="outside"):
        lu_solve_ir(MAX_N + 1, "x")
    with pytest.raises(ValueError, match="outside"):
        lu_solve_ir(0, "x")
