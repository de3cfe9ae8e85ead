"""Verilog-A file → :class:`~._model.Model`: the front end and the code generator, with the
generated code cached under ``$VA2JAX_CACHE/codegen`` (see ``_code_cache``)."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

from .._paths import cache_dir
from ..errors import Va2JaxError
from . import _code_cache
from ._generate import init_flags, string_ids
from ._inputs import used_values
from ._lazy import _front_end, _gen_config, _slim, _versions
from ._model import Model


def compile_va(path: str | os.PathLike[str], module: str | None = None, *, include_dirs=(),
               defines: Mapping[str, Any] | None = None, use_cache: bool = True) -> Model:
    """Compile a Verilog-A file to a JAX :class:`Model` (the file's first module, or ``module``).

    ``include_dirs`` are searched for `` `include``d files after the source's folder; ``defines``
    maps macro names to values (`` `define NAME VALUE``).

    The Python module is generated when a path that runs it is first taken (``Model.gen``); the
    native backend never needs it. The generated code is cached under ``$VA2JAX_CACHE/codegen``
    keyed by the source's path and every file it may include (:func:`._code_cache.source_key`),
    va2jax's front-end and generator code, openvaf-py and jax versions; each entry is one
    atomically written file with a SHA-256 that is checked on load (a damaged entry is rebuilt,
    with a warning).
    """
    p = Path(path).resolve()
    if not p.is_file():
        raise Va2JaxError(f"{path}: no such Verilog-A file")
    incs = [str(Path(d).resolve()) for d in include_dirs]
    defs = {str(k): str(v) for k, v in (defines or {}).items()}
    config = _gen_config()
    key = hashlib.sha256(repr((str(p), _code_cache.source_key(p, [Path(d) for d in incs]), _versions(config),
                               module or "", incs, sorted(defs.items()))).encode()).hexdigest()[:24]
    folder = cache_dir() / "codegen" / key
    src = folder / _code_cache.SOURCE
    origin = (str(p), incs, defs, module)
    if use_cache:
        entry = _code_cache.load_entry(folder)
        if entry is not None:
            ir, gen, used, flags, strings = entry
            m = Model(ir, gen, src, used_eval_values=used, cache_key=key, flags=flags, strings=strings)
            m._origin = origin  # the native backend and the generator may reload the full IR
            m._gen_config = config
            m._compiler = compile_va  # Model.noise compiles the noise variant with it
            return m
    ir = _front_end(p, incs, defs, module, path)
    # the Python module is generated when first needed (``Model.gen``): the native backend
    # never needs it, so a first native result costs the front end and LLVM only
    used = used_values(ir.eval)
    flags, strings = init_flags(ir), string_ids(ir)
    try:
        _code_cache.store_entry(folder, _slim(ir), None, used, flags, strings)
    except OSError as exc:  # read-only or unusable cache: run uncached
        import warnings

        warnings.warn(f"cannot write the code cache {folder} ({exc.strerror or exc}); "
                      "running without it", _code_cache.CacheWarning, stacklevel=2)
        key = None
    m = Model(ir, None, src, used_eval_values=used, cache_key=key, flags=flags, strings=strings)
    m._origin = origin
    m._gen_config = config
    m._compiler = compile_va  # Model.noise compiles the noise variant with it
    return m


