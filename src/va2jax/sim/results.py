"""Analysis results (what every analysis returns, independent of how it was computed)."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import Va2JaxError


@dataclass
class Stats:
    points: int = 0
    rejected: int = 0
    newton_iterations: int = 0
    compile_s: float = 0.0
    run_s: float = 0.0


@dataclass
class Result:
    """One analysis result: ``data[:, i]`` is the value of ``names[i]`` at each point."""

    name: str
    kind: str  # op | dc | tran | ac | dcinc | dcxf | acxf | tf
    scale_name: str | None  # "time", "frequency", sweep name, or None (op)
    scale: np.ndarray | None
    names: list[str]
    data: np.ndarray  # (npoints, n) float or complex
    stats: Stats = field(default_factory=Stats)
    lead: int = 0  # leading columns that are not unknowns (VACASK sweep values)
    #: the vectors are in the order to write (VACASK ``save``); otherwise unknowns are sorted
    ordered: bool = False
    #: rawfile variable types of ``names`` where the analysis knows them (ngspice's noise:
    #: ``voltage-density``, ``current-density``, …); otherwise derived from the names
    types: list[str] | None = None

    def __getitem__(self, key: str) -> np.ndarray:
        if key == self.scale_name and self.scale is not None:
            return self.scale
        try:
            return self.data[:, self.names.index(key)]
        except ValueError:
            from ..errors import suggest

            raise Va2JaxError(f"result {self.name} has no signal {key!r}"
                              + suggest(key, self.names)) from None
