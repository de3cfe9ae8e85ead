"""The NumPy backend: the generated code run eagerly with NumPy stand-ins for ``jnp``/``lax``
(``_rt_np``) — the same operations in the same order as the JAX code, no compilation."""
from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import Backend
from ._inputs import batch_assemble, batch_inputs


class NumpyBackend(Backend):
    """Eager NumPy over the batch: the backend of setup, and of one-off evals."""

    name = "numpy"

    def init(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        with np.errstate(all="ignore"):
            return model._np["init"](inputs, {k: np.float64(v) for k, v in sp.items()})

    def eval(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        ein, lab = batch_inputs(model, inputs, nb, np)
        with np.errstate(all="ignore"):
            out = model._np["eval"](ein, {k: np.float64(v) for k, v in sp.items()})
        return batch_assemble(model, out, lab, nb, np)
