"""va2jax circuit simulator: DC operating point, DC sweep, transient and AC on MNA.

>>> from va2jax.sim import simulate
>>> results = simulate("examples/circuits/rc.sim")       # doctest: +SKIP
>>> tran = results["tran1"]; tran["time"], tran["2"]      # doctest: +SKIP

Netlists: VACASK ``.sim`` (:mod:`.parse_vacask`) and a SPICE subset (:mod:`.parse_spice`).
Devices: :mod:`.devices` (interface), :mod:`.adapters` (generated JAX / OSDI / built-in).
Batched Monte-Carlo / corner runs over N parameter sets (vmapped, optionally sharded):
:func:`sweep`, :class:`BatchSweep` (:mod:`.batch`).
Differentiable analyses (a netlist as a pure JAX function of its parameters): :func:`function`
(:mod:`.differentiable`); the noise analysis as one: :func:`noise_function`; the transfer
functions ``dcxf``/``acxf`` as one: :func:`xf_function`.
"""
from __future__ import annotations

from .. import _config

_config.enable_x64()  # float64 throughout the simulator, set before its modules load

from ._noise_grad import noise_function  # noqa: E402
from ._xf_grad import xf_function  # noqa: E402
from .analysis import run_ac, run_dc_sweep, run_op, run_tran  # noqa: E402,F401
from .batch import BatchSweep, sweep  # noqa: E402
from .differentiable import CircuitFunction, crossings, function  # noqa: E402
from .engine import ConvergenceError, Engine, Options  # noqa: E402,F401
from .mna import System, build_system  # noqa: E402,F401
from .results import Result, Stats  # noqa: E402,F401
from .simulation import Simulation, read_netlist, simulate  # noqa: E402

__all__ = ["simulate", "Simulation", "read_netlist", "Result", "Options", "ConvergenceError",
           "sweep", "BatchSweep", "function", "CircuitFunction", "crossings", "noise_function",
           "xf_function"]
