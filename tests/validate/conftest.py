"""Shared fixtures for the conformance tests (corpus sweep and regression models)."""
from __future__ import annotations

import pytest

from va2jax._paths import corpus_dir


@pytest.fixture(scope="session")
def corpus():
    """The corpus folder (``make corpus``); skips when it has not been fetched."""
    root = corpus_dir()
    if not root.is_dir() or not any(root.rglob("*.va")):
        pytest.skip(f"corpus not fetched ({root}); run `make corpus`")
    return root
