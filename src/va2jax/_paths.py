"""Where va2jax finds its tools and keeps its caches."""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from . import _config
from .errors import CacheWarning


def _configured_cache_dir() -> Path:
    env = _config.get("CACHE")
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
            warnings.warn(f"cache folder {want} is not usable "
                          f"({exc.strerror or type(exc).__name__}); running uncached",
                          CacheWarning, stacklevel=2)
        _usable[want] = got
    return got


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


def safe_stem(name: str) -> str:
    """A file-name stem for ``name`` (a module or analysis name taken from user input) that
    cannot reach another folder: a Python identifier (letters, digits and ``_``).

    A name that is already of that form (and does not start with a digit) is kept; any other has
    its other characters replaced by ``_`` and gets ``_`` plus 8 hex digits of its SHA-256, so
    that distinct names stay distinct (``\\a/b`` and ``\\a.b`` give different files).
    """
    import hashlib
    import re

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return name
    clean = re.sub(r"[^A-Za-z0-9_]+", "_", name).strip("_") or "name"
    if clean[0].isdigit():
        clean = "n" + clean  # an identifier, so a generated module stays importable
    return f"{clean}_{hashlib.sha256(name.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


def path_inside(folder: str | os.PathLike[str], file_name: str) -> Path:
    """``folder / file_name``, refused (:class:`~va2jax.errors.Va2JaxError`) unless it lies
    directly in ``folder`` (a file name derived from input must not name another folder)."""
    from .errors import Va2JaxError

    if file_name in ("", ".", "..") or os.path.basename(file_name) != file_name or "/" in file_name \
            or (os.altsep and os.altsep in file_name):
        raise Va2JaxError(f"{file_name!r}: output file name would leave the folder {folder}")
    return Path(folder) / file_name
