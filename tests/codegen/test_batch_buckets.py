"""A new batch size inside a padded bucket (powers of two) reuses the compiled eval: no lowering."""
from __future__ import annotations

import numpy as np

_LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"


class _LoweringCounter:
    """Counts JAX lowerings (one per compilation request, cache hit or not) while active."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event == _LOWER_EVENT:
            self.count += 1

    def __enter__(self) -> "_LoweringCounter":
        import jax

        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc) -> None:
        from jax._src import monitoring

        monitoring.unregister_event_duration_listener(self)


def test_batch_sizes_in_one_bucket_share_the_compiled_eval(corpus, monkeypatch):
    from va2jax import compile_va

    monkeypatch.setenv("VA2JAX_EXE_CACHE", "0")  # every executable compiled here, none loaded

    model = compile_va(corpus / "spice" / "diode.va")
    rng = np.random.default_rng(1)

    def run(n: int) -> int:
        state = model.setup({"is": np.full(n, 1e-14)})
        V = rng.uniform(-0.5, 0.7, (n, len(model.nodes)))
        with _LoweringCounter() as c:
            out = model.eval(state, V, backend="jax")
        assert out.residual_resist.shape == (n, len(model.nodes))
        return c.count

    assert run(5) >= 1  # bucket 8: compiled (or loaded) now
    assert run(6) == 0  # same bucket: the executable is reused
    assert run(8) == 0
    assert run(9) >= 1  # bucket 16: a new compilation


def test_fusion_only_for_large_buckets(monkeypatch):
    from va2jax.codegen import _xla as _model  # XLA configuration lives in _xla

    monkeypatch.delenv("VA2JAX_XLA_FUSION", raising=False)
    monkeypatch.setattr(_model, "FUSE_MIN_BATCH", 1024)
    monkeypatch.setattr(_model, "_FUSION_EXACT", True)
    unfused = {"xla_disable_hlo_passes": "fusion,cpu-instruction-fusion,multi_output_fusion"}
    assert _model._compiler_options(512) == unfused
    assert _model._compiler_options(1024) == {"xla_disable_hlo_passes": ""}
    monkeypatch.setattr(_model, "FUSE_MIN_BATCH", 0)
    assert _model._compiler_options(1 << 20) == unfused
    monkeypatch.setattr(_model, "FUSE_MIN_BATCH", 1024)
    monkeypatch.setattr(_model, "_FUSION_EXACT", False)  # fusion would contract a*b+c: stay unfused
    assert _model._compiler_options(1 << 20) == unfused
    monkeypatch.setenv("VA2JAX_XLA_FUSION", "1")  # the user asks for fused model code: every bucket
    assert _model._compiler_options(1) == {"xla_disable_hlo_passes": ""}


def test_accelerators_always_fuse(monkeypatch):
    """On a GPU an unfused eval is one kernel launch per operation: every bucket is fused there
    (unless VA2JAX_GPU_FUSION=0), whatever the CPU rule says."""
    from va2jax.codegen import _xla as _model  # XLA configuration lives in _xla

    monkeypatch.delenv("VA2JAX_XLA_FUSION", raising=False)
    monkeypatch.setattr(_model, "_FUSION_EXACT", False)
    assert _model._compiler_options(1, "gpu") == _model.FUSION_ON
    assert _model._compiler_options(1, "cpu") == _model.FUSION_OFF
    monkeypatch.setattr(_model, "GPU_FUSION", False)
    assert _model._compiler_options(1 << 20, "gpu") == _model.FUSION_OFF


def test_cached_jit_options_follow_the_target_platform():
    """Options given as a function are resolved for the platform each compilation targets."""
    import jax
    import numpy as np

    from va2jax.codegen._exe_cache import CachedJit

    seen = []

    def opts(platform):
        seen.append(platform)
        return None

    f = CachedJit(lambda x: x * 2.0, None, opts)
    with jax.default_device(jax.devices("cpu")[0]):
        np.testing.assert_array_equal(np.asarray(f(np.arange(3.0))), [0.0, 2.0, 4.0])
    assert seen and set(seen) == {"cpu"}


def test_cached_jit_same_executable_inside_a_callback():
    """``jax.pure_callback`` runs its callback under ``jax.default_device(cpu:0)``: a CachedJit
    compiled outside (no default device) must reuse its executable there, not trace, lower and
    compile again (the simulator calls split models' evaluators from its Newton loop this way)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from va2jax.codegen._exe_cache import CachedJit, device_key

    traces = []

    def fn(x):
        traces.append(1)
        return x * 2.0

    f = CachedJit(fn, None)
    x = np.arange(3.0)
    np.testing.assert_array_equal(np.asarray(f(x)), [0.0, 2.0, 4.0])
    dev = jax.devices()[0]
    assert device_key() == f"{dev.platform}:{dev.id}"
    with jax.default_device(dev):
        assert device_key() == f"{dev.platform}:{dev.id}"
        f(x)
    with jax.default_device(dev.platform):
        f(x)

    def cb(v):
        assert f.ready()
        return np.asarray(f(v))

    out = jax.jit(lambda v: jax.pure_callback(cb, jax.ShapeDtypeStruct((3,), jnp.float64), v))(x)
    np.testing.assert_array_equal(np.asarray(out), [0.0, 2.0, 4.0])
    assert len(traces) == 1
