"""Native CPU engine: the typed MIR of a model lowered to LLVM IR and compiled in-process,
called from JAX through the XLA FFI (:mod:`._ffi`: one handler per kernel, emitted as LLVM IR).

Public surface: :class:`NativeKernel` (addresses of ``init_batch``/``eval_batch`` with the C ABI
described in :mod:`._kernel`, column names and counts, cache key), :func:`build_kernel` (from a
:class:`~va2jax.mir.ModuleIR`) and :func:`model_kernel` (from a :class:`va2jax.Model`).
"""
from ._kernel import NativeKernel, build_kernel, model_kernel

__all__ = ["NativeKernel", "build_kernel", "model_kernel"]
