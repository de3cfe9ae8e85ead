"""The on-disk caches: deterministic generation, complete keys, damaged entries rebuilt.

A rebuilt model must equal the same model generated without the cache bit for bit (JAX path)
and OpenVAF's ``-O0`` OSDI library exactly (NumPy path); parameter defaults come from the source.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from va2jax.codegen._code_cache import CacheWarning

REPO = Path(__file__).resolve().parents[2]
VA_DIR = REPO / "tests" / "data" / "va"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "cache"
    monkeypatch.setenv("VA2JAX_CACHE", str(d))
    return d


def _results(m) -> dict[str, np.ndarray]:
    V = np.random.default_rng(1).uniform(-0.5, 0.8, (4, len(m.nodes)))
    # the NumPy setup and JAX eval: both code objects and the executable cache are tested
    out = m.eval(m.setup({}, backend="numpy"), V, backend="jax").as_dict()
    return {k: np.asarray(v) for k, v in out.items()}


def _matches_osdi(va: Path) -> None:
    """The cached model (NumPy backend) equals OpenVAF's ``-O0`` OSDI library exactly."""
    from va2jax.validate import validate_file

    res = validate_file(va, points=5, param_sets=1, backend="numpy", reference_opt_level=0)
    assert res.passed and all(v == 0.0 for v in res.max_rel_err.values()), res.max_rel_err


def _same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def test_generation_is_byte_identical_across_hash_seeds(tmp_path):
    """mathfuncs.va has four string constants (two $simparam names, two $strobe formats): their
    table came in openvaf-py's hash-map order, different from one process to the next."""
    outs = []
    for seed in ("0", "1", "2"):
        out = tmp_path / f"out{seed}"
        out.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed, VA2JAX_CACHE=str(tmp_path / f"cache{seed}"),
                   PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
        r = subprocess.run([sys.executable, "-m", "va2jax", "compile", str(VA_DIR / "mathfuncs.va"),
                            "-o", str(out)], capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr
        (f,) = out.iterdir()
        outs.append(f.read_bytes())
    assert b"STR = {" in outs[0]
    assert outs[0] == outs[1] == outs[2]


def test_edited_nested_include_in_an_include_folder_is_seen(tmp_path, cache):
    """The key covers files below an include folder (``-I inc`` + `` `include "sub/value.vh"``)."""
    from va2jax import compile_va

    src = tmp_path / "src"
    sub = tmp_path / "inc" / "sub"
    src.mkdir()
    sub.mkdir(parents=True)
    (src / "m.va").write_text('`include "disciplines.vams"\n`include "sub/value.vh"\n'
                              "module m(A, B); inout A, B; electrical A, B;\n"
                              "parameter real r = `RVAL;\nanalog I(A, B) <+ V(A, B) / r;\nendmodule\n")
    value = sub / "value.vh"
    value.write_text("`define RVAL 1000.0\n")
    first = compile_va(src / "m.va", include_dirs=[tmp_path / "inc"])
    assert first.params["r"].default == 1000.0
    value.write_text("`define RVAL 2000.0\n")
    again = compile_va(src / "m.va", include_dirs=[tmp_path / "inc"])
    assert again.params["r"].default == 2000.0
    # a file appearing earlier on the search path (the source's folder) changes the key too
    (src / "sub").mkdir()
    (src / "sub" / "value.vh").write_text("`define RVAL 3000.0\n")
    assert compile_va(src / "m.va", include_dirs=[tmp_path / "inc"]).params["r"].default == 3000.0


def _flip(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data
    path.write_bytes(data.replace(old, new, 1))


def test_changed_cached_module_is_restored(cache):
    """One changed character in the cached ``model.py`` (1.0 → 7.0 in a constant) used to give
    wrong results with exit 0: the verified entry restores it, with a warning."""
    from va2jax import compile_va

    va = VA_DIR / "nodes.va"
    ref = _results(compile_va(va, use_cache=False))
    m = compile_va(va)
    _same(_results(m), ref)
    _flip(m.source_path, b"rt.F64(1.0)", b"rt.F64(7.0)")
    with pytest.warns(CacheWarning, match="differs from its verified entry"):
        again = compile_va(va)
    assert again.source_path.read_text() == m.source
    _same(_results(again), ref)
    _matches_osdi(va)


def test_damaged_cache_entries_are_rebuilt(cache, tmp_path):
    """A damaged entry, code object or executable fails its checksum and is rebuilt (warning)."""
    from va2jax import compile_va

    # a source of its own: a new cache key, so its executables are compiled (and stored) here,
    # not taken from JAX's in-memory cache of an earlier test
    va = tmp_path / "nodes.va"
    va.write_bytes((VA_DIR / "nodes.va").read_bytes())
    ref = _results(compile_va(va, use_cache=False))
    m = compile_va(va)
    _same(_results(m), ref)  # stores code objects and executables
    folder = m.source_path.parent
    damaged = [folder / "entry.pickle", *folder.glob("*.code"), *(cache / "exe").glob("*.bin")]
    assert len(damaged) >= 4, damaged  # entry, jax + numpy code objects, >= 1 executable
    for f in damaged:
        data = bytearray(f.read_bytes())
        data[len(data) // 2] ^= 0x01
        f.write_bytes(bytes(data))
    with pytest.warns(CacheWarning) as seen:
        again = compile_va(va)
        res = _results(again)
    names = " ".join(str(w.message) for w in seen)
    assert "entry.pickle" in names and ".code" in names and ".bin" in names, names
    _same(res, ref)
    _matches_osdi(va)


def test_verified_file_round_trip(tmp_path):
    from va2jax.codegen._code_cache import read_verified, write_verified

    f = tmp_path / "x.bin"
    payload = hashlib.sha256(b"x").digest() * 3
    write_verified(f, payload)
    assert read_verified(f) == payload
    assert read_verified(tmp_path / "missing") is None
    f.write_bytes(f.read_bytes()[:-1])  # truncated
    with pytest.warns(CacheWarning, match="damaged"):
        assert read_verified(f) is None


def test_unusable_cache_runs_uncached(tmp_path, monkeypatch):
    """``VA2JAX_CACHE`` naming a file: a warning, and the model works without the cache."""
    from va2jax import compile_va

    va = VA_DIR / "nodes.va"
    ref = _results(compile_va(va, use_cache=False))
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("VA2JAX_CACHE", str(blocker))
    with pytest.warns(CacheWarning, match="running uncached|running without it"):
        m = compile_va(va)
    _same(_results(m), ref)
    assert blocker.read_text() == "x"
