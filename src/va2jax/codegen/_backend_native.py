"""The native backend: the model's init and eval lowered to LLVM IR and compiled to machine code
(:mod:`.native`, which keeps the kernel, its cache and the XLA FFI); this module adapts it to
:class:`~._backend.Backend`. Inputs and outputs are the NumPy backend's (same columns, dtypes
and assembly), so results compare entry by entry."""
from __future__ import annotations

from typing import Any

from ._backend import Backend


class NativeBackend(Backend):
    """LLVM-compiled kernels called through ctypes, one row per instance (the evaluator and
    ``Model.function`` call the same kernels through the XLA FFI: :mod:`.native._backend`)."""

    name = "native"

    def init(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        from .native._kernel import init_rows

        return init_rows(model, inputs, sp, nb)

    def eval(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        from .native._backend import eval_numpy

        return eval_numpy(model, inputs, sp, nb)
