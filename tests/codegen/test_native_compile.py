"""Compiling for the native backend: no Python module and no JAX on the NumPy-in/NumPy-out path,
the artifacts of ``va2jax compile --native`` loaded back (and refused when damaged or foreign),
and the metadata setup needs taken from the IR without generating code.

References: OSDI libraries built by ``openvaf-r -O0`` (exact: same IEEE operations in MIR order),
and for the artifacts the kernel built in this process from the same source (same object code).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from va2jax.errors import Va2JaxError

REPO = Path(__file__).resolve().parents[2]
VA_DIR = REPO / "tests" / "data" / "va"
OUTPUTS = ("residual_resist", "residual_react", "jacobian_resist", "jacobian_react")

# The worker: compile, set up and evaluate with the defaults (native on a CPU), NumPy in and out;
# reports whether JAX was imported and whether the Python module was generated.
WORKER = r"""
import json, sys
import numpy as np
from va2jax import compile_va
m = compile_va(sys.argv[1])
V = np.load(sys.argv[2])
out = m.eval(m.setup({}, temperature=np.full(len(V), 300.15)), V).as_dict()
np.savez(sys.argv[3], **out)
print(json.dumps({"jax": "jax" in sys.modules, "generated": "gen" in m.__dict__,
                  "model_py": m.source_path.is_file()}))
"""


def _env(cache: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "VA2JAX_"))}
    return dict(env, VA2JAX_CACHE=str(cache),
                PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _same(a, b) -> bool:
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)


def test_numpy_eval_imports_neither_jax_nor_the_python_module(tmp_path):
    """``.va`` → ``setup`` → ``eval`` on a CPU, empty caches and then filled ones: JAX is never
    imported and the Python/JAX module never generated; the results equal openvaf-r -O0's."""
    from va2jax.osdi import compile_va_to_osdi, eval_batch, load_library

    va = VA_DIR / "nodes.va"
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(0)
    V = np.random.default_rng(3).uniform(-1.0, 1.0, (16, omod.num_nodes))
    np.save(tmp_path / "v.npy", V)
    ref = eval_batch(omod, V, {}, temperature=300.15)
    for run in ("cold", "warm"):
        r = subprocess.run([sys.executable, "-c", WORKER, str(va), str(tmp_path / "v.npy"),
                            str(tmp_path / f"{run}.npz")], capture_output=True, text=True, timeout=600,
                           env=_env(tmp_path / "cache"))
        assert r.returncode == 0, r.stderr
        rep = json.loads(r.stdout.strip().splitlines()[-1])
        assert rep == {"jax": False, "generated": False, "model_py": False}, (run, rep)
        out = np.load(tmp_path / f"{run}.npz")
        for o in OUTPUTS:
            assert _same(out[o], ref[o]), (run, o)


def test_python_module_is_generated_when_asked_for(tmp_path, monkeypatch):
    """The lazily generated module is the one ``generate`` gives, and it is stored in the cache
    entry: a later process gets it (and ``model.py``) from there."""
    from va2jax.codegen import compile_va, generate
    from va2jax.mir import load_modules

    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path / "cache"))
    va = VA_DIR / "control.va"
    m = compile_va(va)
    assert "gen" not in m.__dict__ and not m.source_path.exists()
    want = generate(load_modules(va, [], {})[0]).source
    assert m.source == want
    assert m.source_path.read_text() == want
    again = compile_va(va)  # slim IR from the entry, with the generated module this time
    assert not again.ir.eval.blocks and "gen" in again.__dict__ and again.source == want


@pytest.mark.parametrize("name", ["bounds.va", "control.va", "nodes.va"])
def test_flags_and_strings_without_generating(name):
    """Setup's bound-check flags and string ids from the IR equal the generator's."""
    from va2jax.codegen._generate import generate, init_flags, string_ids
    from va2jax.mir import load_modules

    ir = load_modules(VA_DIR / name, [], {})[0]
    gen = generate(ir)
    assert init_flags(ir) == gen.flags
    assert string_ids(ir) == gen.strings


STRINGS_VA = """`include "disciplines.vams"
module strsel(A, B);
  inout A, B; electrical A, B;
  parameter string mode = "m";
  real g;
  analog begin
    g = (mode == "zz") ? 4.0 : (mode == "q") ? 3.0 : (mode == "b") ? 2.0 : 1.0;
    I(A, B) <+ g * 1e-3 * V(A, B);
  end
endmodule
"""


@pytest.mark.parametrize("mode", ["zz", "m", "b", "q"])
def test_string_parameter_native_setup_matches_osdi(tmp_path, monkeypatch, mode):
    """A string parameter compared with several constants in the native init: the parameter's id
    and the constants' ids come from one table (they came from two, the kernel's in openvaf-py's
    hash-map order, so a given string could select another branch). Reference: OSDI -O0."""
    from va2jax.codegen import compile_va
    from va2jax.osdi import compile_va_to_osdi, eval_batch, load_library

    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path / "cache"))
    va = tmp_path / "strsel.va"
    va.write_text(STRINGS_VA)
    m = compile_va(va)
    V = np.array([[0.7, -0.2], [0.1, 0.4]])
    ref = eval_batch(load_library(compile_va_to_osdi(va, opt_level=0)).module(0), V, {"mode": mode})
    out = m.eval(m.setup({"mode": mode}, backend="native"), V, backend="native").as_dict()
    for o in OUTPUTS:
        assert _same(out[o], ref[o]), o


def _compile_native(va: Path, out: Path, cache: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "va2jax.cli", "compile", str(va), "-o", str(out), "--native"],
                       capture_output=True, text=True, timeout=600, env=_env(cache))
    assert r.returncode == 0, r.stderr


def test_compiled_native_artifact_loads_and_equals_in_process_kernel(tmp_path, monkeypatch):
    """``va2jax compile --native`` output, loaded back in another process (this one), runs init
    and eval to the same bits as the kernel this process builds from the source."""
    from va2jax.codegen import compile_va
    from va2jax.codegen.native import load_artifact, model_kernel

    va = VA_DIR / "nodes.va"
    _compile_native(va, tmp_path, tmp_path / "cli-cache")
    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path / "cache"))
    m = compile_va(va)
    k = model_kernel(m)
    loaded = load_artifact(tmp_path / f"{m.name}.native.json")
    assert loaded.eval_in_names == k.eval_in_names and loaded.eval_out_names == k.eval_out_names
    assert loaded.init_in_names == k.init_in_names and loaded.init_out_names == k.init_out_names
    rng = np.random.default_rng(5)
    shared = k.shared_values({})
    st = m.setup({}, temperature=np.full(8, 300.15), backend="native")
    irows = rng.uniform(0.5, 2.0, (8, k.n_in_init))
    assert _same(loaded.init(shared, irows), k.init(shared, irows))
    erows = rng.uniform(-1.0, 1.0, (8, k.n_in_eval))
    erows[:, -1] = 2048  # analysis: OSDI's static-resistive bit
    assert _same(loaded.eval(shared, erows), k.eval(shared, erows))
    assert st.labels.shape == (8, len(m.nodes))


def _damage(folder: Path, how: str) -> Path:
    (js,) = folder.glob("*.native.json")
    obj = js.with_suffix(".o")
    if how == "object byte":
        data = bytearray(obj.read_bytes())
        data[len(data) // 2] ^= 0x01
        obj.write_bytes(bytes(data))
    elif how == "object truncated":
        obj.write_bytes(obj.read_bytes()[:-16])
    elif how == "object missing":
        obj.unlink()
    elif how == "foreign host":
        meta = json.loads(js.read_text())
        meta["host"] = "riscv64-unknown-linux-gnu|generic|+m"
        js.write_text(json.dumps(meta))
    elif how == "other engine":
        meta = json.loads(js.read_text())
        meta["native"] = "0" * 16
        js.write_text(json.dumps(meta))
    elif how == "json garbage":
        js.write_text("{not json")
    return js


@pytest.mark.parametrize("how, why", [
    ("object byte", "checksum mismatch"), ("object truncated", "checksum mismatch"),
    ("object missing", "cannot read"), ("foreign host", "another target"),
    ("other engine", "another version"), ("json garbage", "invalid JSON")])
def test_damaged_or_foreign_artifact_is_refused(tmp_path, how, why):
    """A compiled kernel that does not pass the cache's checks is refused with one clear error."""
    from va2jax.codegen.native import load_artifact

    _compile_native(VA_DIR / "nodes.va", tmp_path, tmp_path / "cache")
    js = _damage(tmp_path, how)
    with pytest.raises(Va2JaxError, match=why):
        load_artifact(js)


def test_eval_reuses_rows_only_for_the_same_state(tmp_path, monkeypatch):
    """``Model.eval`` on the native backend reuses the input rows it built from a setup state when
    the same (read-only) arrays come back: alternating states, analyses (``tran`` sets
    ``enable_integration``) and a collapsed node (rs = 0) give what OSDI -O0 gives each time; a
    state's arrays cannot be changed in place."""
    from va2jax.codegen import compile_va
    from va2jax.codegen._rt_ops import ANALYSIS_BITS
    from va2jax.osdi import compile_va_to_osdi, eval_batch, load_library

    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path / "cache"))
    va = VA_DIR / "nodes.va"
    m = compile_va(va)
    omod = load_library(compile_va_to_osdi(va, opt_level=0)).module(0)
    V = np.random.default_rng(7).uniform(-1.0, 1.0, (4, len(m.nodes)))
    sets = [{"rs": 10.0, "gd": 2e-3}, {"rs": 0.0, "gd": 5e-3}]
    states = [m.setup({k: np.full(4, v) for k, v in ps.items()}, backend="native") for ps in sets]
    refs = {(i, a): eval_batch(omod, V, ps, analysis=ANALYSIS_BITS[a]) for i, ps in enumerate(sets)
            for a in ("dc", "tran")}
    for i, a in [(0, "dc"), (0, "dc"), (1, "dc"), (0, "tran"), (1, "tran"), (1, "dc"), (0, "dc")]:
        out = m.eval(states[i], V, analysis=a, backend="native").as_dict()
        for o in OUTPUTS:
            assert _same(out[o], refs[(i, a)][o]), (i, a, o)
    with pytest.raises(ValueError, match="read-only"):
        states[0].temperature[0] = 400.0
