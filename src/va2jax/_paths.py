"""Where va2jax finds its tools and keeps its caches."""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path


def _configured_cache_dir() -> Path:
    env = os.environ.get("VA2JAX_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "va2jax"


#: configured folder → the folder actually used (itself, or a private stand-in when unusable)
_usable: dict[Path, Path] = {}


def cache_dir() -> Path:
    """Root of va2jax's on-disk caches (``$VA2JAX_CACHE``, else ``$XDG_CACHE_HOME/va2jax``).

    When that folder cannot be created or written (a read-only place, a path under a regular
    file), va2jax runs uncached: one warning, then a private temporary folder for this process,
    removed at exit.
    """
    want = _configured_cache_dir()
    got = _usable.get(want)
    if got is None:
        got = want
        try:
            want.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=want, prefix=".probe-"):
                pass
        except OSError as exc:
            got = Path(tempfile.mkdtemp(prefix="va2jax-nocache-"))
            atexit.register(shutil.rmtree, got, True)
            logging.getLogger("va2jax").warning(
                "cache folder %s is not usable (%s); running uncached", want,
                exc.strerror or type(exc).__name__)
        _usable[want] = got
    return got


def corpus_dir() -> Path:
    """Folder of the third-party Verilog-A corpus fetched by ``scripts/fetch_corpus.py``.

    ``$VA2JAX_CORPUS`` if set, else ``.cache/corpus`` at the repository root.
    """
    env = os.environ.get("VA2JAX_CORPUS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".cache" / "corpus"


def data_dir() -> Path:
    """Folder of the Verilog-A models bundled with va2jax."""
    return Path(__file__).resolve().parent / "data"
