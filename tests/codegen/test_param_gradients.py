"""Parameter gradients: gradient-safe branches and loops, reverse and forward mode (issue #7).

Expected numbers come from the OSDI library (values; central finite differences with Richardson
extrapolation for derivatives) or from the analytic derivative of the small test model.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from va2jax._paths import corpus_dir

HERE = Path(__file__).resolve().parent
GUARD_VA = HERE.parent / "data" / "va" / "gradguard.va"
CORPUS = corpus_dir()
needs_corpus = pytest.mark.skipif(not (CORPUS / "bosdi").is_dir(), reason="corpus not fetched (make corpus)")


def richardson(f: Callable[[float], float], x: float, h: float) -> float:
    """Central difference with one Richardson step: (4 D(h/2) − D(h)) / 3, error O(h⁴)."""
    def d(s: float) -> float:
        return (f(x + s) - f(x - s)) / (2 * s)
    return (4 * d(h / 2) - d(h)) / 3


# --------------------------------------------------------------------------------------------
# the small test model: analytic values and derivatives
# --------------------------------------------------------------------------------------------
def _guard_current(p: float, q: float, n: int, v: float) -> tuple[float, float, float, float]:
    """I(a,c) of gradguard.va and its exact derivatives (dI/dp, dI/dq, dI/dv)."""
    if p > 0:
        g, dg = np.sqrt(p) * np.log(p) + 1.0, (np.log(p) / 2 + 1.0) / np.sqrt(p)
    else:
        g, dg = np.sqrt(-p) + 1.0 / (-p) + np.log(-p), -0.5 / np.sqrt(-p) + 1.0 / p**2 + 1.0 / p
    h = np.exp(q)
    s = sum(p**k / k for k in range(1, n + 1))
    ds = sum(p ** (k - 1) for k in range(1, n + 1))
    sv = np.sqrt(abs(v))
    r = np.sign(v) * sv
    i = g * r + h * v + 1e-3 * s * v
    return i, dg * r + 1e-3 * ds * v, h * v, g / (2 * sv) + h + 1e-3 * s


@pytest.fixture(scope="module")
def guard_model():
    from va2jax.codegen import compile_va

    return compile_va(GUARD_VA)


@pytest.mark.parametrize("p", [2.0, -2.0])
@pytest.mark.parametrize("v", [0.3, -0.3])
def test_untaken_branches_give_finite_exact_gradients(guard_model, p, v):
    """sqrt/ln of a negative number, 1/0 and exp overflow on the untaken side of each branch
    (setup and eval), and a loop in setup: reverse and forward mode equal the analytic
    derivative; the value equals the OSDI library's."""
    import jax

    from va2jax.osdi import compile_va_to_osdi, load_library

    m = guard_model
    fn = m.function(["p", "q"], fixed={"n": 4})
    V = np.array([v, 0.0])

    def current(x, T):
        return fn(x, T, V)["residual_resist"][0]

    x = {"p": p, "q": 1.0}
    i, di_dp, di_dq, _ = _guard_current(p, 1.0, 4, v)
    ref = load_library(compile_va_to_osdi(GUARD_VA, opt_level=0)).module(m.name)
    osdi = ref.instance({"p": p, "q": 1.0, "n": 4}, temperature=300.0).eval(V).residual_resist[0]
    assert float(current(x, 300.0)) == pytest.approx(osdi, rel=1e-14, abs=0)
    assert osdi == pytest.approx(i, rel=1e-13)
    for grad in (jax.grad, jax.jacfwd):
        gp, gT = grad(current, argnums=(0, 1))(x, 300.0)
        assert float(gp["p"]) == pytest.approx(di_dp, rel=1e-12), grad
        assert float(gp["q"]) == pytest.approx(di_dq, rel=1e-12), grad
        assert float(gT) == 0.0


def test_guards_keep_reverse_mode_finite_and_values_identical(guard_model):
    """The same generated eval differentiated in reverse mode with respect to the voltage: NaN
    from sqrt(−v) on the untaken side with the normal runtime, the exact dI/dv with the
    gradient-safe one — and bit-identical outputs from both."""
    import jax

    m = guard_model
    state = m.setup({"p": 2.0, "q": 1.0, "n": 4}, temperature=300.0)
    di_dv = _guard_current(2.0, 1.0, 4, 0.3)[3]
    V = jax.numpy.array([[0.3, 0.0], [-0.3, 0.0]])

    def current(V, safe):
        return m.eval_traceable(state, V[None, :], gradient_safe=safe)["residual_resist"][0, 0]

    for v, _sign in ((V[0], 1), (V[1], -1)):
        raw = jax.grad(current)(v, False)
        safe = jax.grad(current)(v, True)
        assert np.isnan(float(raw[0]))
        assert float(safe[0]) == pytest.approx(di_dv, rel=1e-12)
        assert float(safe[1]) == pytest.approx(-di_dv, rel=1e-12)
        assert float(current(v, True)) == float(current(v, False)) != 0.0
    a = m.eval_traceable(state, V, gradient_safe=False)
    b = m.eval_traceable(state, V, gradient_safe=True)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


def test_loop_beyond_its_bound_gives_nan(guard_model, monkeypatch):
    """In gradient-safe mode loops run a bounded number of iterations; a lane that has not
    finished by then is NaN rather than wrong."""
    from va2jax.codegen import _rt_grad

    fn = guard_model.function(["p"], fixed={"n": 4, "q": 1.0}, backend="jax")  # the JAX runtime's bound
    V = np.array([0.3, 0.0])
    ok = float(fn({"p": 2.0}, 300.0, V)["residual_resist"][0])
    assert ok == pytest.approx(_guard_current(2.0, 1.0, 4, 0.3)[0], rel=1e-13)
    monkeypatch.setattr(_rt_grad, "MAX_LOOP_ITERATIONS", 3)  # the loop needs 5 (k = 1..4, then exit)
    assert np.isnan(float(fn({"p": 2.0}, 300.0, V)["residual_resist"][0]))


# --------------------------------------------------------------------------------------------
# production models vs finite differences of the OSDI library
# --------------------------------------------------------------------------------------------
def _check_against_osdi(path, fixed, x, steps, bias, outputs, T=300.15, rel=1e-6, reverse=False):
    """jacfwd (and optionally jax.grad) of ``outputs`` [(kind, node)] at each bias point vs
    Richardson-extrapolated central differences of the OSDI library.

    ``x``: parameter → value, ``steps``: parameter (or "T") → step; ``bias``: list of
    {terminal: voltage}; internal nodes take their terminal's voltage (see _voltages)."""
    import jax

    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, load_library

    m = compile_va(path)
    ref = load_library(compile_va_to_osdi(path, opt_level=0)).module(m.name)
    fn = m.function(list(x), fixed=fixed)
    Vs = np.array([_voltages(m.nodes, b) for b in bias])
    idx = [(kind, m.nodes.index(node)) for kind, node in outputs]

    def outs(p, T, V):
        r = fn(p, T, V)
        return jax.numpy.stack([r[kind][i] for kind, i in idx])

    vals = jax.vmap(outs, in_axes=(None, None, 0))(x, T, Vs)
    jac = jax.vmap(jax.jacfwd(outs, argnums=(0, 1)), in_axes=(None, None, 0))(x, T, Vs)
    if reverse:
        gr = [jax.vmap(jax.grad(lambda p, T, V, k=k: outs(p, T, V)[k], argnums=(0, 1)),
                       in_axes=(None, None, 0))(x, T, Vs) for k in range(len(idx))]

    def osdi(p, T, V):
        r = ref.instance({**fixed, **p}, temperature=T).eval(V)
        return np.array([getattr(r, kind)[i] for kind, i in idx])

    report = []
    for b, V in enumerate(Vs):
        np.testing.assert_allclose(np.asarray(vals[b]), osdi(x, T, V), rtol=1e-12, atol=0)
        for name in [*x, "T"]:
            if name == "T":
                ad = np.asarray(jac[1][b])
                fd = richardson(lambda t: osdi(x, t, V), T, steps["T"])
            else:
                ad = np.asarray(jac[0][name][b])
                fd = richardson(lambda s: osdi({**x, name: s}, T, V), x[name], steps[name])
            assert np.all(np.isfinite(ad)), (name, ad)
            # relative ≤ rel, except derivatives at the level of the differences' rounding noise
            # (≈ eps·|f|/h; bounded by 1e-12·|f|/|x|): PSP103's dQg/dUO in linear operation is
            # −1.3960e-22 C with AD; OSDI differences give −1.3963e-22, −1.3992e-22, −1.3704e-22
            # for h = 1e-2, 1e-3, 1e-4 × UO (|Qg| = 1.7e-13 C, noise ~1e-24)
            scale = np.abs(osdi(x, T, V)) / abs(T if name == "T" else x[name])
            err = np.abs(ad - fd) / np.maximum(np.abs(fd), 1e-300)
            report.append((b, name, ad, fd, err))
            assert np.all((err <= rel) | (np.abs(ad - fd) <= 1e-12 * scale)), (bias[b], name, ad, fd, err)
            if reverse:
                rv = np.array([np.asarray(gr[k][1][b] if name == "T" else gr[k][0][name][b])
                               for k in range(len(idx))])
                np.testing.assert_allclose(rv, ad, rtol=1e-12, atol=0)
    return report


def _voltages(nodes, bias):
    """Terminal voltages from ``bias``; an internal node takes the voltage of the terminal it
    belongs to (same first letter: DI → D, GP → G, SI → S, BP/BI/BS/BD → B); others 0."""
    V = np.zeros(len(nodes))
    terms = {k.lower(): v for k, v in bias.items()}
    for i, nd in enumerate(nodes):
        name = nd.lower()
        if name.startswith("flow") or name.startswith("noi"):
            continue
        if name in terms:
            V[i] = terms[name]
        elif name[0] in terms:
            V[i] = terms[name[0]]
    return V


SAT = {"d": 1.0, "g": 1.0, "s": 0.0, "b": 0.0}
LIN = {"d": 0.05, "g": 1.2, "s": 0.0, "b": -0.3}


@needs_corpus
def test_psp103_parameter_gradients_vs_osdi():
    """PSP103: d(drain current, gate charge)/d(TOXO, VFBO, UO, W, T) in saturation and linear
    operation, forward mode, vs OSDI central differences (relative ≤ 1e-6)."""
    x = {"TOXO": 1.5e-9, "VFBO": -1.0, "UO": 0.035, "W": 1e-5}
    steps = {"TOXO": 1.5e-12, "VFBO": 1e-3, "UO": 3.5e-5, "W": 1e-8, "T": 0.5}
    _check_against_osdi(CORPUS / "bosdi/psp103v4/psp103.va", {"TYPE": 1, "L": 1e-6}, x, steps,
                        [SAT, LIN], [("residual_resist", "D"), ("residual_react", "G")])


@needs_corpus
@pytest.mark.slow
def test_bsim4_parameter_gradients_vs_osdi():
    """BSIM4: d(drain current, gate charge)/d(vth0, u0, toxe, l, T), saturation and linear
    operation, forward mode, vs OSDI central differences (relative ≤ 1e-6)."""
    x = {"vth0": 0.4, "u0": 0.04, "toxe": 2e-9, "l": 1e-6}
    steps = {"vth0": 1e-3, "u0": 4e-5, "toxe": 2e-12, "l": 1e-9, "T": 0.5}
    _check_against_osdi(CORPUS / "bosdi/bsim4v8.va", {"w": 1e-5}, x, steps,
                        [SAT, LIN], [("residual_resist", "d"), ("residual_react", "g")])


@needs_corpus
@pytest.mark.slow
def test_spice_diode_reverse_mode_through_setup_loop_vs_osdi():
    """SPICE diode with a breakdown voltage: setup's breakdown-voltage iteration is a loop;
    jax.grad (reverse mode) goes through it and equals jacfwd and OSDI central differences.

    Not asserted in breakdown (−4.9 V): there the current depends on the iterate the loop stops
    at, which is not smooth at small scales — OSDI's central differences of d/d is vary with the
    step (−4.2583, −4.2615, −4.2532, −4.2754 for h = 1e-2, 1e-3, 1e-4, 1e-5 × is) around AD's
    −4.25825."""
    x = {"is": 1e-14, "n": 1.05, "bv": 5.0}
    steps = {"is": 1e-17, "n": 1e-3, "bv": 1e-3, "T": 0.5}
    fixed = {"cjo": 1e-12, "rs": 10.0, "ibv": 1e-4}
    bias = [{"a": 0.7, "c": 0.0}, {"a": -0.3, "c": 0.0}]
    _check_against_osdi(CORPUS / "bosdi/spice/diode.va", fixed, x, steps, bias,
                        [("residual_resist", "c"), ("residual_react", "a")], reverse=True)


# --------------------------------------------------------------------------------------------
# integer parameters: Model.function equals Model.eval, gradients vs OSDI
# --------------------------------------------------------------------------------------------
def _function_vs_eval_and_osdi(path, fixed, x, steps, bias, outputs, rel=1e-6, T=300.15):
    """For both backends: ``Model.function`` (parameters ``x`` as arguments, ``fixed`` among them
    integer parameters) gives exactly :meth:`Model.eval`'s outputs, and ``jax.grad`` of each of
    ``outputs`` with respect to each of ``x`` is within ``rel`` of Richardson-extrapolated OSDI
    central differences (steps ``steps``)."""
    import jax

    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, load_library

    m = compile_va(path)
    ref = load_library(compile_va_to_osdi(path, opt_level=0)).module(m.name)
    for b in bias:
        V = _voltages(m.nodes, b)
        state = m.setup({**fixed, **x}, temperature=T)
        fd = {}
        for name in x:
            def osdi(s, name=name):
                r = ref.instance({**fixed, **x, name: s}, temperature=T).eval(V)
                return np.array([getattr(r, kind)[m.nodes.index(nd)] for kind, nd in outputs])
            fd[name] = richardson(osdi, x[name], steps[name])
        for backend in ("jax", "native"):
            fn = m.function(list(x), fixed=fixed, backend=backend)
            got = fn(x, T, V)
            want = m.eval(state, V[None, :], backend="native")
            for k in ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react"):
                # native: the kernel Model.eval runs, bit for bit; JAX: XLA's CPU kernels and
                # fusion can change the last bit (1 ulp between this function and the jit-compiled
                # JAX eval in BSIM3's Jacobian), far below 1e-12
                np.testing.assert_allclose(np.asarray(got[k]), np.asarray(getattr(want, k))[0],
                                           rtol=0 if backend == "native" else 1e-12, atol=0,
                                           err_msg=f"{backend} {k} {b}")
            for j, (kind, nd) in enumerate(outputs):
                i = m.nodes.index(nd)
                g = jax.grad(lambda p, kind=kind, i=i: fn(p, T, V)[kind][i])(x)
                for name in x:
                    # Richardson differences are accurate to ~1e-9 relative here; 1e-6 leaves room
                    # for their rounding noise (≈ eps·|f|/h) on small derivatives
                    assert float(g[name]) == pytest.approx(fd[name][j], rel=rel), (backend, b, kind, name)


@needs_corpus
def test_function_spice_diode_vs_eval_and_osdi():
    """SPICE diode (integer parameters level/tlev/tlevc at their defaults and given): values
    equal Model.eval exactly; d/d is and d/d n by reverse mode vs OSDI differences."""
    _function_vs_eval_and_osdi(
        CORPUS / "bosdi/spice/diode.va", {"level": 1, "tlev": 1, "rs": 10.0, "cjo": 1e-12},
        {"is": 1e-14, "n": 1.05}, {"is": 1e-17, "n": 1e-3},
        [{"a": 0.7, "c": 0.0}, {"a": -0.3, "c": 0.0}], [("residual_resist", "c"), ("residual_react", "a")])


@needs_corpus
def test_function_bsim3_integer_parameters_vs_eval_and_osdi():
    """BSIM3v3: eval reads the integer parameter noimod (default 1) directly — it used to reach
    the generated code as float64 (``lax.eq`` float64/int32 error); with type/mobmod/capmod
    given, values equal Model.eval exactly and d(Id, Qg)/d vth0 vs OSDI differences."""
    fixed = {"type": 1, "mobmod": 2, "capmod": 2, "w": 1e-5, "l": 1e-6}
    _function_vs_eval_and_osdi(CORPUS / "bosdi/bsim3v3.va", fixed, {"vth0": 0.45}, {"vth0": 1e-3},
                               [SAT], [("residual_resist", "d"), ("residual_react", "g")])


@needs_corpus
def test_function_integer_parameter_as_argument():
    """An integer parameter among the function's arguments selects the same branch as in
    Model.eval (int32 inside; its derivative is 0)."""
    import jax

    from va2jax.codegen import compile_va

    m = compile_va(CORPUS / "bosdi/bsim3v3.va")
    V = _voltages(m.nodes, LIN)  # mobmod 1 and 3 differ only with a body bias
    fixed = {"w": 1e-5, "l": 1e-6}
    fn = m.function(["mobmod", "vth0"], fixed=fixed, backend="jax")
    seen = set()
    for mob in (1, 2, 3):
        want = m.eval(m.setup({**fixed, "mobmod": mob, "vth0": 0.45}), V[None, :]).residual_resist[0]
        got = fn({"mobmod": mob, "vth0": 0.45}, 300.15, V)["residual_resist"]
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=0)  # last bit, as above
        seen.add(float(want[m.nodes.index("d")]))
        g = jax.grad(lambda p: fn(p, 300.15, V)["residual_resist"][0])({"mobmod": float(mob), "vth0": 0.45})
        assert float(g["mobmod"]) == 0.0
    assert len(seen) == 3  # the three mobility models give three currents
