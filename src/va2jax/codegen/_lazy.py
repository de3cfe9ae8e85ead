"""The pieces of a :class:`~va2jax.codegen.Model`'s compilation that run after it exists: the
front end run again for a model that came from the cache (:func:`full_ir`), the Python module
generated on first use (:func:`generate_for`), and the generator settings and versions that key
the code cache. Kept apart from :mod:`._compile` (which builds models) so that ``_model`` and the
native engine can reach them without an import cycle."""
from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from ..errors import Va2JaxError, suggest
from ..mir import ModuleIR
from . import _code_cache
from ._generate import GENERATOR_VERSION, generate


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


def _front_end(p: Path, incs: list[str], defs: dict[str, str], module: str | None, shown) -> ModuleIR:
    """The module's full IR from the front end (``module`` or the file's first)."""
    from ..mir import load_modules, unscale_noise_residuals

    mods = load_modules(p, incs, defs)
    if module is None:
        return unscale_noise_residuals(mods[0])  # changes a noise variant's probe nodes only
    sel = [m for m in mods if module.lower() in (m.name.lower(), (m.osdi_name or m.name).lower())]
    if not sel:
        raise Va2JaxError(f"{shown}: no module {module!r}" + suggest(module, [m.name for m in mods]))
    return unscale_noise_residuals(sel[0])


def full_ir(model) -> ModuleIR:  # model: a va2jax.codegen.Model
    """``model``'s IR with its instructions: its own, or the front end's again when the model
    came from the cache (whose entry keeps the IR without them)."""
    if model.ir.eval.blocks:
        return model.ir
    origin = getattr(model, "_origin", None)
    if origin is None:
        raise Va2JaxError(f"module {model.name}: the module's IR is not available (recompile it)")
    path, incs, defs, module = origin
    return _front_end(Path(path), incs, defs, module, path)


def generate_for(model):  # model: a va2jax.codegen.Model
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
