"""IR → readable Python/JAX source, and the :class:`Model` that runs it."""
from ._generate import GeneratedModule, generate
from ._model import FUSION_ON, EvalOutput, Model, ModelParam, compile_va

__all__ = ["FUSION_ON", "EvalOutput", "GeneratedModule", "Model", "ModelParam", "compile_va", "generate"]
