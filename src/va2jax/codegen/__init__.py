"""IR → readable Python/JAX source, and the :class:`Model` that runs it."""
from ._compile import compile_va
from ._generate import GeneratedModule, generate
from ._model import EvalOutput, Model, ModelParam, SetupState
from ._noise import noise_density, noise_params
from ._xla import FUSION_OFF, FUSION_ON, persistent_cache

__all__ = ["FUSION_OFF", "FUSION_ON", "EvalOutput", "GeneratedModule", "Model", "ModelParam", "SetupState",
           "compile_va", "generate", "noise_density", "noise_params", "persistent_cache"]
