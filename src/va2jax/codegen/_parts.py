"""Split eval (large models): the generated eval comes in parts (``EVAL_PARTS``) that are
compiled separately — ``pre`` (inputs) → parts in order → ``post`` (outputs) — each a
:class:`~._exe_cache.CachedJit` per padded batch size, XLA-compiled in parallel
(:data:`._xla.PARALLEL_COMPILE` threads) on first use.

Functions taking ``self`` are :class:`~va2jax.codegen.Model` methods (bound there).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _xla
from ._exe_cache import CachedJit
from ._inputs import batch_assemble, batch_inputs
from ._state import VOLT_DYNAMIC
from ._xla import _jax, _options_for


def bucket(nb: int) -> int:
    """The padded batch size of ``nb`` instances: the next power of two (new sizes rarely
    recompile)."""
    return 1 << max(0, (nb - 1).bit_length())


def padder(size: int):
    """Pad a batch (leading axis) to ``size`` by repeating its last instance."""
    def pad(x):
        x = np.asarray(x)
        if x.shape[0] == size:
            return x
        return np.concatenate([x, np.repeat(x[-1:], size - x.shape[0], axis=0)], axis=0)
    return pad


def exe_key(self, what: str, size: int) -> str | None:
    """Name of a compiled piece of eval in the executable cache (None: do not cache)."""
    if self._cache_key is None:
        return None
    return f"{self._cache_key}:{what}:{size}:scales={self._with_scales}"


def run_parts(self, inp: dict[str, Any], sp: dict[str, Any], nb: int) -> dict[str, Any]:
    """Large models: each generated part is jit+vmap-compiled on its own (see PART_SIZE)."""
    size = bucket(nb)
    pad = padder(size)
    static = static_inputs(self, inp, nb, size)
    res = parts_padded(self, {"V": pad(inp["V"]), "labels": pad(inp["labels"])}, sp, size, static)
    return {k: np.asarray(v)[:nb] for k, v in res.items()}


def static_inputs(self, inp: dict[str, Any], nb: int, size: int,
                   dynamic: frozenset[str] | None = None) -> dict[str, np.ndarray]:
    """The eval inputs of a split eval that do not change between calls (kinds not in
    ``dynamic``), made with NumPy — only those a piece reads, each padded to ``size`` —
    instead of padding the whole setup state (PSP103: ≈ 1,500 arrays) and handing it to
    ``pre``. ``inp``: the setup state and flags of ``nb`` instances (leading axis 1 or nb)."""
    pad = padder(size)
    ein, _ = batch_inputs(self, inp, nb, np, part_needs(self), "static", dynamic)
    out = {}
    for k, v in ein.items():
        v = np.asarray(v)
        out[k] = pad(v if v.shape[:1] == (nb,) else np.broadcast_to(v, (nb,) + v.shape[1:]))
    return out


def parts_padded(self, pin: dict[str, Any], sp: dict[str, Any], size: int,
                  static: dict[str, Any] | None = None,
                  dynamic: frozenset[str] | None = None) -> dict[str, Any]:
    """Eval of a split model on inputs already padded to ``size``: inputs (``pre``), the parts
    in order, outputs (``post``), each a compiled piece; results keep the padding.

    ``static``: the eval inputs that do not depend on the voltages, made once by
    :meth:`evaluator` (then ``pin`` holds only ``V`` and ``labels`` and ``pre`` computes only
    the voltage inputs). Only inputs some piece reads are made: PSP103's eval has ≈ 2,900
    inputs (1,630 of them unused zeros), and every array a compiled call returns costs µs.
    ``dynamic``: the input kinds ``pin`` provides per call (see :meth:`_batch_inputs`)."""
    jax = _jax()
    which = "all" if static is None else "volt"
    dynamic = VOLT_DYNAMIC if dynamic is None else dynamic
    key = ("pre", size, which, dynamic)
    pre = self._eval_jit.get(key)
    if pre is None:
        needs = part_needs(self)
        tag = which if dynamic == VOLT_DYNAMIC else f"{which}-lim"
        pre = self._eval_jit[key] = CachedJit(
            lambda i: batch_inputs(self, i, size, jax.numpy, needs, which, dynamic),
            exe_key(self, f"pre-{tag}", size), _options_for(size))
    rest = self._eval_jit.get(("parts", size))
    fresh = rest is None or not pre.ready()
    if rest is None:  # parts and post are shared by both kinds of pre
        opts = _options_for(size)
        parts = [CachedJit(p, exe_key(self, f"part{k}", size), opts)
                 for k, p in enumerate(self._module.EVAL_PARTS)]
        post = CachedJit(lambda outs, lab: batch_assemble(self, outs, lab, size, jax.numpy),
                         exe_key(self, "post", size), opts)
        # constant outputs do not depend on the inputs: made once per bucket, not per call
        # (an eager JAX op costs ~0.1 ms at small batch)
        consts = {key: jax.numpy.full((size,), self._const_outputs[var])
                  for key, var in self._output_vars.items() if var in self._const_outputs}
        rest = self._eval_jit[("parts", size)] = (parts, post, consts)
    fns = (pre, *rest)
    if fresh and _xla.PARALLEL_COMPILE > 1:
        prepare_parts(self, fns, pin, sp, static)
    return chain(self, fns, pin, sp, lambda piece, *args: piece(*args), static)


def part_needs(self) -> frozenset[str]:
    """Eval inputs that a part or an output of a split eval reads (computed once per model)."""
    if "_part_needs" in self.__dict__:
        return self._part_needs
    needs = set(self._output_vars.values())
    for inp_names, _env in self._module.EVAL_PART_INPUTS:
        needs.update(inp_names)
    self._part_needs = frozenset(needs)
    return self._part_needs


def chain(self, fns, pin, sp, call, static=None):
    """Data flow of a split eval: ``pre`` → parts (each fed the values it reads) → ``post``.
    ``call(piece, *args)`` runs one piece — or, given shapes, only prepares it."""
    pre, parts, post, consts = fns
    ein, lab = call(pre, pin)
    if static is not None:
        ein = {**static, **ein}
    env: dict[str, Any] = {}
    for part, (inp_names, env_names) in zip(parts, self._module.EVAL_PART_INPUTS):
        env.update(call(part, {k: ein[k] for k in inp_names}, {k: env[k] for k in env_names}, sp))
    # output keys (rr0, jr3, …) → values held in env, eval's inputs, or constants
    outs = {key: consts[key] if key in consts else (env[var] if var in env else ein[var])
            for key, var in self._output_vars.items()}
    return call(post, outs, lab)


def prepare_parts(self, fns, pin, sp, static=None) -> None:
    """Compile the pieces of a split eval in parallel: each is lowered in turn (the next one's
    input shapes come from this one's outputs, nothing runs) and XLA-compiled on a thread
    pool of :data:`PARALLEL_COMPILE` workers while the next is lowered; pieces already in the
    executable cache are only loaded."""
    from concurrent.futures import ThreadPoolExecutor

    jax = _jax()
    pending = []

    def shapes(tree):
        return jax.tree_util.tree_map(
            lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=getattr(a, "weak_type", False)), tree)

    def prepare(piece, *args):
        out, fut = piece.prepare(args, pool)
        if fut is not None:
            pending.append(fut)
        return shapes(out)

    with ThreadPoolExecutor(_xla.PARALLEL_COMPILE) as pool:
        try:
            chain(self, fns, pin, sp, prepare, static)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
        for fut in pending:
            fut.result()  # a compilation's own error surfaces here
