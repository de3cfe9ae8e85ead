"""A second process (here: a second Model from the cache) loads compiled executables from disk."""
from __future__ import annotations

import numpy as np

_LOWER_EVENT = "/jax/core/compile/jaxpr_to_mlir_module_duration"


def _lowerings(fn) -> tuple[int, object]:
    import jax
    from jax._src import monitoring

    seen = []

    def listen(event: str, duration: float, **kwargs) -> None:
        if event == _LOWER_EVENT:
            seen.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        res = fn()
    finally:
        monitoring.unregister_event_duration_listener(listen)
    return len(seen), res


def test_cached_executable_is_loaded_without_lowering(corpus):
    from va2jax import compile_va

    path = corpus / "spice" / "diode.va"
    first = compile_va(path)
    V = np.random.default_rng(3).uniform(-0.5, 0.7, (3, len(first.nodes)))
    n1, out1 = _lowerings(lambda: first.eval(first.setup({"is": np.full(3, 2e-14)}), V, backend="jax"))
    again = compile_va(path)  # a fresh Model: nothing compiled in memory
    assert again is not first and not again._eval_jit
    n2, out2 = _lowerings(lambda: again.eval(again.setup({"is": np.full(3, 2e-14)}), V, backend="jax"))
    assert n1 >= 1 and n2 == 0
    for k, v in out1.as_dict().items():
        assert np.array_equal(np.asarray(v), np.asarray(out2.as_dict()[k])), k


def test_code_objects_are_cached(corpus):
    from va2jax import compile_va

    m = compile_va(corpus / "spice" / "diode.va")
    assert m._module is not None and m._np  # both runtimes execute the module (made when first needed)
    names = sorted(p.name for p in m.source_path.parent.iterdir())
    assert any(n.startswith("jax.") and n.endswith(".code") for n in names), names
    assert any(n.startswith("numpy.") and n.endswith(".code") for n in names), names


def test_split_eval_and_evaluator_agree_with_unsplit(corpus, monkeypatch):
    """Eval split into parts (each a cached executable) equals the one-piece eval bit for bit."""
    from va2jax import compile_va
    from va2jax.codegen import _generate

    path = corpus / "spice" / "diode.va"
    whole = compile_va(path)
    monkeypatch.setattr(_generate, "PART_SIZE", 200)
    split = compile_va(path)
    assert hasattr(split._module, "EVAL_PARTS") and not hasattr(whole._module, "EVAL_PARTS")
    V = np.random.default_rng(5).uniform(-0.5, 0.7, (5, len(whole.nodes)))
    p = {"is": np.full(5, 3e-14), "cjo": np.full(5, 1e-12)}
    ref = whole.eval(whole.setup(p), V, backend="jax").as_dict()
    got = split.eval(split.setup(p), V, backend="jax").as_dict()
    ev = split.evaluator(split.setup(p), backend="jax")(V)
    import jax.numpy as jnp

    # V already a JAX (device) array: used as is, padded on the device (5 → bucket 8)
    ev_dev = split.evaluator(split.setup(p), backend="jax")(jnp.asarray(V))
    ev_whole = whole.evaluator(whole.setup(p), backend="jax")(jnp.asarray(V))
    for k in ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react"):
        assert np.array_equal(np.asarray(ref[k]), np.asarray(got[k])), k
        assert np.array_equal(np.asarray(ref[k]), np.asarray(ev[k])), k
        assert np.array_equal(np.asarray(ref[k]), np.asarray(ev_dev[k])), k
        assert np.array_equal(np.asarray(ref[k]), np.asarray(ev_whole[k])), k


_STORE_TWICE = r"""
import sys, numpy as np
import va2jax.codegen._xla as m
jax = m._jax()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
import jax.numpy as jnp
from va2jax.codegen._exe_cache import CachedJit

def f(x):
    for k in range(40):
        x = jnp.sin(x) * 1.5 + jnp.cos(x * 0.5)
    return x

x = jnp.linspace(0.0, 1.0, 16)
# two pieces wrapping the same function under different keys: each is compiled under its own name
# (an executable JAX takes from its in-memory or persistent cache must never be stored)
a = CachedJit(f, sys.argv[1] + ":a")(x)
b = CachedJit(f, sys.argv[1] + ":b")(x)
print(float(jnp.sum(a)), float(jnp.sum(b)))
"""

_LOAD_ALL = r"""
import glob, pickle, sys
import va2jax.codegen._xla as m
jax = m._jax()
import jax.numpy as jnp
from jax.experimental import serialize_executable as se
from va2jax.codegen._code_cache import read_verified
for p in glob.glob(sys.argv[1] + "/exe/*.bin"):
    payload, it, ot = pickle.loads(read_verified(p))  # None (a TypeError) if damaged
    exe = se.deserialize_and_load(payload, it, ot)
    jax.block_until_ready(exe(jnp.linspace(0.0, 1.0, 16)))  # raises if kernels are missing
print(len(glob.glob(sys.argv[1] + "/exe/*.bin")))
"""


def test_only_fresh_compilations_are_stored(tmp_path):
    """JAX's in-memory and persistent caches hand back executables whose kernels do not serialise;
    storing one made every later process fail with 'Function … not found'."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "VA2JAX_CACHE": str(tmp_path)}
    env.pop("XLA_FLAGS", None)

    def run(code: str, *args: str) -> str:
        return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True,
                              text=True, timeout=300, check=True).stdout.split()

    first = run(_STORE_TWICE, "k1")  # fresh process: a and b (other keys) both compiled fresh
    assert run(_LOAD_ALL, str(tmp_path)) == ["2"]  # both stored, and both load and run
    for p in (tmp_path / "exe").glob("*.bin"):
        p.unlink()
    # JAX's persistent cache holds both, but under the old keys' names: new keys (as after an
    # upgrade) compile fresh and are stored, instead of coming from JAX's cache in every process
    again = run(_STORE_TWICE, "k2")
    assert again == first
    assert run(_LOAD_ALL, str(tmp_path)) == ["2"]
    again = run(_STORE_TWICE, "k1")  # the first keys once more: JAX's cache hits, nothing stored
    assert again == first
    assert run(_LOAD_ALL, str(tmp_path)) == ["2"]


def test_limiting_evaluator_matches_eval(corpus, monkeypatch):
    """evaluator(limiting=True): previous $limit states and enable_lim per call, split or not, give
    what eval(prev_state=…, enable_lim=…) gives — limiting RHS and new states included."""
    from va2jax import compile_va
    from va2jax.codegen import _generate

    path = corpus / "spice" / "diode.va"
    whole = compile_va(path)
    monkeypatch.setattr(_generate, "PART_SIZE", 200)
    split = compile_va(path)
    assert whole.num_states > 0 and hasattr(split._module, "EVAL_PARTS")
    rng = np.random.default_rng(11)
    V = rng.uniform(-0.5, 1.5, (5, len(whole.nodes)))
    ps = rng.uniform(-0.2, 0.8, (5, whole.num_states))
    p = {"is": np.full(5, 3e-14), "rs": np.full(5, 2.0)}
    for enable in (True, False):
        ref = whole.eval(whole.setup(p), V, analysis="tran", prev_state=ps, enable_lim=enable,
                         backend="jax").as_dict()
        if enable:
            assert np.any(np.asarray(ref["lim_rhs_resist"]) != 0)  # limiting is active at these points
        for m in (whole, split):
            got = m.evaluator(m.setup(p), analysis="tran", limiting=True, backend="jax")(V, ps, enable)
            for k in ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react",
                      "lim_rhs_resist", "lim_rhs_react", "states"):
                assert np.array_equal(np.asarray(ref[k]), np.asarray(got[k])), (k, enable)
