"""The seam between a :class:`~va2jax.codegen.Model` and the code that runs its generated
``init`` and ``eval``: one :class:`Backend` per way of running it — NumPy (``_backend_numpy``,
eager, no compile), JAX (``_backend_jax``, XLA-compiled, traceable) and native
(``_backend_native``, LLVM machine code from :mod:`.native`). All three read the same eval
inputs (``_inputs.batch_inputs``) and assemble the same outputs (``_inputs.batch_assemble``).
"""
from __future__ import annotations

import abc
from typing import Any, ClassVar

from ..errors import Va2JaxError


class Backend(abc.ABC):
    """A way of running a model's generated setup (init) and eval over a batch."""

    #: the name users pass as ``backend=`` (``"numpy"``, ``"jax"``, ``"native"``)
    name: ClassVar[str]

    def init(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        """Run the generated ``init`` (OSDI ``setup_model`` + ``setup_instance``) for a batch.

        **Arguments:**

        - `model`: the :class:`~va2jax.codegen.Model` whose code runs.
        - `inputs`: init's inputs by value name, arrays of shape (`nb`,) (``_params.init_inputs``).
        - `sp`: simulator parameters by name (scalars, e.g. ``gmin``).
        - `nb`: the number of instances.

        **Returns:**

        Init's outputs by name (cached values, ``param:<name>``, ``collapse<k>``, bound flags),
        host (NumPy) arrays broadcastable to (`nb`,).

        A backend that does not run setup raises :class:`~va2jax.Va2JaxError` (the default).
        """
        raise Va2JaxError(f"unknown setup backend {self.name!r} (numpy or native)")

    @abc.abstractmethod
    def eval(self, model: Any, inputs: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
        """Evaluate residuals and Jacobians of a batch.

        **Arguments:**

        - `model`: the :class:`~va2jax.codegen.Model` whose code runs.
        - `inputs`: the flat batch of `nb` instances (``_state.eval_inputs``): voltages ``V``
          (`nb`, n), the setup state's pieces, ``analysis``, ``enable_lim``, ``prev_state``.
        - `sp`: simulator parameters by name (scalars).
        - `nb`: the number of instances.

        **Returns:**

        The dense, collapsed outputs (``residual_resist`` (`nb`, n), ``jacobian_resist``
        (`nb`, n, n), …, ``states``, and ``scale_*`` when scales were requested) as host
        (NumPy) arrays with the instance axis in front.
        """

