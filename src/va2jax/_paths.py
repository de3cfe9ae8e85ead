"""Where va2jax finds its tools and keeps its caches."""
from __future__ import annotations

import os
from pathlib import Path

from . import _config


def cache_dir() -> Path:
    """Root of va2jax's on-disk caches (``$VA2JAX_CACHE``, else ``$XDG_CACHE_HOME/va2jax``)."""
    env = _config.get("CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "va2jax"


def corpus_dir() -> Path:
    """Folder of the third-party Verilog-A corpus fetched by ``scripts/fetch_corpus.py``.

    ``$VA2JAX_CORPUS`` if set, else ``.cache/corpus`` at the repository root.
    """
    env = _config.get("CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".cache" / "corpus"


def data_dir() -> Path:
    """Folder of the Verilog-A models bundled with va2jax."""
    return Path(__file__).resolve().parent / "data"
