"""Files of va2jax's on-disk caches: atomic, checksummed writes; and the generated-code cache.

Every cache file is written to a temporary file in its folder and moved in place with
``os.replace`` (a reader sees the old file or the new one, never a mixture), and a *verified*
file starts with a 32-byte SHA-256 of the rest: :func:`read_verified` returns ``None`` — and
warns — when the digest does not match, so a damaged entry is rebuilt instead of used.

The generated-code cache (``$VA2JAX_CACHE/codegen/<key>/``) holds one verified ``entry.pickle``
(the module's IR without instructions, the generated module — its source included; absent until
something asked for it, see ``Model.gen`` — the eval values in use, init's flags and the string
ids) and ``model.py``, a copy of the source for people and tracebacks, restored
from the entry whenever it differs. The key (:func:`source_key`) covers every file the front end
may read: the source, each `` `include``d file wherever it may be found, recursively, and which of
those candidates exist.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from pathlib import Path

_MAGIC = b"va2jax-sha256\n"
_DIGEST = 32  # bytes of a SHA-256


from ..errors import CacheWarning  # noqa: E402  (one warning class for every cache)


def current_umask() -> int:
    """The process's file-mode creation mask (Linux: read from ``/proc``, leaving it untouched)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic two-call query
    os.umask(mask)
    return mask


def atomic_write(path: Path, data: bytes, *, user_file: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``.

    ``user_file``: the file is an output for the user, so it gets the permissions an ordinary
    ``open()`` would give it (``0o666 & ~umask``); the temporary file's own are ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if user_file:
            os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_verified(path: Path, data: bytes) -> None:
    """Atomically write ``data`` preceded by a header and its SHA-256 (see :func:`read_verified`)."""
    atomic_write(path, _MAGIC + hashlib.sha256(data).digest() + data)


def read_verified(path: Path) -> bytes | None:
    """The data stored by :func:`write_verified` at ``path``; ``None`` when there is no readable
    file, and ``None`` with a :class:`CacheWarning` when it is damaged (digest mismatch,
    truncated)."""
    try:
        raw = Path(path).read_bytes()
    except OSError:  # missing or unreadable: the caller rebuilds it (and warns if it cannot store)
        return None
    head = len(_MAGIC) + _DIGEST
    if len(raw) >= head and raw.startswith(_MAGIC):
        data = raw[head:]
        if hashlib.sha256(data).digest() == raw[len(_MAGIC):head]:
            return data
    warnings.warn(f"cache file {path} is damaged (checksum mismatch); rebuilding it",
                  CacheWarning, stacklevel=2)
    return None


# ---------------------------------------------------------------------------------------------
# What the front end reads

_INCLUDE = re.compile(rb'`include\s+"([^"]+)"')


def source_key(path: Path, include_dirs: list[Path]) -> str:
    """SHA-256 over the source and every file it may `` `include``, recursively.

    An included name may resolve relative to the including file's folder, the source's folder
    or any include folder (the front end searches them in that order; see
    :func:`va2jax.mir.load_modules`), so each candidate that exists is hashed (path and
    contents) and followed, and each that does not is recorded as missing: editing, adding or
    removing any file that could be read changes the key. Includes inside comments are followed
    too (harmless: at worst a spurious rebuild).
    """
    root = Path(path).resolve()
    roots = [root.parent, *[Path(d).resolve() for d in include_dirs]]
    h = hashlib.sha256()
    seen: set[Path] = set()
    work = [root]
    while work:
        f = work.pop()
        if f in seen:
            continue
        seen.add(f)
        try:
            data = f.read_bytes()
        except OSError:
            h.update(b"unreadable\0" + str(f).encode("utf-8", "surrogateescape") + b"\0")
            continue
        h.update(b"file\0" + str(f).encode("utf-8", "surrogateescape") + b"\0"
                 + hashlib.sha256(data).digest())
        for m in _INCLUDE.finditer(data):
            name = os.fsdecode(m.group(1))
            for d in dict.fromkeys([f.parent, *roots]):
                cand = Path(os.path.normpath(d / name))
                if cand.is_file():
                    work.append(cand.resolve())
                else:
                    h.update(b"missing\0" + str(cand).encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Generated-code entries

ENTRY = "entry.pickle"
SOURCE = "model.py"


def load_entry(folder: Path):
    """``(ir, gen, used, flags, strings)`` of the verified entry in ``folder`` (``gen`` is None
    when the Python module was never generated; ``model.py`` restored from ``gen`` when missing
    or different, with a :class:`CacheWarning` when it was changed), or ``None``."""
    import pickle

    data = read_verified(folder / ENTRY)
    if data is None:
        return None
    try:
        ir, gen, used, flags, strings = pickle.loads(data)
    except Exception:  # written by an incompatible version: rebuild
        return None
    if gen is None:
        return ir, gen, used, flags, strings
    src = folder / SOURCE
    want = gen.source.encode()
    try:
        have = src.read_bytes()
    except OSError:
        have = None
    if have != want:
        if have is not None:
            warnings.warn(f"cached generated module {src} differs from its verified "
                          "entry; restored", CacheWarning, stacklevel=2)
        try:
            atomic_write(src, want)
        except OSError:  # read-only cache: the entry is still good (its source is executed)
            pass
    return ir, gen, used, flags, strings


def store_entry(folder: Path, ir, gen, used, flags, strings) -> None:
    """Write the entry (verified, atomic), then ``model.py`` (when ``gen`` is given)."""
    import pickle

    write_verified(folder / ENTRY, pickle.dumps((ir, gen, used, flags, strings)))
    if gen is not None:
        atomic_write(folder / SOURCE, gen.source.encode())
