"""va2jax: Verilog-A compact models → JAX, numerically identical to OpenVAF's OSDI libraries.

Stages (one package each, data flows one way): :mod:`va2jax.osdi` (reference OSDI loader),
:mod:`va2jax.mir` (OpenVAF front end → typed IR), :mod:`va2jax.codegen` (IR → JAX source),
:mod:`va2jax.validate` (generated code vs OSDI) and :mod:`va2jax.sim` (circuit simulator).
"""
from __future__ import annotations

from .errors import Va2JaxError

__version__ = "0.1.0"


def compile_va(path, module=None, *, include_dirs=(), defines=None, use_cache=True):
    """Compile a Verilog-A file to a JAX :class:`~va2jax.codegen.Model` (see
    :func:`va2jax.codegen.compile_va`): ``include_dirs`` searched for `` `include`` files,
    ``defines`` mapping macro names to values."""
    from .codegen import compile_va as _compile

    return _compile(path, module, include_dirs=include_dirs, defines=defines, use_cache=use_cache)


__all__ = ["Va2JaxError", "__version__", "compile_va"]
