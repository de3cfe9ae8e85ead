"""``va2jax._blas.single_threaded``: small dense LAPACK calls on one OpenBLAS thread, the
process's own thread count restored after (docs/sim.md, "Harmonic balance", *Time*)."""
from __future__ import annotations

import ctypes
import importlib
import threading
from pathlib import Path

import numpy as np
import pytest

from va2jax import _blas


def _counts() -> list[int]:
    """Each bundled OpenBLAS's current thread count (its ``get_num_threads``; the wheels' builds
    prefix the name)."""
    counts = []
    for name in ("numpy", "scipy"):
        mod = importlib.import_module(name)
        for path in sorted((Path(mod.__file__).resolve().parent.parent / f"{name}.libs").glob("*openblas*.so*")):
            lib = ctypes.CDLL(str(path))
            for sym in ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                        "openblas_get_num_threads"):
                fn = getattr(lib, sym, None)
                if fn is not None:
                    fn.restype = ctypes.c_int
                    counts.append(int(fn()))
                    break
    return counts


def _need_openblas():
    if not _blas._thread_setters():
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local bundled with NumPy/SciPy")


def test_small_system_runs_on_one_thread_and_the_count_comes_back():
    _need_openblas()
    before = _counts()
    assert before
    with _blas.single_threaded(165):
        assert _counts() == [1] * len(before)
        x = np.linalg.solve(np.eye(165) * 2.0, np.ones(165))  # LAPACK works inside
    assert np.all(x == 0.5)
    assert _counts() == before


def test_large_system_keeps_the_thread_count():
    _need_openblas()
    before = _counts()
    with _blas.single_threaded(_blas.SINGLE_THREAD_MAX_N + 1):
        assert _counts() == before


def test_nested_and_concurrent_blocks_restore_the_count():
    """Blocks in two threads and a nested block: the count is 1 inside each and the process's own
    count after all (the lock keeps one thread's restore from undoing another's setting)."""
    _need_openblas()
    before = _counts()
    seen = []

    def work():
        for _ in range(50):
            with _blas.single_threaded(100):
                with _blas.single_threaded(50):
                    seen.append(_counts())
                seen.append(_counts())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(c == [1] * len(before) for c in seen)
    assert _counts() == before
