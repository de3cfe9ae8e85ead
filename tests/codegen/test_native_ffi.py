"""The XLA FFI bridge of the native engine (``va2jax.codegen.native._ffi``), on synthetic kernels.

The kernels follow the native ABI (``void k(int64 n, const double *shared, const double *in,
double *out)``) and are written here in LLVM IR, compiled in-process with llvmlite. Expected values
come from calling the same machine code through ctypes (bit for bit: the FFI only moves bytes) or
from the analytic formulas (derivatives).
"""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

jax = pytest.importorskip("jax")
pytest.importorskip("llvmlite")
import jax.numpy as jnp  # noqa: E402 (after the skips)

jax.config.update("jax_enable_x64", True)  # as va2jax.Model does: native kernels are float64

from va2jax.codegen.native import _ffi  # noqa: E402 (after x64 is on)

# Diode: shared = [is, vt]; in = [v, area]; out = [i, g] with
#   i = area·is·(exp(v/vt) − 1)  (A),   g = ∂i/∂v = area·is·exp(v/vt)/vt  (S)
DIODE_IR = r"""
declare double @exp(double)
define void @diode(i64 %n, ptr %sh, ptr %in, ptr %out) {
entry:
  %is = load double, ptr %sh
  %vtp = getelementptr double, ptr %sh, i64 1
  %vt = load double, ptr %vtp
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %done
body:
  %k = mul i64 %i, 2
  %k1 = add i64 %k, 1
  %pv = getelementptr double, ptr %in, i64 %k
  %v = load double, ptr %pv
  %pa = getelementptr double, ptr %in, i64 %k1
  %a = load double, ptr %pa
  %x = fdiv double %v, %vt
  %e = call double @exp(double %x)
  %em1 = fsub double %e, 1.0
  %ais = fmul double %a, %is
  %cur = fmul double %ais, %em1
  %ge = fmul double %ais, %e
  %g = fdiv double %ge, %vt
  %po = getelementptr double, ptr %out, i64 %k
  store double %cur, ptr %po
  %pg = getelementptr double, ptr %out, i64 %k1
  store double %g, ptr %pg
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}
"""

# No shared values: in = [x, y, z]; out = [x·y + z, x / y, log(z)]
MIX_IR = r"""
declare double @log(double)
define void @mix(i64 %n, ptr %sh, ptr %in, ptr %out) {
entry:
  br label %loop
loop:
  %i = phi i64 [0, %entry], [%i1, %body]
  %c = icmp slt i64 %i, %n
  br i1 %c, label %body, label %done
body:
  %k = mul i64 %i, 3
  %px = getelementptr double, ptr %in, i64 %k
  %x = load double, ptr %px
  %py = getelementptr double, ptr %px, i64 1
  %y = load double, ptr %py
  %pz = getelementptr double, ptr %px, i64 2
  %z = load double, ptr %pz
  %xy = fmul double %x, %y
  %o0 = fadd double %xy, %z
  %o1 = fdiv double %x, %y
  %o2 = call double @log(double %z)
  %po = getelementptr double, ptr %out, i64 %k
  store double %o0, ptr %po
  %po1 = getelementptr double, ptr %po, i64 1
  store double %o1, ptr %po1
  %po2 = getelementptr double, ptr %po, i64 2
  store double %o2, ptr %po2
  %i1 = add i64 %i, 1
  br label %loop
done:
  ret void
}
"""

IS, VT = 1e-14, 0.025852
SHARED = np.array([IS, VT])


@pytest.fixture(scope="module")
def kernels():
    addr = _ffi.jit_ir(DIODE_IR + MIX_IR, ["diode", "mix"])
    return addr


def ctypes_eval(address, shared, rows, n_out):
    """The kernel called directly (no JAX): the reference for every bit-exact comparison."""
    shared = np.ascontiguousarray(shared, np.float64)
    rows = np.ascontiguousarray(rows, np.float64)
    out = np.empty((rows.shape[0], n_out))
    _ffi.KERNEL_CFUNCTYPE(address)(rows.shape[0], shared.ctypes.data, rows.ctypes.data, out.ctypes.data)
    return out


def diode_rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-0.5, 0.8, n), rng.uniform(0.5, 2.0, n)], -1)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and np.array_equal(a.view(np.int64), b.view(np.int64))


# ------------------------------------------------------------------------------------------------
# struct layouts


def test_layout_matches_gcc(tmp_path):
    """Every offset, size and *_STRUCT_SIZE the handler uses, and every constant, equals what gcc
    computes from the same c_api.h."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed (only this layout check needs it)")
    h = _ffi.c_header()
    structs = ["XLA_FFI_CallFrame", "XLA_FFI_Extension_Base", "XLA_FFI_Metadata_Extension", "XLA_FFI_Metadata",
               "XLA_FFI_Api_Version", "XLA_FFI_Args", "XLA_FFI_Rets", "XLA_FFI_Attrs", "XLA_FFI_Buffer",
               "XLA_FFI_Api", "XLA_FFI_Error_Create_Args", "XLA_FFI_Error_Destroy_Args",
               "XLA_FFI_ThreadPool_Schedule_Args", "XLA_FFI_ThreadPool_NumThreads_Args"]
    consts = ["XLA_FFI_API_MAJOR", "XLA_FFI_API_MINOR", "XLA_FFI_Extension_Metadata",
              "XLA_FFI_ExecutionStage_EXECUTE", "XLA_FFI_DataType_F64", "XLA_FFI_ArgType_BUFFER",
              "XLA_FFI_RetType_BUFFER", "XLA_FFI_Error_Code_INVALID_ARGUMENT"]
    lines, expected = [], []
    for s in structs:
        lay = h.struct(s)
        lines.append(f'printf("%s size %zu align %zu ss %zu\\n", "{s}", sizeof({s}), _Alignof({s}), '
                     f'(size_t){s}_STRUCT_SIZE);')
        expected.append(f"{s} size {lay.size} align {lay.align} ss {lay.struct_size}")
        for f in lay.fields:
            lines.append(f'printf("%s.%s %zu %zu\\n", "{s}", "{f.name}", offsetof({s}, {f.name}), '
                         f'sizeof((({s}*)0)->{f.name}));')
            expected.append(f"{s}.{f.name} {f.offset} {f.size}")
    for c in consts:
        lines.append(f'printf("%s %lld\\n", "{c}", (long long){c});')
        expected.append(f"{c} {h.const(c)}")
    src = tmp_path / "layout.c"
    src.write_text("#include <stddef.h>\n#include <stdio.h>\n#include \"xla/ffi/api/c_api.h\"\n"
                   "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n")
    exe = tmp_path / "layout"
    subprocess.run([gcc, "-std=c11", "-I", jax.ffi.include_dir(), str(src), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.splitlines()
    assert got == expected


def test_header_parser_rejects_unknown_member():
    h = _ffi.CHeader("struct S { size_t struct_size; mystery_t x; };")
    with pytest.raises(ValueError, match="unknown type 'mystery_t'"):
        h.struct("S")


# ------------------------------------------------------------------------------------------------
# calls under JAX transformations, bit for bit against ctypes


def test_eager_and_jit_equal_ctypes(kernels):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    rows = diode_rows(37)
    ref = ctypes_eval(kernels["diode"], SHARED, rows, 2)
    assert same_bits(call(SHARED, rows), ref)
    assert same_bits(jax.jit(call)(SHARED, rows), ref)
    # leading batch dims and a single row
    assert same_bits(jax.jit(call)(SHARED, rows[:36].reshape(4, 9, 2)), ref[:36].reshape(4, 9, 2))
    assert same_bits(call(SHARED, rows[3]), ref[3])
    assert jax.jit(call)(SHARED, rows[:0]).shape == (0, 2)  # an empty batch is a no-op
    mix = _ffi.native_call(kernels["mix"], 0, 3, 3, label="mix")
    x = np.random.default_rng(1).uniform(0.1, 3.0, (11, 3))
    assert same_bits(jax.jit(mix)(np.zeros(0), x), ctypes_eval(kernels["mix"], np.zeros(0), x, 3))


def _ffi_calls(jaxpr) -> int:
    """Number of ffi_call equations in a (closed) jaxpr, sub-jaxprs included."""
    return str(jaxpr).count("ffi_call[")


def test_vmap_folds_into_one_call(kernels):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    rows = diode_rows(24).reshape(4, 6, 2)
    ref = ctypes_eval(kernels["diode"], SHARED, rows.reshape(-1, 2), 2).reshape(4, 6, 2)
    f = jax.vmap(call, in_axes=(None, 0))
    assert same_bits(jax.jit(f)(SHARED, rows), ref)
    jaxpr = jax.make_jaxpr(f)(SHARED, rows)
    assert _ffi_calls(jaxpr) == 1 and "while" not in str(jaxpr)
    # nested vmap, also on a non-leading axis
    g = jax.vmap(jax.vmap(call, in_axes=(None, 0)), in_axes=(None, 1), out_axes=1)
    assert same_bits(jax.jit(g)(SHARED, rows.reshape(2, 2, 6, 2)), ref.reshape(2, 2, 6, 2))
    assert _ffi_calls(jax.make_jaxpr(g)(SHARED, rows.reshape(2, 2, 6, 2))) == 1


def test_vmap_over_shared(kernels):
    """A mapped ``shared`` cannot fold (one model card per call): one call per mapped element."""
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    shared = np.stack([SHARED, SHARED * [2.0, 1.0], SHARED * [1.0, 1.5]])
    rows = diode_rows(5)
    ref = np.stack([ctypes_eval(kernels["diode"], s, rows, 2) for s in shared])
    assert same_bits(jax.jit(jax.vmap(call, in_axes=(0, None)))(shared, rows), ref)
    rows3 = np.stack([rows, rows[::-1], rows * 0.5])
    ref3 = np.stack([ctypes_eval(kernels["diode"], s, r, 2) for s, r in zip(shared, rows3)])
    assert same_bits(jax.vmap(call)(shared, rows3), ref3)


def _newton_python(address, target, v0, area, tol, max_iter):
    """Solve i(v) = target by Newton with the kernel called through ctypes (IEEE ops only)."""
    v, k = np.float64(v0), 0
    while True:
        out = ctypes_eval(address, SHARED, np.array([[v, area]]), 2)[0]
        dv = (out[0] - target) / out[1]
        v = v - dv
        k += 1
        if not (abs(dv) > tol and k < max_iter):
            return v, k


def test_while_loop_newton_equals_ctypes(kernels):
    """A Newton solve inside ``lax.while_loop`` (no Python in the loop) takes the same iterates,
    bit for bit, as the same loop in Python around the ctypes-called kernel. The loop body has no
    multiply-add pair, so no FMA contraction can make the two sides differ."""
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    target, area, tol, max_iter = 1e-3, 1.5, 1e-15, 100

    def solve(v0):
        def body(c):
            v, _, k = c
            out = call(SHARED, jnp.stack([v, area])[None, :])[0]
            dv = (out[0] - target) / out[1]
            return v - dv, dv, k + 1

        def cond(c):
            return (jnp.abs(c[1]) > tol) & (c[2] < max_iter)
        v, _, k = jax.lax.while_loop(cond, body, body((v0, 0.0, 0)))
        return v, k

    v, k = jax.jit(solve)(0.8)
    v_ref, k_ref = _newton_python(kernels["diode"], target, 0.8, area, tol, max_iter)
    assert int(k) == k_ref and 3 < k_ref < max_iter
    assert same_bits(v, v_ref)
    # vmapped solve: the kernel call folds the batch inside the while loop
    v0s = np.array([0.8, 0.75, 0.9])
    vb, kb = jax.jit(jax.vmap(solve))(v0s)
    for i, v0 in enumerate(v0s):
        vr, kr = _newton_python(kernels["diode"], target, v0, area, tol, max_iter)
        assert same_bits(vb[i], vr) and int(kb[i]) == kr


def test_newton_with_jvp_inside_while_loop(kernels):
    """The derivative for Newton taken by ``jax.jvp`` of the differentiable wrapper inside the loop:
    the tangent for dv = 1 is exactly the kernel's g column, so the iterates are again bit for bit
    those of the Python loop around the ctypes-called kernel."""
    f = _diode(kernels, fallback=None)
    target, area, tol, max_iter = 1e-3, 1.5, 1e-15, 100
    rows = np.array([[0.0, area]])

    def body(c):
        v, _, k = c
        i, di = jax.jvp(lambda vv: f(SHARED, rows, vv)[0, 0], (v,), (jnp.ones_like(v),))
        dv = (i - target) / di
        return v - dv, dv, k + 1

    def solve(v0):
        v0 = jnp.reshape(v0, (1,))
        return jax.lax.while_loop(lambda c: (jnp.abs(c[1]) > tol) & (c[2] < max_iter), body,
                                  body((v0, 0.0, 0)))

    v, _, k = jax.jit(solve)(0.8)
    v_ref, k_ref = _newton_python(kernels["diode"], target, 0.8, area, tol, max_iter)
    assert int(k) == k_ref and same_bits(v[0], v_ref)


def test_scan_and_fori_loop_equal_ctypes(kernels):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    seq = diode_rows(40, seed=3).reshape(10, 4, 2)
    ref = np.stack([ctypes_eval(kernels["diode"], SHARED, r, 2) for r in seq])
    _, ys = jax.jit(lambda xs: jax.lax.scan(lambda c, r: (c, call(SHARED, r)), 0.0, xs))(seq)
    assert same_bits(ys, ref)
    # fori_loop writing row blocks into a carried buffer
    out = jax.jit(lambda xs: jax.lax.fori_loop(
        0, 10, lambda i, acc: acc.at[i].set(call(SHARED, xs[i])), jnp.zeros((10, 4, 2))))(seq)
    assert same_bits(out, ref)


def test_threads_bit_identical_to_one_thread(kernels):
    """Rows split over XLA's thread pool (chunks of >= 1 row) give exactly the single-thread bits;
    an odd row count checks the last partial chunk."""
    rows = diode_rows(10007, seed=5)
    ref = ctypes_eval(kernels["diode"], SHARED, rows, 2)
    one = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode", min_rows_per_task=10**9)
    many = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode", min_rows_per_task=1)
    capped = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode", min_rows_per_task=1, max_threads=1)
    assert len({one.target, many.target, capped.target}) == 3
    r1, rn = jax.jit(one)(SHARED, rows), jax.jit(many)(SHARED, rows)
    assert same_bits(r1, ref) and same_bits(rn, ref) and same_bits(jax.jit(capped)(SHARED, rows), ref)
    # inside a loop too (handler re-entered with the pool in use)
    looped = jax.jit(lambda r: jax.lax.fori_loop(0, 5, lambda i, acc: acc + many(SHARED, r), jnp.zeros_like(r)))
    assert same_bits(looped(rows), jax.jit(lambda r: jax.lax.fori_loop(
        0, 5, lambda i, acc: acc + one(SHARED, r), jnp.zeros_like(r)))(rows))


def test_split_results_equal_column_blocks(kernels):
    """``splits``: one result per column block (a zero-width block included), each exactly the
    block of the one-result call; one thread and split over the pool (chunks longer than the
    handler's stack block of rows, an odd count), under ``jit`` and ``vmap``."""
    rng = np.random.default_rng(9)
    x = np.stack([rng.uniform(0.5, 2, 10007), rng.uniform(0.5, 2, 10007), rng.uniform(0.5, 2, 10007)], -1)
    ref = ctypes_eval(kernels["mix"], np.zeros(0), x, 3)
    blocks = [ref[:, 0:2], ref[:, 2:2], ref[:, 2:3]]
    for min_rows in (10**9, 100):
        call = _ffi.native_call(kernels["mix"], 0, 3, 3, label="mix", min_rows_per_task=min_rows, splits=(2, 0, 1))
        for got in (call(np.zeros(0), x), jax.jit(call)(np.zeros(0), x)):
            assert len(got) == 3 and all(same_bits(g, r) for g, r in zip(got, blocks))
        vm = jax.vmap(call, in_axes=(None, 0))(np.zeros(0), x[:10000].reshape(4, 2500, 3))
        assert all(same_bits(g.reshape(10000, g.shape[-1]), r[:10000]) for g, r in zip(vm, blocks))
    with pytest.raises(ValueError, match="summing to n_out"):
        _ffi.native_call(kernels["mix"], 0, 3, 3, label="mix", splits=(2, 2))


def test_large_result_huge_page_hint_bit_identical(kernels):
    """A result of at least 4 MiB (the handler advises huge pages for it before the kernel
    writes) holds exactly the ctypes bits, one thread and split over the pool, eagerly and
    inside ``jit``; an odd row count leaves the buffer's end off a page boundary."""
    n = (_ffi._HUGE_OUT_BYTES // 16) + 4099  # 2 outputs · 8 bytes per row
    rows = diode_rows(n, seed=6)
    ref = ctypes_eval(kernels["diode"], SHARED, rows, 2)
    for min_rows in (10**9, 1000):
        call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode", min_rows_per_task=min_rows)
        assert same_bits(call(SHARED, rows), ref)
        assert same_bits(jax.jit(call)(SHARED, rows), ref)


# ------------------------------------------------------------------------------------------------
# errors


def test_handler_rejects_wrong_dtype_and_shape(kernels):
    """Called with the wrong buffers (bypassing the Python checks), the handler returns an
    INVALID_ARGUMENT error naming the kernel; nothing crashes."""
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    f32 = jax.ShapeDtypeStruct((3, 2), jnp.float32)
    with pytest.raises(Exception, match=r"native kernel 'diode'.*shared is not float64"):
        jax.ffi.ffi_call(call.target, f32)(SHARED.astype(np.float32), np.zeros((3, 2), np.float32))
    f64 = jax.ShapeDtypeStruct((3, 2), jnp.float64)
    with pytest.raises(Exception, match=r"native kernel 'diode'.*rows do not have 2 columns"):
        jax.ffi.ffi_call(call.target, f64)(SHARED, np.zeros((3, 3)))
    with pytest.raises(Exception, match=r"native kernel 'diode'.*shared does not have 2 elements"):
        jax.ffi.ffi_call(call.target, f64)(np.zeros(3), np.zeros((3, 2)))
    with pytest.raises(Exception, match=r"native kernel 'diode'.*rows is not of rank 2"):
        jax.ffi.ffi_call(call.target, f64)(SHARED, np.zeros(6))
    with pytest.raises(Exception, match=r"native kernel 'diode'.*rows and result differ in length"):
        jax.ffi.ffi_call(call.target, jax.ShapeDtypeStruct((4, 2), jnp.float64))(SHARED, np.zeros((3, 2)))
    with pytest.raises(Exception, match=r"native kernel 'diode'.*number of arguments"):
        jax.ffi.ffi_call(call.target, f64)(SHARED)
    # the process is fine afterwards
    assert same_bits(call(SHARED, diode_rows(3)), ctypes_eval(kernels["diode"], SHARED, diode_rows(3), 2))


def test_wrapper_checks_shapes(kernels):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    with pytest.raises(ValueError, match=r"'diode': rows must have shape \(\.\.\., 2\), got \(4, 3\)"):
        call(SHARED, np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"'diode': shared must have shape \(2,\), got \(3,\)"):
        call(np.zeros(3), np.zeros((4, 2)))
    with pytest.raises(TypeError, match="complex"):
        call(SHARED.astype(complex), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="non-negative integer"):
        _ffi.native_call(kernels["diode"], -1, 2, 2)


# ------------------------------------------------------------------------------------------------
# differentiation


def _diode_jax(shared, rows):
    """The diode in JAX: the fallback for tangents the kernel's Jacobian does not give."""
    i_s, vt = shared[0], shared[1]
    v, area = rows[..., 0], rows[..., 1]
    e = jnp.exp(v / vt)
    return jnp.stack([area * i_s * (e - 1.0), area * i_s * e / vt], -1)


def _diode(kernels, fallback=_diode_jax):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    return _ffi.native_jvp(call, voltage_cols=[0], residual_cols=[0], jacobian=[(0, 0, 1)], fallback=fallback)


# Analytic derivatives computed with NumPy's exp, which may differ from libm's (the kernel's) and
# XLA's by an ulp or two: a relative tolerance of 1e-13 covers that, nothing else.
RTOL = 1e-13


def test_grad_voltage_uses_kernel_jacobian(kernels):
    """d i/d v from the kernel's own g column (no fallback needed), under grad, jacfwd, jacrev,
    jit and vmap."""
    f = _diode(kernels, fallback=None)
    rows = diode_rows(8, seed=7)
    v = rows[:, :1]
    g_kernel = ctypes_eval(kernels["diode"], SHARED, rows, 2)[:, 1]
    g_exact = rows[:, 1] * IS * np.exp(rows[:, 0] / VT) / VT
    grad = jax.jit(jax.grad(lambda v: f(SHARED, rows, v)[:, 0].sum()))(v)[:, 0]
    assert same_bits(grad, g_kernel)  # J·dv with dv = 1: exactly the kernel's g
    np.testing.assert_allclose(grad, g_exact, rtol=RTOL)
    jf = jax.jit(jax.jacfwd(lambda v: f(SHARED, rows, v)[:, 0]))(v)[:, :, 0]
    jr = jax.jit(jax.jacrev(lambda v: f(SHARED, rows, v)[:, 0]))(v)[:, :, 0]
    assert same_bits(jf, np.diag(g_kernel)) and same_bits(jr, np.diag(g_kernel))
    per_row = jax.jit(jax.vmap(jax.grad(lambda vv, r: f(SHARED, r, vv)[0])))(v, rows)
    assert same_bits(per_row[:, 0], g_kernel)
    with pytest.raises(ValueError, match="needs a JAX fallback"):
        jax.grad(lambda s: f(s, rows, v)[:, 0].sum())(SHARED)


def test_grad_parameters_use_fallback(kernels):
    f = _diode(kernels)
    rows = diode_rows(6, seed=8)
    v, area = rows[:, :1], rows[:, 1]
    e = np.exp(rows[:, 0] / VT)
    d_is = jax.jit(jax.grad(lambda s: f(s, rows, v)[:, 0].sum()))(SHARED)
    np.testing.assert_allclose(d_is, [np.sum(area * (e - 1.0)),
                                      np.sum(area * IS * e * (-rows[:, 0] / VT**2))], rtol=RTOL)
    d_area = jax.jit(jax.grad(lambda r: f(SHARED, r, v)[:, 0].sum()))(rows)
    np.testing.assert_allclose(d_area[:, 1], IS * (e - 1.0), rtol=RTOL)
    assert np.all(d_area[:, 0] == 0)  # column 0 is overridden by v
    # both at once, forward mode
    _, t = jax.jit(lambda s, vv, ts, tv: jax.jvp(lambda s, vv: f(s, rows, vv)[:, 0], (s, vv), (ts, tv)))(
        SHARED, v, np.array([1e-15, 0.0]), np.ones_like(v))
    np.testing.assert_allclose(t, 1e-15 * area * (e - 1.0) + area * IS * e / VT, rtol=RTOL)


def test_second_derivative_through_fallback(kernels):
    """d²i/dv² = area·is·exp(v/vt)/vt²: the first derivative comes from the kernel's g column, its
    derivative from the fallback's tangent of that (non-residual) column."""
    f = _diode(kernels)
    rows = diode_rows(3, seed=9)
    h = jax.jit(jax.hessian(lambda v: f(SHARED, rows[:1], v)[0, 0]))(rows[0, :1])
    np.testing.assert_allclose(h[0, 0], rows[0, 1] * IS * np.exp(rows[0, 0] / VT) / VT**2, rtol=RTOL)


def test_jacobian_columns_as_constants_skip_fallback(kernels):
    """With ``differentiate_jacobian=False`` a first derivative w.r.t. v never traces the fallback."""
    def trap(shared, rows):
        raise AssertionError("fallback traced")
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    f = _ffi.native_jvp(call, voltage_cols=[0], residual_cols=[0], jacobian=[(0, 0, 1)], fallback=trap,
                        differentiate_jacobian=False)
    rows = diode_rows(4, seed=10)
    grad = jax.jit(jax.grad(lambda v: f(SHARED, rows, v)[:, 0].sum()))(rows[:, :1])
    assert same_bits(grad[:, 0], ctypes_eval(kernels["diode"], SHARED, rows, 2)[:, 1])
    with pytest.raises(AssertionError, match="fallback traced"):
        jax.grad(lambda s: f(s, rows, rows[:, :1])[:, 0].sum())(SHARED)


def test_kernel_calls_reads_abi_attributes(kernels):
    from types import SimpleNamespace
    k = SimpleNamespace(init_batch_address=kernels["mix"], eval_batch_address=kernels["diode"], n_shared=2,
                        n_in_init=3, n_out_init=3, n_in_eval=2, n_out_eval=2)
    init, ev = _ffi.kernel_calls(k, label="fake")
    rows = diode_rows(5)
    assert same_bits(ev(SHARED, rows), ctypes_eval(kernels["diode"], SHARED, rows, 2))
    x = np.random.default_rng(2).uniform(0.1, 3.0, (4, 3))
    assert same_bits(init(SHARED, x), ctypes_eval(kernels["mix"], SHARED, x, 3))  # mix ignores shared


def test_native_jvp_rejects_bad_jacobian(kernels):
    call = _ffi.native_call(kernels["diode"], 2, 2, 2, label="diode")
    with pytest.raises(ValueError, match="input column 1 is not in voltage_cols"):
        _ffi.native_jvp(call, voltage_cols=[0], residual_cols=[0], jacobian=[(0, 1, 1)])
    with pytest.raises(ValueError, match="output column 1 is not in residual_cols"):
        _ffi.native_jvp(call, voltage_cols=[0], residual_cols=[0], jacobian=[(1, 0, 1)])
