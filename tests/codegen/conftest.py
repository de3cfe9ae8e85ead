"""Shared fixtures for the code-generator tests: an isolated cache and the corpus location."""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
VA_DIR = HERE.parent / "data" / "va"


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Generated code and OSDI libraries are cached in a per-session folder (never ~/.cache)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("VA2JAX_CACHE", str(tmp_path_factory.getbasetemp() / "va2jax-cache"))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """``bosdi`` folder of the third-party corpus (skips when it has not been fetched)."""
    from va2jax._paths import corpus_dir

    d = corpus_dir() / "bosdi"
    if not (d / "diode.va").is_file():
        pytest.skip(f"Verilog-A corpus not found at {d} (run `make corpus` or set VA2JAX_CORPUS)")
    return d
