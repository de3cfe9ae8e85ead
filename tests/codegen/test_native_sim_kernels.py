"""The simulator's native kernels: the small dense solve (``va2jax.codegen.native._lu``:
equilibrated LU with partial pivoting, one kernel per ``n``) and the stamping sums
(``_gsum.gather_sum``), called through the XLA FFI.

Expected values: LAPACK (``numpy.linalg.solve``), exact arithmetic where the system is chosen so
that every operation is exact, NaN where LAPACK's ``getrf`` reports a zero pivot, and sums in
plain Python floats in the documented order (bit for bit).
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


# --- gather_sum: the simulator's stamping (sums over a static table) --------------------------

def _reference_sums(tab, acc, src):
    """Left-to-right sums in plain Python floats, then ``+ 0.0`` where the table has a "nothing"
    (the order and the explicit zero of the XLA gathers it replaces)."""
    out = []
    for p in range(tab.shape[1]):
        v = float(acc[p])
        for k in tab[:, p]:
            if k < len(src):
                v = v + float(src[k])
        if np.any(tab[:, p] >= len(src)):
            v = v + 0.0
        out.append(v)
    return np.array(out)


def test_gather_sum_matches_ordered_sums_bit_for_bit():
    from va2jax.codegen.native import gather_sum

    rng = np.random.default_rng(3)
    n_src, size, m = 40, 12, 5
    tab = rng.integers(0, n_src + 1, size=(m, size))  # n_src = "nothing"
    tab = np.sort(tab, axis=0)  # real entries first, as the simulator's tables
    tab[:, 0] = n_src  # a position without contributions
    src = rng.normal(size=n_src) * 10.0 ** rng.integers(-8, 8, size=n_src)  # rounding-sensitive
    acc = rng.normal(size=size)
    acc[0] = -0.0  # stays a zero, turned positive by the explicit + 0.0
    got = np.asarray(gather_sum(tab, n_src)(acc, src))
    ref = _reference_sums(tab, acc, src)
    assert np.array_equal(got.view(np.int64), ref.view(np.int64))
    batched = np.asarray(jax.vmap(gather_sum(tab, n_src))(np.stack([acc, 2 * acc]), np.stack([src, src])))
    assert np.array_equal(batched[1], _reference_sums(tab, 2 * acc, src))


def test_forward_derivatives():
    from va2jax.codegen.native import gather_sum

    rng = np.random.default_rng(11)
    n = 3
    A = rng.normal(size=(n, n)) + 3 * np.eye(n)
    r = rng.normal(size=n)
    dA = rng.normal(size=(n, n))
    dr = rng.normal(size=n)
    _, dx = jax.jvp(dense_solve(n), (A, r), (dA, dr))
    x = np.linalg.solve(A, r)
    ref = np.linalg.solve(A, dr - dA @ x)  # d(A⁻¹r) = A⁻¹(dr − dA·A⁻¹r)
    assert np.allclose(np.asarray(dx), ref, rtol=1e-12, atol=0)  # two solves, rounding only
    tab = np.array([[0, 1], [2, 3]])  # out = acc + [s0 + s2, s1 + 3-is-nothing]
    f = gather_sum(tab, 3)
    _, t = jax.jvp(f, (np.zeros(2), np.ones(3)), (np.array([1.0, 2.0]), np.array([10.0, 20.0, 30.0])))
    assert np.array_equal(np.asarray(t), [41.0, 22.0])


def test_level_sum_starts_from_the_first_term():
    from va2jax.codegen.native._gsum import level_sum

    n_src = 4
    # column 0: s0 + s1; column 1: s2 then "nothing" (+ 0.0); column 2: nothing at all
    tab = np.array([[0, 2, n_src], [1, n_src, n_src]])
    src = np.array([[-0.0, -0.0, -0.0, 5.0], [1e16, 1.0, 3.0, 0.0]])
    got = np.asarray(level_sum(tab, n_src)(src))
    # plain Python: the first term itself (no 0.0 before it), then the others in order
    ref = np.array([[-0.0 + -0.0, -0.0 + 0.0, 0.0], [1e16 + 1.0, 3.0 + 0.0, 0.0]])
    assert np.array_equal(got.view(np.int64), ref.view(np.int64))
