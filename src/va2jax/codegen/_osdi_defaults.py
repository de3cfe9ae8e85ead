"""Model-parameter defaults read back from an OSDI build of the same source.

Why: a model parameter whose default is an *expression* is defaulted by OpenVAF's
``setup_model``, which openvaf-py does not export (its ``init`` holds only ``setup_instance``).
Until it does, :func:`osdi_defaults` compiles the module with OpenVAF once (cached), runs
``setup_model`` with the given model parameters and reads every model parameter back — exact
OpenVAF semantics. Setup calls it only when such a default is needed (see
``_params.resolve_params``); no eval path does.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def osdi_defaults(self, model_params: dict[str, Any]) -> dict[str, Any]:
    """Model parameters (lower-case name → value) after OSDI's ``setup_model`` with
    ``model_params`` given (cached per model and values)."""
    key = tuple(sorted((k, repr(v)) for k, v in model_params.items()))
    cache = self.__dict__.setdefault("_osdi_default_cache", {})
    if key in cache:
        return cache[key]
    from ..osdi import compile_va_to_osdi, load_library

    mod = load_library(compile_va_to_osdi(self.ir.source)).module(self.ir.osdi_name or self.name)
    scalar = {k: (np.asarray(v).reshape(-1)[0].item() if not isinstance(v, str) else v)
              for k, v in model_params.items()}
    m = mod.model(scalar)
    res: dict[str, Any] = {}
    for p in mod.params:
        if p.kind == "model" and p.length == 0:
            try:
                res[p.name.lower()] = m.get(p.name)
            except Exception:  # pragma: no cover - unreadable parameter
                pass
    cache[key] = res
    return res
