"""Conformance sweep over the third-party Verilog-A corpus (``docs/corpus.md``).

Every corpus file is validated with :func:`validate_file` (bias sweeps + region parameter sets +
random points); a file that raises becomes a failed entry carrying its one-line error, and the
sweep goes on.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from .._paths import corpus_dir
from ..errors import Va2JaxError
from ._compare import OUTPUTS, ValidationResult, validate_file

#: include files of the corpus (not models)
INCLUDE_FILES = frozenset({"cmcGeneralMacrosAndDefines.va", "cmcStandardModelMacros.va"})


#: Parameters a corpus file needs to set up at all (given to both paths, like a netlist would).
#: vajax bsimbulk.va: ``minr`` defaults to ``$simparam("minr", 1m)`` but is declared ``from (0:inf)``,
#: and the simulator's ``minr`` option is 0 (VACASK's default), so OSDI's own setup rejects the
#: defaults.
CORPUS_PARAMS: dict[str, dict[str, Any]] = {
    "vajax/bsimbulk/bsimbulk.va": {"minr": 1e-3},
}


def corpus_files(root: str | Path | None = None) -> list[Path]:
    """The corpus models (``*.va`` under ``root``, default :func:`va2jax._paths.corpus_dir`),
    include files excluded, in a stable order."""
    root = Path(root) if root is not None else corpus_dir()
    if not root.is_dir():
        raise Va2JaxError(f"corpus folder {root} not found: run `make corpus` "
                          "(or set VA2JAX_CORPUS to the folder)")
    files = sorted(p for p in root.rglob("*.va") if p.name not in INCLUDE_FILES)
    if not files:
        raise Va2JaxError(f"corpus folder {root} has no .va files: run `make corpus`")
    return files


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(exc).__name__}: {msg}" if not isinstance(exc, Va2JaxError) else msg


def entry_of(rel: str, res: ValidationResult | None, error: str | None = None,
             seconds: float = math.nan) -> dict[str, Any]:
    """The JSON entry of one corpus file."""
    if res is None:
        return {"file": rel, "module": None, "points": 0,
                "max_rel_err": {o: None for o in OUTPUTS}, "max_abs_err": {o: None for o in OUTPUTS},
                "passed": False, "openvaf_r_seconds": None, "va2jax_seconds": None,
                "seconds": seconds, "error": error}
    e = {"file": rel, "module": res.module, "points": res.points, "max_rel_err": res.max_rel_err,
         "max_abs_err": res.max_abs_err, "passed": bool(res.passed),
         "openvaf_r_seconds": res.openvaf_r_seconds, "va2jax_seconds": res.va2jax_seconds,
         "seconds": seconds, "param_sets": len(res.param_sets), "noise": res.noise,
         "noise_sources": res.noise_sources, "noise_nonzero": res.noise_nonzero}
    if res.nonfinite_reference:  # compared by kind only (NaN, ±inf): reported
        e["nonfinite_reference"] = dict(res.nonfinite_reference)
    if res.data is not None and res.data.get("failed_sets"):
        e["failed_sets"] = list(res.data["failed_sets"])
    if not res.passed and res.worst:
        e["worst"] = {o: {k: v for k, v in w.items() if k != "params"} for o, w in res.worst.items()
                      if res.max_rel_err.get(o, 0.0) > 0}
    return e


def run_corpus(files: Iterable[Path], *, root: Path, points: int = 100, param_sets: int = 3,
               seed: int = 0, backend: str = "numpy", sweeps: bool = True, keep: bool = False,
               progress: bool = True, reference_opt_level: int | None = None,
               on_result: Callable[[dict[str, Any], ValidationResult | None], None] | None = None
               ) -> list[dict[str, Any]]:
    """Validate ``files``; returns one entry per file (see :func:`entry_of`). ``on_result`` is
    called after each file with its entry and result (``None`` when it raised).
    ``reference_opt_level``: ``openvaf-r -O`` level of the OSDI references (``None``: default)."""
    files = list(files)
    entries: list[dict[str, Any]] = []
    # non-finite OSDI outputs are expected at some sweep points (both paths must agree on them)
    osdi_log = logging.getLogger("va2jax.osdi")
    old_level = osdi_log.level
    osdi_log.setLevel(logging.ERROR)
    prog = None
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=False)
        prog.start()
        task = prog.add_task("corpus", total=len(files))
    try:
        for f in files:
            rel = f.relative_to(root).as_posix() if f.is_relative_to(root) else str(f)
            if prog is not None:
                prog.update(task, description=f"[bold]{rel:40s}")
            t0 = time.perf_counter()
            res: ValidationResult | None = None
            try:
                res = validate_file(f, points=points, param_sets=param_sets, seed=seed,
                                    backend=backend, sweeps=sweeps, keep=keep,
                                    params=CORPUS_PARAMS.get(rel),
                                    reference_opt_level=reference_opt_level)
                e = entry_of(rel, res, seconds=time.perf_counter() - t0)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # any failure of one model is an entry, never an abort
                e = entry_of(rel, None, _one_line(exc), time.perf_counter() - t0)
            entries.append(e)
            if on_result is not None:
                on_result(e, res)
            if prog is not None:
                mark = "[green]pass" if e["passed"] else ("[red]error" if "error" in e else "[red]FAIL")
                prog.console.print(f"{mark}[/] {rel} ({e['seconds']:.1f} s)"
                                   + (f": {e['error']}" if "error" in e else ""))
                prog.advance(task)
    finally:
        osdi_log.setLevel(old_level)
        if prog is not None:
            prog.stop()
    return entries
