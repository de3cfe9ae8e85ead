"""Small host-side dense LAPACK calls on one OpenBLAS thread, for their duration only.

OpenBLAS parallelises a factorisation from about ``n ≈ 100`` on (``getrf`` splits once
``m·n ≥ 10⁴``) and its threads spin while waiting for each other. On a loaded machine that turns
a 165×165 LU (harmonic balance's Jacobian) from 1.9 ms on one thread into 0.17–0.44 s on two
(docs/sim.md, "Harmonic balance", *Time*). :func:`single_threaded` runs the calls inside it on
one thread when the system is small (``n ≤`` :data:`SINGLE_THREAD_MAX_N`) and restores the
previous count after: no environment variable is set, and outside the block the process keeps
the thread count it had.

OpenBLAS's ``openblas_set_num_threads_local`` (OpenBLAS ≥ 0.3.27) sets the count and returns the
previous one; in the pthreads builds of the NumPy and SciPy wheels it is the process-wide count,
so the block holds a lock (concurrent blocks run one after another) and other threads' BLAS
calls made meanwhile also run on one thread. The libraries are the ones the NumPy and SciPy
wheels bundle (``numpy.libs``/``scipy.libs``, as ``constraints.txt`` installs them); where none
is found (another BLAS, another layout) the block changes nothing.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

#: Largest order ``n`` of a dense system whose factorisation runs on one thread. Measured on the
#: shared 2-core VM under load (scipy ``lu_factor``; default threads → one thread): n = 165
#: 174 → 1.9 ms, 400 90 → 15 ms, 648 160 → 30 ms, 1000 510 → 80 ms. Below this size a
#: factorisation takes ≲ 30 ms on one thread, so an idle many-core machine gains little from
#: threads, while a loaded one loses up to 100×; above it the user's thread setting is kept.
SINGLE_THREAD_MAX_N = 512

_lock = threading.RLock()


@functools.cache
def _thread_setters() -> tuple[Callable[[int], int], ...]:
    """``openblas_set_num_threads_local`` of each OpenBLAS bundled with NumPy and SciPy."""
    out = []
    for name in ("numpy", "scipy"):
        try:
            mod = importlib.import_module(name)
        except ImportError:  # pragma: no cover - both are dependencies
            continue
        libs = Path(mod.__file__).resolve().parent.parent / f"{name}.libs"
        for path in sorted(libs.glob("*openblas*.so*")):
            try:
                lib = ctypes.CDLL(str(path))  # the loaded library's handle (same file)
                fn = lib.openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
            out.append(fn)
    return tuple(out)


@contextlib.contextmanager
def single_threaded(n: int) -> Iterator[None]:
    """Run the block's OpenBLAS calls on one thread when ``n ≤`` :data:`SINGLE_THREAD_MAX_N`
    (``n``: the order of the system factorised inside); restore the previous count after."""
    setters = _thread_setters() if n <= SINGLE_THREAD_MAX_N else ()
    if not setters:
        yield
        return
    with _lock:
        prev = [fn(1) for fn in setters]
        try:
            yield
        finally:
            for fn, p in zip(setters, prev):
                fn(p)
