"""Noise densities of a generated model, as OSDI's ``load_noise`` returns them.

For source k (OSDI's ``noise_sources`` order and names) at frequency f (Hz) OpenVAF's
``load_noise`` stores

* white noise ``white_noise(P, "name")``: ``S = (P · a) · a``,
* flicker noise ``flicker_noise(P, e, "name")``: ``S = ((P / pow(f, e)) · a) · a``,

in A²/Hz for a current contribution ``I(…) <+`` (``a = √$mfactor``: the power of ``m`` devices in
parallel is m times one's) and V²/Hz for a voltage contribution ``V(…) <+`` (``a = 1/√$mfactor``),
with P and e as the model computes them at the operating point after ``eval`` (0 where the
contribution is not reached). The operations and their order are OSDI's, so the NumPy backend
(C library ``pow``) reproduces an ``openvaf-r -O0`` library bit for bit.

P and e come from the model's *noise variant* (:mod:`va2jax.mir._noise`): the same source with
each power (and exponent) also contributed to a new internal node, compiled and set up like the
model itself. The front end reads that node's resistive residual before its ``$mfactor`` scaling
(:func:`va2jax.mir.unscale_noise_residuals`), so it is P itself, bit for bit (dividing
``$mfactor · P`` by ``$mfactor`` was one rounding off for ``$mfactor`` not a power of 2).
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .._paths import cache_dir
from ..errors import Va2JaxError
from ..mir import NoiseSite, noise_variant
from ..osdi import flags as _flags

#: OSDI's analysis flags during a noise analysis (as ``OsdiInstance.noise`` evaluates)
NOISE_ANALYSIS = _flags.ANALYSIS_NOISE | _flags.ANALYSIS_AC


class NoiseSupport:
    """How to compute each of a model's noise sources: the variant model and, per OSDI source,
    the site (``None`` with the reason when va2jax cannot compute it)."""

    def __init__(self, model):
        self.model = model
        self.names = tuple(s.name for s in model.ir.noise_sources)
        path, incs, defs, module = getattr(model, "_origin", (None, (), {}, None))
        if path is None:
            raise Va2JaxError(f"module {model.name}: noise needs the model's Verilog-A source")
        self.sites: list[NoiseSite | None] = []
        self.reasons: list[str] = []
        self.variant = None
        self._vmap, self._pw, self._ex = [], [], []
        if not model.ir.noise_sources:
            return
        vpath, sites = noise_variant(path, cache_dir() / "noise-src", incs)
        used: set[int] = set()
        nodes = [n.lower() for n in model.nodes]
        for src in model.ir.noise_sources:
            want = {nodes[src.a], nodes[src.b] if src.b is not None else None}
            cands = [k for k, s in enumerate(sites) if k not in used and s.name == src.name]
            exact = [k for k in cands if _same_nodes(sites[k], want)]
            pick = (exact or cands or [None])[0]
            if pick is None:
                unnamed = [s for s in sites if s.name is None or not s.node]
                why = unnamed[0].why if unnamed and unnamed[0].why else "its call site was not found"
                self.sites.append(None)
                self.reasons.append(why)
                continue
            used.add(pick)
            s = sites[pick]
            self.sites.append(s if s.node else None)
            self.reasons.append(s.why)
        if self.sites and all(self.sites):  # else check() refuses: no variant needed
            compile_va = getattr(model, "_compiler", None)
            if compile_va is None:
                raise Va2JaxError(f"module {model.name}: noise needs a model made by va2jax.compile_va")
            self.variant = compile_va(vpath, module or model.ir.osdi_name or model.name, defines=defs)
        vn = {n.lower(): i for i, n in enumerate(self.variant.nodes)} if self.variant else {}
        self._vmap = [vn[n] for n in nodes] if self.variant else []
        self._pw = [vn.get(s.node.lower()) if s else None for s in self.sites]
        self._ex = [vn.get(s.node.lower() + "e") if s and s.kind == "flicker" else None for s in self.sites]
        if self.variant is not None:
            for k, s in enumerate(self.sites):
                if s is not None and (self._pw[k] is None or (s.kind == "flicker" and self._ex[k] is None)):
                    self.sites[k] = None  # OpenVAF dropped the probe (should not happen): refuse
                    self.reasons[k] = "its probe node is missing from the noise variant"
                elif s is not None and ({s.node.lower(), s.node.lower() + "e"}
                                        & {n.lower() for n in self.variant.ir.scaled_probes}):
                    self.sites[k] = None  # P only as $mfactor · P: not bit-exact, refuse
                    self.reasons[k] = "its probe residual has an unexpected form ($mfactor scaling)"

    def check(self) -> None:
        bad = [(n, r) for n, s, r in zip(self.names, self.sites, self.reasons) if s is None]
        if bad:
            raise Va2JaxError(f"module {self.model.name}: va2jax cannot compute noise source "
                              f"{bad[0][0]!r}: {bad[0][1]}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))


def _same_nodes(site: NoiseSite, want: set) -> bool:
    """Whether a call site's contribution ``I(a, b)``/``V(a, b)`` is the OSDI source between the
    unknowns ``want``. A source in a voltage contribution lies on its branch's current unknown,
    which OpenVAF names ``flow(x,y)`` with the branch's nodes in its own order (BSIM4's
    ``V(bi, sbulk) <+ white_noise(…)`` is OSDI's ``flow(sbulk,bi)``): compared as a set."""
    lhs = set(site.lhs) | ({None} if len(site.lhs) == 1 else set())
    if lhs == want:
        return True
    flows = [n for n in want if n is not None and n.startswith("flow(") and n.endswith(")")]
    if site.access == "V" and None in want and len(want) == 2 and len(flows) == 1:
        return {x.strip() for x in flows[0][5:-1].split(",")} == set(site.lhs)
    return False


def _support(model) -> NoiseSupport:
    sup = getattr(model, "_noise_support", None)
    if sup is None:
        sup = NoiseSupport(model)
        model._noise_support = sup
    return sup


def unsupported(model) -> dict[str, str]:
    """See :meth:`va2jax.codegen.Model.noise_unsupported`."""
    sup = _support(model)
    return {n: r for n, s, r in zip(sup.names, sup.sites, sup.reasons) if s is None}


def noise_params(model, voltages: Any, params: Mapping[str, Any] | None = None, *,
                 temperature: Any = 300.15, sim_params: Mapping[str, float] | None = None,
                 backend: str = "numpy", connected: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[str, ...]]:
    """Per instance and source: power P, exponent e (0 for white noise) and factor a of the
    formula in the module docstring; shapes (N, n_src). Also the kinds (``white``/``flicker``).
    ``connected``: the instances' connected terminals, as :meth:`Model.setup`."""
    sup = _support(model)
    sup.check()
    V = np.asarray(voltages, np.float64)
    if V.ndim not in (1, 2) or V.shape[-1] != len(model.nodes):
        raise Va2JaxError(f"module {model.name}: expected {len(model.nodes)} node voltages "
                          f"{model.nodes} as shape (n,) or (N, n), got shape {V.shape}")
    V2 = np.atleast_2d(V)
    kinds = tuple(s.kind for s in sup.sites)  # type: ignore[union-attr]
    if not sup.sites:
        z = np.zeros((V2.shape[0], 0))
        return z, z, z, kinds
    vm = sup.variant
    state = vm.setup(params, temperature=temperature, sim_params=sim_params, connected=connected)
    nb = max(V2.shape[0], state.labels.shape[0])
    Vv = np.zeros((V2.shape[0], len(vm.nodes)))
    Vv[:, sup._vmap] = V2
    out = vm.eval(state, Vv, analysis=NOISE_ANALYSIS, backend=backend)
    rr = np.broadcast_to(np.atleast_2d(np.asarray(out.residual_resist)), (nb, len(vm.nodes)))
    m = np.broadcast_to(np.asarray(state.mfactor, np.float64), (nb,))
    P = np.stack([rr[:, k] for k in sup._pw], axis=1)  # unscaled by $mfactor: see module docstring
    E = np.stack([rr[:, k] if k is not None else np.zeros(nb) for k in sup._ex], axis=1)
    sq = np.sqrt(m)[:, None]
    A = np.concatenate([sq if s.access == "I" else 1.0 / sq for s in sup.sites], axis=1)  # type: ignore[union-attr]
    return P, E, A, kinds


def noise_density(P: np.ndarray, E: np.ndarray, A: np.ndarray, kinds: tuple[str, ...], freq: Any,
                  pow_fn=None) -> np.ndarray:
    """``load_noise``'s densities from :func:`noise_params` at ``freq`` (Hz, scalar or (N,))."""
    if pow_fn is None:
        from ._rt_np import jnp as _np_rt

        pow_fn = _np_rt.power
    f = np.broadcast_to(np.asarray(freq, np.float64), (P.shape[0],))
    cols = []
    for k, kind in enumerate(kinds):
        t = P[:, k]
        if kind == "flicker":
            t = t / pow_fn(f, E[:, k])
        t = t * A[:, k]
        cols.append(t * A[:, k])
    return np.stack(cols, axis=1) if cols else np.zeros((P.shape[0], 0))


def model_noise(model, voltages: Any, freq: Any, params: Mapping[str, Any] | None = None, *,
                temperature: Any = 300.15, sim_params: Mapping[str, float] | None = None,
                backend: str = "numpy") -> np.ndarray:
    """See :meth:`va2jax.codegen.Model.noise`."""
    try:
        fa = np.asarray(freq, np.float64)
    except (TypeError, ValueError):
        raise Va2JaxError(f"module {model.name}: the noise frequency must be a number in Hz") from None
    if not np.all(np.isfinite(fa)) or np.any(fa <= 0):
        raise Va2JaxError(f"module {model.name}: the noise frequency must be finite and above 0 Hz, "
                          f"got {freq!r}")
    P, E, A, kinds = noise_params(model, voltages, params, temperature=temperature,
                                  sim_params=sim_params, backend=backend)
    d = noise_density(P, E, A, kinds, fa)
    if np.ndim(voltages) == 1 and fa.ndim == 0 and d.shape[0] == 1:
        return d[0]
    return d


def noise_function(model, names: list[str], fixed: Mapping[str, Any] | None = None, *,
                   sim_params: Mapping[str, float] | None = None):
    """See :meth:`va2jax.codegen.Model.noise_function`."""
    from ._backend_jax import _jax
    from ._params import mfactor_of

    _jax()
    import jax.numpy as jnp

    sup = _support(model)
    sup.check()
    fixed = dict(fixed or {})
    canon = [model.canonical_param(n) for n in names]
    vm = sup.variant
    g = vm.function(names, fixed, analysis=NOISE_ANALYSIS, sim_params=sim_params,
                    backend="jax")
    vidx = jnp.asarray(sup._vmap, jnp.int32)
    m_name = next((n for n, c in zip(names, canon) if c == "$mfactor"), None)
    m_fixed = float(mfactor_of(model, fixed))
    kinds = [s.kind for s in sup.sites]  # type: ignore[union-attr]
    volt = [s.access == "V" for s in sup.sites]  # type: ignore[union-attr]

    def f(values: Mapping[str, Any], temperature: Any, V: Any, freq: Any):
        Vv = jnp.zeros(len(vm.nodes), jnp.float64).at[vidx].set(jnp.asarray(V, jnp.float64))
        rr = g(values, temperature, Vv)["residual_resist"]
        m = jnp.asarray(values[m_name], jnp.float64) if m_name else jnp.float64(m_fixed)
        a = jnp.sqrt(m)
        out = []
        for k, kind in enumerate(kinds):
            t = rr[sup._pw[k]]
            if kind == "flicker":
                t = t / jnp.power(jnp.asarray(freq, jnp.float64), rr[sup._ex[k]])
            ak = 1.0 / a if volt[k] else a
            out.append((t * ak) * ak)
        return jnp.stack(out) if out else jnp.zeros(0)

    return f
