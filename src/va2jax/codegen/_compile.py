"""Verilog-A file → :class:`~._model.Model`: the front end and the code generator, with the
generated code cached under ``$VA2JAX_CACHE/codegen`` (see ``_code_cache``)."""
from __future__ import annotations

import dataclasses
import hashlib
import os
from pathlib import Path
from typing import Any, Mapping

from .._paths import cache_dir
from ..errors import Va2JaxError, suggest
from ..mir import ModuleIR
from . import _code_cache
from ._generate import GENERATOR_VERSION, generate, init_flags, string_ids
from ._inputs import used_values
from ._model import Model


def _own_code_digest() -> str:
    """Hash of va2jax's front-end and generator sources, so a changed generator never reuses stale code."""
    h = hashlib.sha256()
    root = Path(__file__).resolve().parents[1]
    for sub in ("mir", "codegen"):
        for f in sorted((root / sub).glob("*.py")):
            h.update(f.read_bytes())
    h.update((root / "simparams.py").read_bytes())
    return h.hexdigest()[:16]


def _gen_config() -> tuple[int, bool]:
    """The generator's settings now (``PART_SIZE``, ``OPTIMIZE``): part of the cache key, and
    what a model's lazily generated module is generated with."""
    from . import _generate

    return _generate.PART_SIZE, bool(_generate.OPTIMIZE)


def _versions(config: tuple[int, bool]) -> str:
    from importlib.metadata import version

    parts = [f"gen{GENERATOR_VERSION}", _own_code_digest(), f"part{config[0]}", f"opt{int(config[1])}"]
    for pkg in ("openvaf-py", "jax"):
        try:
            parts.append(f"{pkg}={version(pkg)}")
        except Exception:  # pragma: no cover
            parts.append(f"{pkg}=?")
    return ",".join(parts)


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


def _front_end(p: Path, incs: list[str], defs: dict[str, str], module: str | None, shown) -> ModuleIR:
    """The module's full IR from the front end (``module`` or the file's first)."""
    from ..mir import load_modules

    mods = load_modules(p, incs, defs)
    if module is None:
        return mods[0]
    sel = [m for m in mods if module.lower() in (m.name.lower(), (m.osdi_name or m.name).lower())]
    if not sel:
        raise Va2JaxError(f"{shown}: no module {module!r}" + suggest(module, [m.name for m in mods]))
    return sel[0]


def full_ir(model: Model) -> ModuleIR:
    """``model``'s IR with its instructions: its own, or the front end's again when the model
    came from the cache (whose entry keeps the IR without them)."""
    if model.ir.eval.blocks:
        return model.ir
    origin = getattr(model, "_origin", None)
    if origin is None:
        raise Va2JaxError(f"module {model.name}: the module's IR is not available (recompile it)")
    path, incs, defs, module = origin
    return _front_end(Path(path), incs, defs, module, path)


def generate_for(model: Model):
    """The generated module of ``model`` (``Model.gen``), stored in its cache entry, whose
    ``model.py`` and code objects the JAX and NumPy backends then use."""
    part_size, optimize = getattr(model, "_gen_config", None) or _gen_config()  # the key's settings
    gen = generate(full_ir(model), part_size=part_size, optimize=optimize)
    key = model._cache_key
    if key is not None:
        try:
            _code_cache.store_entry(model.source_path.parent, _slim(model.ir), gen, model._used_eval,
                                    model._flags, model._strings)
        except OSError as exc:
            import warnings

            warnings.warn(f"cannot write the code cache {model.source_path.parent} ({exc.strerror or exc}); "
                          "running without it", _code_cache.CacheWarning, stacklevel=3)
            model._cache_key = None
    return gen


def _slim(ir: ModuleIR) -> ModuleIR:
    """``ir`` without the instructions of init and eval (a :class:`Model` needs only their inputs):
    the cached copy loads several times faster."""
    def strip(fn):
        return dataclasses.replace(fn, blocks={}, constants={}, types={})
    return dataclasses.replace(ir, eval=strip(ir.eval), init=strip(ir.init))
