"""Native CPU engine: the typed MIR of a model lowered to LLVM IR and compiled in-process,
called from JAX through the XLA FFI (:mod:`._ffi`: one handler per kernel, emitted as LLVM IR).

Public surface: :class:`NativeKernel` (addresses of ``init_batch``/``eval_batch`` with the C ABI
described in :mod:`._kernel`, column names and counts, cache key), :func:`build_kernel` (from a
:class:`~va2jax.mir.ModuleIR`), :func:`model_kernel` (from a :class:`va2jax.Model`) and
:func:`load_artifact` (what ``va2jax compile --native`` wrote) and
:func:`device_plan` (a simulator's packing of a model's rows and assembly of its outputs).
"""
from ._device import DevicePlan, device_plan
from ._ffi import kernel_calls, native_call, native_jvp
from ._kernel import NativeKernel, build_kernel, load_artifact, model_kernel

__all__ = ["DevicePlan", "NativeKernel", "build_kernel", "device_plan", "kernel_calls", "load_artifact", "model_kernel",
           "native_call", "native_jvp"]
