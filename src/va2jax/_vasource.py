"""Checks on a Verilog-A source before OpenVAF reads it, and the privacy of OpenVAF's messages.

OpenVAF (both ``openvaf-py`` and ``openvaf-r``) overflows its stack on an `` `include`` cycle,
panics on some binary input, and quotes the offending token of any file it was asked to include
(``/etc/passwd`` included). :func:`check_source` refuses the first two with a one-line error
naming file and line; :func:`redact` keeps the text of files that are not Verilog-A out of
messages.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import Va2JaxError

#: suffixes of files whose content may be quoted in error messages
VA_SUFFIXES = {".va", ".vams", ".vh", ".v", ".h", ".inc", ".include"}

_INCLUDE = re.compile(r'`include\s+"([^"]+)"')
_COMMENTS = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Va2JaxError(f"{path}: cannot read: {exc.strerror}") from None
    if b"\0" in data:
        raise Va2JaxError(f"{path}: not Verilog-A (binary content)")
    # OpenVAF accepts other 8-bit text (e.g. Latin-1 comments): so does this scan
    return data.decode("utf-8", errors="replace")


def check_source(path: str | os.PathLike[str], include_dirs=()) -> None:
    """Refuse binary files (NUL bytes) and `` `include`` cycles in ``path`` and what it includes.

    Includes resolve as OpenVAF resolves them: relative to the including file, then
    ``include_dirs``; names found nowhere are left for OpenVAF to report.
    """
    dirs = [Path(d) for d in include_dirs]

    def walk(p: Path, stack: list[Path]) -> None:
        text = _read_text(p)
        # comments removed keeping their newlines, so line numbers stay right
        text = _COMMENTS.sub(lambda m: "\n" * m.group(0).count("\n"), text)
        for m in _INCLUDE.finditer(text):
            name = m.group(1)
            line = text.count("\n", 0, m.start()) + 1
            for d in [p.parent, *dirs]:
                cand = (d / name).resolve()
                if cand.is_file():
                    if cand in stack:
                        raise Va2JaxError(f"{p}:{line}: recursive include of {name}")
                    walk(cand, stack + [cand])
                    break

    top = Path(path).resolve()
    walk(top, [top])


_LOC = re.compile(r"^(?P<file>.+?):(?P<line>\d+)(?::(?P<col>\d+))?: (?P<msg>.*)$")


def redact(message: str, own: str | os.PathLike[str] | None = None) -> str:
    """``message`` (``file:line[:col]: text``), without the text when ``file`` is not Verilog-A
    (by its suffix; ``own``, the source the user named, always counts as Verilog-A).

    A parse error in a file that is not Verilog-A (e.g. an `` `include`` of a system file) is
    reported by position only: OpenVAF's message would quote that file's content.
    """
    m = _LOC.match(message)
    if not m or Path(m.group("file")).suffix.lower() in VA_SUFFIXES:
        return message
    if own is not None and Path(m.group("file")).resolve() == Path(own).resolve():
        return message
    where = f"{m.group('file')}:{m.group('line')}" + (f":{m.group('col')}" if m.group("col") else "")
    return f"{where}: not Verilog-A (cannot parse it; its content is not shown)"
