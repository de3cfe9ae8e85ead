"""Native CPU engine: the typed MIR of a model lowered to LLVM IR and compiled in-process,
called from JAX through the XLA FFI (:mod:`._ffi`: one handler per kernel, emitted as LLVM IR).

Public surface: :class:`NativeKernel` (addresses of ``init_batch``/``eval_batch`` with the C ABI
described in :mod:`._kernel`, column names and counts, cache key), :func:`build_kernel` (from a
:class:`~va2jax.mir.ModuleIR`), :func:`model_kernel` (from a :class:`va2jax.Model`) and
:func:`load_artifact` (what ``va2jax compile --native`` wrote),
:func:`device_plan` (a simulator's packing of a model's rows and assembly of its outputs),
:func:`dense_solve` (a small dense linear solve as one native kernel, for the simulator's Newton) and
:func:`gather_sum` (sums over a static table: the simulator's stamping), :func:`make_native_newton`
(the whole Newton solve of a time point as one kernel; :class:`NewtonGroup` describes a device group,
:class:`NewtonDeviceRef` VACASK's per-element residual reference),
:func:`make_native_step` (whole transient steps, up to a chunk of output rows, as one kernel).
"""
from ._device import DevicePlan, device_plan
from ._ffi import kernel_calls, native_call, native_jvp
from ._gsum import MAX_TERMS as GATHER_SUM_MAX_TERMS
from ._gsum import available as gather_sum_available
from ._gsum import gather_sum
from ._gsum import terms as gather_sum_terms
from ._kernel import NativeKernel, build_kernel, load_artifact, model_kernel
from ._lu import MAX_N as DENSE_SOLVE_MAX_N
from ._lu import dense_solve
from ._newton import DeviceRef as NewtonDeviceRef
from ._newton import GroupSpec as NewtonGroup
from ._newton import make_native_newton
from ._tstep import I_FIELDS as NATIVE_STEP_COUNTERS
from ._tstep import V_FIELDS as NATIVE_STEP_VECTORS
from ._tstep import make_native_step

__all__ = ["DENSE_SOLVE_MAX_N", "GATHER_SUM_MAX_TERMS", "DevicePlan", "NativeKernel", "build_kernel",
           "dense_solve", "device_plan", "gather_sum", "gather_sum_available", "gather_sum_terms",
           "kernel_calls", "load_artifact", "make_native_newton", "make_native_step",
           "NATIVE_STEP_COUNTERS", "NATIVE_STEP_VECTORS", "model_kernel", "native_call", "native_jvp",
           "NewtonDeviceRef", "NewtonGroup"]
