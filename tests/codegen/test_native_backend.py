"""The native backend behind ``Model.eval`` / ``Model.evaluator`` (``codegen/native/_backend.py``).

References: the OSDI library from ``openvaf-r -O0`` (bit-identical expected: same IEEE operations,
same C library calls) and ``Model.eval(..., backend="native")`` itself for the evaluator's
compiled paths (jit, ``lax.while_loop``, ``scan``, ``vmap``, thread pool), which run the same
kernel on the same rows and must give the same bits. No tolerance anywhere in this file.
"""
from __future__ import annotations

import numpy as np
import pytest

from va2jax.codegen import compile_va
from va2jax.errors import Va2JaxError
from va2jax.osdi import compile_va_to_osdi, eval_batch, load_library

OUTPUTS = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react")
ALL = OUTPUTS + ("lim_rhs_resist", "lim_rhs_react", "states")


def _same(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and bool(((a == b) | (np.isnan(a) & np.isnan(b))).all())


@pytest.fixture(scope="module")
def diode(corpus):
    return corpus / "spice" / "diode.va"


def _voltages(model, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    cols = [rng.uniform(-1e-3, 1e-3, n) if k == "BranchCurrent" else rng.uniform(-0.6, 0.9, n)
            for k in model.node_kinds]
    return np.stack(cols, axis=1)


def test_default_backend_is_native_on_cpu(monkeypatch):
    from va2jax.codegen.native._backend import choose_backend

    monkeypatch.delenv("VA2JAX_BACKEND", raising=False)
    assert choose_backend(None) == "native"
    monkeypatch.setenv("VA2JAX_BACKEND", "jax")
    assert choose_backend(None) == "jax"
    assert choose_backend("numpy") == "numpy"  # an explicit argument wins
    with pytest.raises(Va2JaxError, match="unknown backend"):
        choose_backend("cuda")


def test_eval_and_evaluator_equal_osdi_O0(diode, monkeypatch):
    """Default eval (native) and the native evaluator == openvaf-r -O0, per-instance parameters,
    rs = 0 on some instances (node collapsing differs between instances)."""
    monkeypatch.delenv("VA2JAX_BACKEND", raising=False)
    model = compile_va(diode)
    n = 24
    V = _voltages(model, n, 0)
    rs = np.where(np.arange(n) % 3 == 0, 0.0, 5.0)
    is_ = np.geomspace(1e-15, 1e-12, n)
    omod = load_library(compile_va_to_osdi(diode, opt_level=0)).module(model.name)
    ref = eval_batch(omod, V, [{"is": a, "rs": b, "cjo": 1e-12} for a, b in zip(is_, rs)])
    st = model.setup({"is": is_, "rs": rs, "cjo": 1e-12})
    got = model.eval(st, V).as_dict()  # the default backend
    nat = model.eval(st, V, backend="native").as_dict()
    ev = model.evaluator(st)(V)
    ev_dev = model.evaluator(st, backend="native")(__import__("jax").numpy.asarray(V))
    for o in OUTPUTS:
        assert _same(got[o], ref[o]), o
    for o in ALL:
        assert _same(got[o], nat[o]) and _same(ev[o], nat[o]) and _same(ev_dev[o], nat[o]), o


def test_one_instance_at_many_points(diode):
    """A one-instance state evaluated at m operating points (eval and evaluator broadcast it)."""
    model = compile_va(diode)
    V = _voltages(model, 6, 1)
    st = model.setup({"is": 2e-14, "rs": 3.0})
    a = model.eval(st, V, backend="native").as_dict()
    b = model.evaluator(st, backend="native")(V)
    c = model.eval(model.setup({"is": np.full(6, 2e-14), "rs": 3.0}), V, backend="native").as_dict()
    for o in ALL:
        assert _same(a[o], c[o]) and _same(b[o], c[o]), o


def test_dense_kernel_equals_numpy_assembly(diode):
    """``eval_dense`` writes the dense outputs itself — one table shared by all instances (equal
    node collapsing) or one per instance (rs = 0 on some) — equal bit for bit to the kernel's
    sparse columns assembled by the NumPy backend's own code (``Model._batch_assemble``), for
    every output: residuals, Jacobians, limiting RHS (with limiting active), states and the
    validation scales (|x| of the collapsed sums)."""
    from va2jax.codegen._state import eval_inputs
    from va2jax.codegen.native._kernel import eval_model

    model = compile_va(diode)
    n = 9
    rng = np.random.default_rng(5)
    V = rng.uniform(-0.5, 1.5, (n, len(model.nodes)))
    ps = rng.uniform(-0.2, 0.8, (n, model.num_states))
    model.request_scales(True)
    try:
        for rs in (np.where(np.arange(n) % 3 == 0, 0.0, 5.0), np.zeros(n), np.full(n, 5.0)):
            st = model.setup({"is": np.geomspace(1e-15, 1e-12, n), "rs": rs})
            inp = eval_inputs(st, V, flags=0, num_states=model.num_states, prev_state=ps, enable_lim=True)
            ref = eval_model(model, inp, st.sp, n)
            out = model.eval(st, V, analysis=0, prev_state=ps, enable_lim=True, backend="native")
            got = {**out.as_dict(), **{"scale_" + k: v for k, v in out.scales.items()}}
            assert np.any(ref["lim_rhs_resist"] != 0)  # limiting is active at these points
            assert set(got) == set(ref)
            for o in ref:
                assert _same(got[o], ref[o]), (o, rs[0])
    finally:
        model.request_scales(False)


def test_limiting_evaluator_equals_eval(diode):
    """evaluator(limiting=True): prev_state and enable_lim per call == eval(prev_state=…)."""
    model = compile_va(diode)
    rng = np.random.default_rng(11)
    V = rng.uniform(-0.5, 1.5, (5, len(model.nodes)))
    ps = rng.uniform(-0.2, 0.8, (5, model.num_states))
    st = model.setup({"is": np.full(5, 3e-14), "rs": np.full(5, 2.0)})
    f = model.evaluator(st, analysis="tran", limiting=True, backend="native")
    for enable in (True, False):
        ref = model.eval(st, V, analysis="tran", prev_state=ps, enable_lim=enable, backend="native").as_dict()
        if enable:
            assert np.any(ref["lim_rhs_resist"] != 0)  # limiting is active at these points
        got = f(V, ps, enable)
        for o in ALL:
            assert _same(got[o], ref[o]), (o, enable)


def test_evaluator_under_jit_while_loop_scan_vmap(diode):
    """The native evaluator called inside jit, lax.while_loop, lax.scan and vmap gives the bits
    of eager calls (one XLA FFI call of the kernel per evaluation)."""
    import jax
    import jax.numpy as jnp

    model = compile_va(diode)
    nb = 4
    st = model.setup({"is": np.full(nb, 1e-14), "rs": np.full(nb, 1.0)})
    f = model.evaluator(st, backend="native")
    Vs = np.stack([_voltages(model, nb, s) for s in range(5)])  # 5 steps × nb × n

    eager = [f(V) for V in Vs]
    jitted = jax.jit(f)(jnp.asarray(Vs[2]))
    for o in ALL:
        assert _same(jitted[o], eager[2][o]), o

    _, scanned = jax.lax.scan(lambda c, V: (c, f(V)["residual_resist"]), 0, jnp.asarray(Vs))
    assert _same(scanned, np.stack([e["residual_resist"] for e in eager]))

    mapped = jax.vmap(f)(jnp.asarray(Vs))
    assert _same(mapped["jacobian_resist"], np.stack([e["jacobian_resist"] for e in eager]))

    # a damped fixed-point iteration V ← V − 1e-3·r(V), 7 steps, in a while_loop and eagerly
    def step(V):
        return V - 1e-3 * f(V)["residual_resist"]

    def loop(V):
        return jax.lax.while_loop(lambda c: c[0] < 7, lambda c: (c[0] + 1, step(c[1])), (0, V))[1]

    got = jax.jit(loop)(jnp.asarray(Vs[0]))
    V = Vs[0]
    for _ in range(7):
        V = V - 1e-3 * np.asarray(model.eval(st, V, backend="native").residual_resist)
    assert _same(got, V)


def test_threads_bit_identical_psp103(corpus, monkeypatch):
    """PSP103, 2,048 instances with different geometries: the evaluator inside ``jax.jit`` (XLA's
    thread pool splits the rows) and called eagerly (ctypes, the rows split over 3 threads of
    va2jax's own pool) equal ``eval`` with one thread (the kernel called once through ctypes)."""
    import jax

    from va2jax.codegen.native import _backend as nb
    from va2jax.codegen.native._backend import min_rows_per_task

    model = compile_va(corpus / "psp103v4" / "psp103.va")
    n = 2048
    rng = np.random.default_rng(4)
    p = {"type": 1, "w": rng.uniform(0.5e-6, 5e-6, n), "l": rng.uniform(0.1e-6, 1e-6, n)}
    st = model.setup(p)
    V = rng.uniform(-0.3, 1.2, (n, len(model.nodes)))
    assert n >= 4 * min_rows_per_task(model)  # big enough to be split
    monkeypatch.setattr(nb, "_threads", lambda: 3)  # read when the evaluator is built
    f = model.evaluator(st, backend="native")
    in_jit = jax.jit(f)(V)
    eager = f(V)  # n · size · 8 bytes ≥ 1 MiB: the ctypes path
    monkeypatch.setattr(nb, "_threads", lambda: 1)
    ref = model.eval(st, V, backend="native").as_dict()  # one ctypes call: one thread
    for o in ALL:
        assert _same(in_jit[o], ref[o]), o
        assert _same(eager[o], ref[o]), o


def test_thread_limit_and_reused_outputs(diode, monkeypatch):
    """``VA2JAX_NATIVE_THREADS=1`` (never split) and 3 threads give the same bits, eagerly
    (ctypes) and inside ``jax.jit`` (XLA's pool); the eager evaluator writes a large result into
    the buffer of an earlier call only once all of that call's outputs are gone: a result still
    held keeps its values."""
    import gc

    import jax

    from va2jax.codegen.native._backend import min_rows_per_task

    model = compile_va(diode)
    n = 20_000
    st = model.setup({"is": np.geomspace(1e-15, 1e-12, n), "rs": np.where(np.arange(n) % 3, 5.0, 0.0)})
    assert n >= 8 * min_rows_per_task(model)  # split into several chunks
    V1, V2 = _voltages(model, n, 7), _voltages(model, n, 8)
    monkeypatch.setenv("VA2JAX_NATIVE_THREADS", "1")
    one = model.evaluator(st, backend="native")
    ref1 = {k: np.array(v) for k, v in one(V1).items()}
    ref2 = {k: np.array(v) for k, v in one(V2).items()}
    assert sum(v.nbytes for v in ref1.values()) >= 1 << 20  # jit: the split-result FFI call
    jit1 = jax.jit(one)(V1)
    monkeypatch.setenv("VA2JAX_NATIVE_THREADS", "3")
    many = model.evaluator(st, backend="native")
    jitn = jax.jit(many)(V2)
    for o in ALL:
        assert _same(jit1[o], ref1[o]) and _same(jitn[o], ref2[o]), o
    kept = many(V1)  # held while the next call runs
    second = many(V2)
    assert not np.shares_memory(kept["jacobian_resist"], second["jacobian_resist"])
    for o in ALL:
        assert _same(kept[o], ref1[o]) and _same(second[o], ref2[o]), o
    address = second["residual_resist"].__array_interface__["data"][0]
    del kept, second
    gc.collect()
    third = many(V1)  # the memory of an earlier, released result
    assert third["residual_resist"].__array_interface__["data"][0] == address  # residuals come first
    for o in ALL:
        assert _same(third[o], ref1[o]), o


def test_evaluator_rejects_bad_shapes(diode):
    model = compile_va(diode)
    f = model.evaluator(model.setup({"is": np.full(3, 1e-14)}), backend="native")
    with pytest.raises(Va2JaxError, match="evaluator expects"):
        f(np.zeros((3, 2)))
    with pytest.raises(Va2JaxError, match="operating points for 3 instances"):
        f(np.zeros((4, len(model.nodes))))
    with pytest.raises(Va2JaxError, match="not 'numpy'"):
        model.evaluator(model.setup({}), backend="numpy")


def test_function_native_values_and_derivatives(diode):
    """Model.function on the native backend: values bit for bit those of the native eval (and of
    OSDI -O0); d/dV from the kernel's Jacobian (jacfwd and jacrev equal OSDI's Jacobian exactly);
    d/dparameter and d/dT (native tangent kernels) against central finite differences of OSDI, relative
    ≤ 1e-6 (the finite-difference truncation error at these steps is ≈ 1e-8 relative)."""
    import jax

    model = compile_va(diode)
    ref = load_library(compile_va_to_osdi(diode, opt_level=0)).module(model.name)
    fixed = {"cjo": 1e-12, "rs": 10.0}
    x = {"is": 1e-14, "n": 1.05}
    fn = model.function(list(x), fixed=fixed, backend="native")
    V = np.zeros(len(model.nodes))
    V[model.nodes.index("a")] = 0.7
    V[model.nodes.index("a_int")] = 0.62
    c = model.nodes.index("c")
    out = fn(x, 300.15, V)
    osdi = ref.instance({**fixed, **x}, temperature=300.15).eval(V)
    assert _same(out["residual_resist"], osdi.residual_resist)
    assert _same(out["jacobian_resist"], osdi.jacobian_resist)
    assert _same(jax.jacfwd(lambda v: fn(x, 300.15, v)["residual_resist"])(V), osdi.jacobian_resist)
    assert _same(jax.jacrev(lambda v: fn(x, 300.15, v)["residual_resist"])(V), osdi.jacobian_resist)

    def current(p, T):
        return fn(p, T, V)["residual_resist"][c]

    g_p, g_T = jax.jit(jax.grad(current, argnums=(0, 1)))(x, 300.15)

    def osdi_current(p, T):
        return ref.instance({**fixed, **p}, temperature=T).eval(V).residual_resist[c]

    for k in x:
        h = x[k] * 1e-5
        fd = (osdi_current({**x, k: x[k] + h}, 300.15) - osdi_current({**x, k: x[k] - h}, 300.15)) / (2 * h)
        assert float(g_p[k]) == pytest.approx(fd, rel=1e-6), k
    h = 1e-3
    fdT = (osdi_current(x, 300.15 + h) - osdi_current(x, 300.15 - h)) / (2 * h)
    assert float(g_T) == pytest.approx(fdT, rel=1e-6)
