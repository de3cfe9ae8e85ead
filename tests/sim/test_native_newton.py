"""The whole Newton solve as one native kernel (``codegen/native/_newton.py``, the CPU default where
every device group is native) against the XLA loop of ``engine.make_newton`` it replaces
(``VA2JAX_SIM_NATIVE_NEWTON=0``): the same operations in the same order, so the same iterate,
iteration count, status, residual and residual reference bit for bit; only the charge update
``q + Jq·Δx`` is a dot product that XLA's CPU gemv sums in another order (last-bit differences).
VACASK's own answers for these circuits are checked in test_vacask_suite.py."""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import suite

from va2jax.codegen import FUSION_OFF
from va2jax.sim import Simulation
from va2jax.sim._resref import ResRef
from va2jax.sim.engine import make_newton, native_newton

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the native Newton kernel is CPU code")

FIELDS = ("x", "iterations", "converged", "singular", "q", "F", "r", "slot charges")


@pytest.fixture(scope="module")
def graetz(tmp_path_factory):
    """VACASK's suite graetz bridge (4 SPICE diodes with pnjlim limiting, 9 unknowns)."""
    return Simulation.from_file(suite.prepare("graetz", tmp_path_factory.mktemp("graetz"), stop="200u"))


def _both(sim, monkeypatch, resref="sum", jit=True):
    """The XLA loop and the native kernel with residual reference ``resref`` (make_newton picks
    the kernel where ``VA2JAX_SIM_NATIVE_NEWTON`` allows it)."""
    eng = sim.engine
    opts = dataclasses.replace(eng.opts, nr_resref=resref)
    monkeypatch.setenv("VA2JAX_SIM_NATIVE_NEWTON", "0")
    xla = make_newton(eng.sys, opts)
    monkeypatch.setenv("VA2JAX_SIM_NATIVE_NEWTON", "1")
    native = make_newton(eng.sys, opts)
    assert native.native is not None and native.resref == xla.resref == resref
    if not jit:
        return xla, native
    # the XLA loop unfused (FUSION_OFF): fused XLA code on a CPU with FMA contracts ``a*b + c``
    # into one rounding, the kernel never does; unfused, each operation rounds once on any CPU
    return jax.jit(xla, compiler_options=FUSION_OFF), jax.jit(native)


def _compare(xla, a, b, args, eng):
    """``a`` (XLA loop) and ``b`` (native) equal, ``q`` within the rounding of its dot products."""
    for name, u, v in zip(FIELDS, a, b):
        u, v = np.asarray(u), np.asarray(v)
        if name != "q":
            np.testing.assert_array_equal(u, v, err_msg=name)
    # q = C·x + stamps + Jq·Δx (last iterate x, last update Δx): XLA's CPU gemv adds the products
    # of its two dot products in another order than the kernel's sequential sums. Either order is
    # within n·eps·Σ|terms| of the exact sum (the standard dot-product bound), so the two within
    # twice that, per dot product
    it = int(a[1])
    prev = np.asarray(xla(*args[:5], it - 1, *args[6:])[0]) if it > 1 else np.asarray(args[0])
    dx = np.asarray(a[0]) - prev
    _, q, _, Jq = eng.jacobians(prev)
    n = len(dx)
    terms = np.abs(np.asarray(eng.sys.C)) @ np.abs(prev) + np.abs(Jq) @ np.abs(dx) + np.abs(q)
    assert np.all(np.abs(np.asarray(b[4]) - np.asarray(a[4])) <= 4 * n * np.finfo(float).eps * terms), "q"


def test_graetz_solves_equal_the_xla_loop(graetz, monkeypatch):
    xla, native = _both(graetz, monkeypatch)
    sysm = graetz.engine.sys
    n = sysm.n
    b = jnp.asarray(sysm.source_vector(0.0))
    z = jnp.zeros(n)
    dc = (jnp.zeros(n), b, 0.0, z, 0.0, 100, 2.0)
    r_x, r_n = xla(*dc), native(*dc)
    assert bool(r_x[2]) and int(r_x[1]) >= 2
    _compare(xla, r_x, r_n, dc, graetz.engine)
    # a transient solve from a perturbed start: limiting, dvmax clipping and the tolerance
    # references of past points all take part
    xop = np.asarray(r_x[0])
    q = graetz.engine.jacobians(xop)[1]
    rng = np.random.default_rng(1)
    for a0, kick in ((1e6, 0.5), (2e7, 3.0), (1e4, 0.01)):
        x0 = jnp.asarray(xop + kick * rng.standard_normal(n))
        tr = (x0, b, a0, jnp.asarray(-a0 * q), 0.0, 50, 2.0, jnp.abs(jnp.asarray(xop)), jnp.full(n, 1e-6))
        _compare(xla, xla(*tr), native(*tr), tr, graetz.engine)
    # gmin stepping's shunt
    gm = (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)
    _compare(xla, xla(*gm), native(*gm), gm, graetz.engine)


def test_graetz_device_reference_equals_the_xla_loop(graetz, monkeypatch):
    """VACASK's per-element reference (``nr_resref="device"``) in the kernel: each instance's own
    ``f + lim_f`` and ``q + lim_q`` from its dense local outputs, the linear elements' own sums in
    the order of ``ResRef``'s segment sums, the slots' flows ``a0·q_e + ehist_e``, the
    device-internal rows unchecked. Iterate, counts, ``F``, the reference and the slots' charges
    bit for bit, ``q`` within the rounding of its dot products (:func:`_compare`). The transient
    solves as the step loop calls them (``keep_input``, ``ehist``) and without ``keep_input``."""
    xla, native = _both(graetz, monkeypatch, "device", jit=False)
    eng = graetz.engine
    n = eng.sys.n
    K = native.n_slots
    assert K == xla.n_slots > 0
    b = jnp.asarray(eng.sys.source_vector(0.0))
    z = jnp.zeros(n)
    X, N = jax.jit(xla, compiler_options=FUSION_OFF), jax.jit(native)
    for args in ((jnp.zeros(n), b, 0.0, z, 0.0, 100, 2.0), (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)):
        r_x = X(*args)
        assert bool(r_x[2])
        _compare(X, r_x, N(*args), args, eng)
    xop = np.asarray(X(jnp.zeros(n), b, 0.0, z, 0.0, 100, 2.0)[0])
    q = eng.jacobians(xop)[1]
    qe = np.asarray(jax.jit(native.slot_charges)(jnp.asarray(xop)))
    np.testing.assert_array_equal(qe, np.asarray(jax.jit(xla.slot_charges)(jnp.asarray(xop))))
    rng = np.random.default_rng(1)
    for keep in (True, False):
        def run(f, *args, eh, keep=keep):
            return f(*args, ehist=eh, keep_input=keep)

        X1 = jax.jit(lambda *a, eh: run(xla, *a, eh=eh), compiler_options=FUSION_OFF)
        N1 = jax.jit(lambda *a, eh: run(native, *a, eh=eh))
        for a0, kick in ((1e6, 0.5), (2e7, 3.0), (1e4, 0.01)):
            x0 = jnp.asarray(xop + kick * rng.standard_normal(n))
            tr = (x0, b, a0, jnp.asarray(-a0 * q), 0.0, 50, 2.0, jnp.abs(jnp.asarray(xop)), jnp.full(n, 1e-6))
            eh = jnp.asarray(-a0 * qe)
            r_x, r_n = X1(*tr, eh=eh), N1(*tr, eh=eh)
            assert len(r_x) == len(r_n) == 8 and r_x[7].shape == (K,)
            _compare(lambda *a, eh=eh, f=X1: f(*a, eh=eh), r_x, r_n, tr, eng)


def test_auto_reference_is_device_under_vacask_control(graetz):
    """``nr_resref="auto"``: VACASK's reference under VACASK's step control (graetz: dense, the
    native kernel) and on the sparse path; the reference from the sums only for a dense circuit
    under ngspice's step control."""
    from va2jax.sim.engine import residual_reference

    eng = graetz.engine
    assert eng.opts.nr_resref == "auto" and eng.opts.tran_control == "vacask"
    assert residual_reference(eng.sys, eng.opts) == "device"
    ng = dataclasses.replace(eng.opts, tran_control="ngspice")
    assert residual_reference(eng.sys, ng) == "sum"
    assert residual_reference(eng.sys, dataclasses.replace(ng, solver="klu")) == "device"
    assert eng.newton.resref == "device" and eng.newton.native is not None


def test_native_newton_under_vmap(graetz, monkeypatch):
    """Lanes of a vmapped solve are rows of one kernel call, each its own Newton loop (its own
    iteration count), equal to the solve of that lane alone."""
    _, native = _both(graetz, monkeypatch)
    sysm = graetz.engine.sys
    n = sysm.n
    b = jnp.asarray(sysm.source_vector(0.0))
    z = jnp.zeros(n)
    x0 = jnp.asarray(np.random.default_rng(2).uniform(-5, 5, (4, n)))
    batched = jax.vmap(lambda x: native(x, b, 0.0, z, 0.0, 100, 2.0))(x0)
    its = set()
    for i in range(4):
        one = native(x0[i], b, 0.0, z, 0.0, 100, 2.0)
        for name, u, v in zip(FIELDS, batched, one):
            np.testing.assert_array_equal(np.asarray(u)[i], np.asarray(v), err_msg=f"lane {i} {name}")
        its.add(int(one[1]))
    assert len(its) > 1  # the lanes did not run in lock step


def test_graetz_transient_native_equals_xla(graetz, tmp_path, monkeypatch):
    """The whole transient: the same time points and Newton iterations; waveforms equal within
    rounding (the charge update's last bits enter the integration history)."""
    res = {}
    for mode in ("0", "1"):
        monkeypatch.setenv("VA2JAX_SIM_NATIVE_NEWTON", mode)
        sim = Simulation.from_file(suite.prepare("graetz", tmp_path / mode, stop="200u"))
        res[mode] = sim.run()["tran1"]
    a, b = res["0"], res["1"]
    assert a.stats.points == b.stats.points and a.stats.newton_iterations == b.stats.newton_iterations
    np.testing.assert_array_equal(np.asarray(a.scale), np.asarray(b.scale))
    # the last bits of q enter the integration history, and Newton's iterate is only determined
    # to its convergence tolerance (reltol·|x| + vntol): the two runs' converged points may differ
    # within it — required here to stay below vntol (1 µV) alone
    np.testing.assert_allclose(np.asarray(b.data), np.asarray(a.data), rtol=0, atol=1e-6)


@pytest.fixture(scope="module")
def ring(tmp_path_factory):
    """VACASK's suite ring oscillator: 9 PSP103 inverters, 47 unknowns (the sparse kernel's case)."""
    return Simulation.from_file(suite.prepare("ring", tmp_path_factory.mktemp("ring"), stop="1n"))


def _kernels(sim, monkeypatch, device=False, jit=True):
    eng = sim.engine
    out = {}
    for matrix in ("dense", "sparse"):
        monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", matrix)
        out[matrix] = native_newton(eng.sys, eng.opts, device=device)
        assert out[matrix] is not None
    if not jit:
        return out["dense"], out["sparse"]
    return jax.jit(out["dense"]), jax.jit(out["sparse"])


def test_ring_sparse_kernel_equals_dense(ring, monkeypatch):
    """The sparse kernel (stamps, equilibration and the dot products over the Jacobian's pattern,
    a small part of its 47² entries; the same partially pivoted LU) against the dense one at the ring's
    operating point, with gmin stepping's shunt, and on transient solves from perturbed starts.
    Exact equality, no tolerance: every sum it skips adds a product with a structural zero
    (``s + 0·v = s`` for finite ``v``), every maximum it skips is over zeros, the quotients it
    skips are ``0/s = 0``, and what it computes is the same operations in the same order (no
    fast-math, no FMA contraction in either kernel), so no rounding differs on any CPU."""
    dense, sparse = _kernels(ring, monkeypatch)
    eng = ring.engine
    n = eng.sys.n
    b = jnp.asarray(eng.sys.source_vector(0.0))
    z = jnp.zeros(n)
    gm = (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)  # gmin stepping's first solve
    r_d, r_s = dense(*gm), sparse(*gm)
    assert bool(r_d[2])
    for name, u, v in zip(FIELDS, r_d, r_s):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"gshunt {name}")
    op = (r_d[0], b, 0.0, z, 0.0, 100, 2.0)
    r_d, r_s = dense(*op), sparse(*op)
    assert bool(r_d[2]) and int(r_d[1]) >= 2
    for name, u, v in zip(FIELDS, r_d, r_s):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"op {name}")
    xop = np.asarray(r_d[0])
    q = eng.jacobians(xop)[1]
    rng = np.random.default_rng(3)
    for a0, kick in ((3e10, 0.05), (1e11, 0.3), (1e9, 1.0)):
        x0 = jnp.asarray(xop + kick * rng.standard_normal(n))
        tr = (x0, b, a0, jnp.asarray(-a0 * q), 0.0, 10, 2.0, jnp.abs(jnp.asarray(xop)), jnp.full(n, 1e-6))
        r_d, r_s = dense(*tr), sparse(*tr)
        assert int(r_d[1]) >= 2
        for name, u, v in zip(FIELDS, r_d, r_s):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"a0={a0} {name}")


def test_ring_sparse_kernel_equals_dense_device_reference(ring, monkeypatch):
    """The same with VACASK's per-element reference (``nr_resref="device"``: the slots' flows
    from a history ``ehist``, the slots' charges returned): exactly, for the same reasons — the
    reference reads the instances' dense local outputs, which the sparse kernel leaves 0 exactly
    where the dense one sums no term."""
    dense, sparse = _kernels(ring, monkeypatch, device=True, jit=False)
    eng = ring.engine
    n = eng.sys.n
    b = jnp.asarray(eng.sys.source_vector(0.0))
    z = jnp.zeros(n)
    op = (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)
    r_d, r_s = jax.jit(dense)(*op), jax.jit(sparse)(*op)
    assert bool(r_d[2])
    for name, u, v in zip(FIELDS, r_d, r_s):
        np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"op {name}")
    xop = np.asarray(r_d[0])
    q = eng.jacobians(xop)[1]
    rng = np.random.default_rng(3)
    for keep in (True, False):
        d1 = jax.jit(lambda *a, eh, f=dense, k=keep: f(*a, ehist=eh, keep_input=k))
        s1 = jax.jit(lambda *a, eh, f=sparse, k=keep: f(*a, ehist=eh, keep_input=k))
        qe = d1(jnp.asarray(xop), b, 0.0, z, 0.0, 1, 2.0, eh=jnp.zeros(ResRef(eng.sys).size))[7]
        for a0, kick in ((3e10, 0.05), (1e11, 0.3)):
            x0 = jnp.asarray(xop + kick * rng.standard_normal(n))
            tr = (x0, b, a0, jnp.asarray(-a0 * q), 0.0, 10, 2.0, jnp.abs(jnp.asarray(xop)), jnp.full(n, 1e-6))
            r_d, r_s = d1(*tr, eh=-a0 * qe), s1(*tr, eh=-a0 * qe)
            assert int(r_d[1]) >= 2 and len(r_d) == 8
            for name, u, v in zip(FIELDS, r_d, r_s):
                np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=f"{keep} a0={a0} {name}")


def test_graetz_sparse_kernel_equals_dense(graetz, monkeypatch):
    """The sparse kernel forced on graetz (SPICE diodes with ``pnjlim``: the limiting states and
    the limiting right-hand side's stamps go through it too) equals the dense one exactly, for
    the reasons of ``test_ring_sparse_kernel_equals_dense``."""
    dense, sparse = _kernels(graetz, monkeypatch)
    eng = graetz.engine
    n = eng.sys.n
    b = jnp.asarray(eng.sys.source_vector(0.0))
    z = jnp.zeros(n)
    dc = (jnp.zeros(n), b, 0.0, z, 0.0, 100, 2.0)
    r_d = dense(*dc)
    assert bool(r_d[2])
    cases = [dc, (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)]
    xop = np.asarray(r_d[0])
    q = eng.jacobians(xop)[1]
    rng = np.random.default_rng(1)
    for a0, kick in ((1e6, 0.5), (2e7, 3.0), (1e4, 0.01)):
        x0 = jnp.asarray(xop + kick * rng.standard_normal(n))
        cases.append((x0, b, a0, jnp.asarray(-a0 * q), 0.0, 50, 2.0, jnp.abs(jnp.asarray(xop)), jnp.full(n, 1e-6)))
    for args in cases:
        for name, u, v in zip(FIELDS, dense(*args), sparse(*args)):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=name)


def test_sparse_kernel_by_size(ring, graetz, monkeypatch):
    """Unset, every size gets the sparse kernel (the ring's 47 unknowns and graetz's 9: bit-identical
    to the dense one, tests above); the variable forces either."""
    from va2jax.codegen.native._newton import use_sparse_kernel

    monkeypatch.delenv("VA2JAX_SIM_NEWTON_MATRIX", raising=False)
    assert use_sparse_kernel(ring.engine.sys.n) and use_sparse_kernel(graetz.engine.sys.n)
    assert use_sparse_kernel(3)
    monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", "dense")
    assert not use_sparse_kernel(47) and not use_sparse_kernel(9)
    monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", "sparse")
    assert use_sparse_kernel(9)


def test_ring_sparse_kernel_with_traced_g(ring, monkeypatch):
    """``G`` known only at run time (a batched sweep's): the sparse kernel on the nominal circuit's
    pattern, and where ``G`` has a non-zero outside it (a coupling the nominal circuit lacks) its
    dense fallback — both equal to the dense kernel of the same ``G`` (exactly: the first for the
    reasons of ``test_ring_sparse_kernel_equals_dense``, the second is that kernel)."""
    import dataclasses

    from va2jax.codegen.native._newton import jacobian_pattern

    eng = ring.engine
    sysm, n = eng.sys, eng.sys.n
    b = jnp.asarray(sysm.source_vector(0.0))
    z = jnp.zeros(n)
    G0 = np.asarray(sysm.G)
    # an entry outside the kernel's pattern (between two nodes no element connects)
    import va2jax.codegen.native as nat

    seen = {}
    make = nat.make_native_newton

    def spy(n_, G, C, groups, tabs, *a, **k):
        seen["pattern"] = jacobian_pattern(n_, np.asarray(G), np.asarray(C), groups, tabs[2])
        return make(n_, G, C, groups, tabs, *a, **k)

    monkeypatch.setattr(nat, "make_native_newton", spy)
    monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", "sparse")
    native_newton(sysm, eng.opts)
    monkeypatch.setattr(nat, "make_native_newton", make)
    free = np.argwhere(~seen["pattern"])
    assert free.size
    i, j = map(int, free[0])
    G1 = G0.copy()
    G1[i, j] = -1e-3
    G1[i, i] += 1e-3
    args = (jnp.zeros(n), b, 0.0, z, 1e-3, 100, 2.0)
    for Gv in (G0, G1):
        monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", "sparse")
        traced = jax.jit(lambda G: native_newton(sysm, eng.opts, dataclasses.replace(sysm, G=G))(*args))(
            jnp.asarray(Gv))
        monkeypatch.setenv("VA2JAX_SIM_NEWTON_MATRIX", "dense")
        ref = jax.jit(native_newton(dataclasses.replace(sysm, G=Gv), eng.opts))(*args)
        assert bool(ref[2])
        for name, u, v in zip(FIELDS, ref, traced):
            np.testing.assert_array_equal(np.asarray(u), np.asarray(v), err_msg=name)
