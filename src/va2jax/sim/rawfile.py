"""SPICE binary rawfiles (the layout written by ngspice and VACASK) and CSV output.

A rawfile is one or more plots, each an ASCII header followed by binary data::

    Title: <text>
    Date: <text>
    Plotname: Transient Analysis
    Flags: real | complex
    No. Variables: <n>
    No. Points: <p>
    Variables:
    \\t<i>\\t<name>\\t<type>        (one line per variable; type time|frequency|voltage|current)
    Binary:
    <p × n little-endian float64 (real) or p × n × (re, im) float64 pairs (complex)>

The scale (time, frequency, sweep) is variable 0; an operating point has no scale.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import Va2JaxError
from .results import Result

_PLOTNAMES = {"op": "Operating Point", "tran": "Transient Analysis",
              "dc": "DC transfer characteristic", "ac": "AC Small Signal Analysis",
              "dcinc": "DC Incremental Response Analysis", "dcxf": "DC Transfer Function Analysis",
              "acxf": "AC Small Signal Transfer Function Analysis",
              "noise": "Small-Signal Noise Analysis", "hb": "Harmonic Balance Analysis"}
#: ngspice's plot names where they differ from VACASK's (``dialect="spice"``)
_SPICE_PLOTNAMES = {"ac": "AC Analysis", "tf": "Transfer Function",
                    "noise_spectrum": "Noise Spectral Density Curves",
                    "noise_integrated": "Integrated Noise"}


def _var_type(name: str) -> str:
    if name.startswith(("tf(", "zin(", "yin(")):  # transfer functions, impedances (dcxf, acxf)
        return "notype"
    return "current" if ":flow(" in name or name.startswith("i(") else "voltage"


def write_raw(path: str | Path, results: list[Result], title: str = "va2jax",
              dialect: str = "vacask") -> None:
    """Write ``results`` as consecutive plots of one binary rawfile, with the plot names the
    netlist's simulator (``dialect``: VACASK, or ngspice for ``"spice"``) writes."""
    names = {**_PLOTNAMES, **(_SPICE_PLOTNAMES if dialect == "spice" else {})}
    with open(path, "wb") as fh:
        for res in results:
            cplx = np.iscomplexobj(res.data)
            cols: list[np.ndarray] = []
            vars_: list[tuple[str, str]] = []
            if res.scale is not None and res.scale_name:
                stype = {"time": "time", "frequency": "frequency"}.get(res.scale_name, "voltage")
                stype = "notype" if res.kind in ("noise", "hb") else stype  # as VACASK writes it
                vars_.append((res.scale_name, stype))
                cols.append(np.asarray(res.scale))
            order = list(range(len(res.names)))
            if dialect != "spice" and not res.ordered:  # VACASK: unknowns sorted (strcmp)
                order = order[:res.lead] + sorted(order[res.lead:],
                                                  key=lambda i: res.names[i].encode())
            for i in order:
                nm = res.names[i]
                tp = res.types[i] if res.types else ("notype" if res.kind in ("noise", "hb") else _var_type(nm))
                vars_.append((nm, tp))
                cols.append(res.data[:, i])
            npts = res.data.shape[0]
            hdr = [f"Title: {title}",
                   f"Date: {_dt.datetime.now().strftime('%a %b %d %H:%M:%S %Y')}",
                   f"Plotname: {names.get(res.kind, res.kind)}",
                   f"Flags: {'complex' if cplx else 'real'}",
                   f"No. Variables: {len(vars_)}",
                   f"No. Points: {npts}",
                   "Variables:"]
            hdr += [f"\t{i}\t{nm}\t{tp}" for i, (nm, tp) in enumerate(vars_)]
            hdr.append("Binary:")
            fh.write(("\n".join(hdr) + "\n").encode())
            if cplx:
                arr = np.stack([np.asarray(c, complex) for c in cols], axis=1)
                fh.write(arr.astype("<c16").tobytes())
            else:
                arr = np.stack([np.asarray(c, float) for c in cols], axis=1)
                fh.write(arr.astype("<f8").tobytes())


@dataclass
class RawPlot:
    title: str
    plotname: str
    names: list[str]
    types: list[str]
    data: np.ndarray  # (points, variables)

    def __getitem__(self, key: str) -> np.ndarray:
        for i, n in enumerate(self.names):
            if n == key:
                return self.data[:, i]
        low = key.lower()
        for i, n in enumerate(self.names):
            if n.lower() == low or n.lower() == f"v({low})":
                return self.data[:, i]
        raise KeyError(key)


def read_raw(path: str | Path) -> list[RawPlot]:
    """Read every plot of a binary (or ASCII ``Values:``) rawfile written by ngspice/VACASK/va2jax."""
    blob = Path(path).read_bytes()
    plots: list[RawPlot] = []
    pos = 0
    while pos < len(blob):
        hdr: dict[str, str] = {}
        names: list[str] = []
        types: list[str] = []
        while True:
            end = blob.find(b"\n", pos)
            if end < 0:
                raise Va2JaxError(f"{path}: truncated rawfile header")
            line = blob[pos:end].decode(errors="replace")
            pos = end + 1
            if line.startswith("\t") or (line[:1].isspace() and line.strip() and "Variables" in hdr):
                parts = line.split()
                names.append(parts[1])
                types.append(parts[2] if len(parts) > 2 else "")
                continue
            if line.strip() in ("Binary:", "Values:"):
                kind = line.strip()
                break
            if ":" in line:
                k, v = line.split(":", 1)
                hdr[k.strip()] = v.strip()
        nvar = int(hdr["No. Variables"])
        npts = int(hdr["No. Points"])
        cplx = "complex" in hdr.get("Flags", "")
        if kind == "Binary:":
            width = 16 if cplx else 8
            nbytes = nvar * npts * width
            arr = np.frombuffer(blob[pos:pos + nbytes], dtype="<c16" if cplx else "<f8")
            pos += nbytes
            data = arr.reshape(npts, nvar).copy()
        else:
            vals: list[complex | float] = []
            text = blob[pos:].decode()
            toks = re.split(r"\s+", text.strip())
            # ASCII: "<idx> <v0>\n <v1> ..." per point
            j = 0
            rows = []
            for _ in range(npts):
                j += 1  # point index
                row = []
                for _ in range(nvar):
                    t = toks[j]
                    j += 1
                    row.append(complex(*map(float, t.split(","))) if cplx else float(t))
                rows.append(row)
            data = np.array(rows)
            pos = len(blob)
            del vals
        plots.append(RawPlot(hdr.get("Title", ""), hdr.get("Plotname", ""), names, types, data))
        while pos < len(blob) and blob[pos:pos + 1] in (b"\n", b"\r"):
            pos += 1
    return plots


def write_csv(path: str | Path, res: Result) -> None:
    """Write one result as CSV (complex values as ``name.re, name.im`` columns)."""
    cols: list[tuple[str, np.ndarray]] = []
    if res.scale is not None and res.scale_name:
        cols.append((res.scale_name, np.asarray(res.scale)))
    for i, nm in enumerate(res.names):
        v = res.data[:, i]
        if np.iscomplexobj(v):
            cols += [(nm + ".re", v.real), (nm + ".im", v.imag)]
        else:
            cols.append((nm, v))
    arr = np.stack([c for _, c in cols], axis=1)
    header = ",".join(n for n, _ in cols)
    np.savetxt(path, arr, delimiter=",", header=header, comments="", fmt="%.17g")
