"""Loading generated code: the module's source executed as Python, with JAX (the normal module)
or with other runtime namespaces (NumPy stand-ins, the gradient-safe runtime). Code objects are
cached next to the source (see ``_exe_cache.load_code``)."""
from __future__ import annotations

import hashlib
import types
from pathlib import Path
from typing import Any

from ..errors import Va2JaxError
from ._exe_cache import load_code

#: First lines of every generated module (replaced by other namespaces in :func:`exec_with`).
HEADER = "import jax.numpy as jnp\nfrom jax import lax\n\nfrom va2jax.codegen import _rt as rt\n"


def import_jax(source: str, path: Path, cache: bool) -> types.ModuleType:
    """The generated module (JAX) from ``source`` (stored at ``path``); its code object is cached
    next to it when ``cache``."""
    name = "va2jax_generated_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    code = load_code(source, str(path), path.with_name("jax") if cache else None)
    exec(code, mod.__dict__)
    return mod


def exec_with(path: Path, rt: Any, jnp: Any, lax: Any, tag: str, cache: bool = False,
              source: str | None = None) -> dict[str, Any]:
    """Execute the generated source (``source``, else the file at ``path``) with other
    ``rt``/``jnp``/``lax`` namespaces (its code object cached next to ``path`` as
    ``<tag>.*.code`` when ``cache``); returns the namespace (``init``, ``eval``, …)."""
    code = path.read_text() if source is None else source
    if HEADER not in code:
        raise Va2JaxError(f"{path}: not a va2jax-generated module (header missing)")
    ns: dict[str, Any] = {"jnp": jnp, "lax": lax, "rt": rt, "__name__": f"va2jax_generated_{tag}"}
    exec(load_code(code.replace(HEADER, ""), str(path), path.with_name(tag) if cache else None), ns)
    return ns


def import_numpy(source: str, path: Path, cache: bool) -> dict[str, Any]:
    """The same generated source executed with NumPy stand-ins (see ``_rt_np``)."""
    from . import _rt_np

    return exec_with(path, _rt_np, _rt_np.jnp, _rt_np.lax, "numpy", cache, source)


def import_gradient_safe(source: str, path: Path, cache: bool) -> dict[str, Any]:
    """The generated source executed with the gradient-safe runtime (``_rt_grad``): same values,
    finite reverse-mode derivatives through untaken branches and loops."""
    from . import _rt_grad

    return exec_with(path, _rt_grad, _rt_grad.jnp, _rt_grad.lax, "grad", cache, source)
