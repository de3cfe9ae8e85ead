"""``conformance.md`` + per-model plots for a corpus sweep (``va2jax validate --corpus --report DIR``)."""
from __future__ import annotations

import datetime as _dt
import math
import re
from pathlib import Path
from typing import Any

import numpy as np

from ._compare import ABS_FLOOR, OUTPUTS, REL_TOL, ValidationResult

_SHORT = {"residual_resist": "I (resist)", "residual_react": "Q (react)",
          "jacobian_resist": "dI/dV", "jacobian_react": "dQ/dV"}


def plot_name(rel: str) -> str:
    """PNG file name for a corpus file (``bosdi/spice/sn/mos1.va`` → ``bosdi-spice-sn-mos1.png``)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", rel.removesuffix(".va")) + ".png"


def _mpl():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plot(res: ValidationResult, path: Path, title: str) -> bool:
    """I–V, C–V (both paths overlaid) and the relative-error histogram of one model, as a small PNG."""
    data = res.data
    if not data or "V" not in data:
        return False
    plt = _mpl()
    bias = data["bias"]
    ref, out = data["ref"], data["out"]
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.6), dpi=72)
    segs = bias.segments if bias is not None else []
    iv = [s for s in segs if s.kind == "iv"]
    cv = [s for s in segs if s.kind == "cv"][:1]
    ax = axes[0]
    ymax = 0.0
    for k, s in enumerate(iv):
        y_ref = ref["residual_resist"][s.start:s.stop, s.current_node]
        y_out = np.asarray(out["residual_resist"])[s.start:s.stop, s.current_node]
        ymax = max(ymax, float(np.nanmax(np.abs(np.where(np.isfinite(y_ref), y_ref, 0.0)), initial=0.0)))
        ax.plot(s.x, y_ref, "-", color=f"C{k}", lw=1.2, label=s.family or None)
        ax.plot(s.x, y_out, "x", color=f"C{k}", ms=3)
    if iv:
        node = res_nodes(res, iv[0].current_node)
        ax.set_xlabel(iv[0].xlabel, fontsize=7)
        ax.set_ylabel(f"I({node}) (A)", fontsize=7)
        if ymax > 0:
            ax.set_yscale("symlog", linthresh=max(ymax * 1e-6, 1e-300))
        if any(s.family for s in iv):
            ax.legend(fontsize=5, loc="best")
    ax.set_title("I–V: OSDI (line), va2jax (x)", fontsize=7)
    ax = axes[1]
    for s in cv:
        j = s.swept_node
        ax.plot(s.x, ref["jacobian_react"][s.start:s.stop, j, j], "-", color="C0", lw=1.2)
        ax.plot(s.x, np.asarray(out["jacobian_react"])[s.start:s.stop, j, j], "x", color="C1", ms=3)
        ax.set_xlabel(s.xlabel, fontsize=7)
        ax.set_ylabel(f"dQ({res_nodes(res, j)})/dV (F)", fontsize=7)
    ax.set_title("C–V: OSDI (line), va2jax (x)", fontsize=7)
    ax = axes[2]
    allrel = np.concatenate([np.concatenate(data["rel"][o]) if data["rel"][o] else np.zeros(0)
                             for o in OUTPUTS])
    nz = allrel[allrel > 0]
    nzero = int(allrel.size - nz.size)
    if nz.size:
        ax.hist(np.clip(np.log10(nz), -17.5, 0.0), bins=np.linspace(-17.5, 0.0, 36), color="C2")
    ax.axvline(math.log10(REL_TOL), color="r", lw=1)
    ax.set_xlabel("log10 relative error (non-zero)", fontsize=7)
    ax.set_title(f"{allrel.size} entries, {nzero} exact", fontsize=7)
    for a in axes:
        a.tick_params(labelsize=6)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return True


def res_nodes(res: ValidationResult, i: int) -> str:
    nodes = (res.data or {}).get("nodes")
    return nodes[i] if nodes and i < len(nodes) else str(i)


def _fmt(x: Any) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if math.isnan(x):
            return "–"
        return "0" if x == 0 else f"{x:.1e}"
    return str(x)


def _sec(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


_BACKEND_TEXT = {
    "numpy": "the generated code run eagerly with NumPy — the same code the JAX path jit-compiles",
    "jax": "the generated code run with JAX (jit)",
    "native": "the typed IR compiled to machine code by LLVM, no fast-math: bit-identical to "
              "openvaf-r -O0 is the target",
}


def _noise_cell(e: dict[str, Any]) -> str:
    """The noise column: max relative error, ``–`` (no noise sources) or ``n/c`` (not compared)."""
    st = e.get("noise")
    if st == "compared":
        return _fmt(e["max_rel_err"].get("noise"))
    return "n/c" if st and st != "none" else "–"


def _noise_summary(entries: list[dict[str, Any]]) -> str:
    with_noise = [e for e in entries if e.get("noise_sources")]
    comp = [e for e in with_noise if e.get("noise") == "compared"]
    ok = [e for e in comp if (e["max_rel_err"].get("noise") or 0.0) <= REL_TOL]
    exact = [e for e in comp if e["max_rel_err"].get("noise") == 0.0]
    nsrc = sum(e.get("noise_sources", 0) for e in comp)
    nnz = sum(e.get("noise_nonzero", 0) for e in comp)
    return (f"Noise: {len(with_noise)} files have noise sources; {len(comp)} compared "
            f"(`Model.noise` vs OSDI `load_noise` after an eval with CALC_NOISE, at every point at "
            f"a random frequency in 1 Hz–10 GHz, relative error over all non-zero densities), "
            f"{len(ok)} within {REL_TOL:g} ({len(exact)} bit-identical); {nnz} of their {nsrc} "
            "sources had a non-zero density at some point (the others, e.g. flicker sources with "
            "kf = 0 by default, were compared at 0). Files not compared are listed "
            "under *Noise not compared*. Column *noise*: max relative error, – no noise sources, "
            "n/c not compared.")


def write_markdown(entries: list[dict[str, Any]], path: Path, *, meta: dict[str, Any],
                   plots: dict[str, str]) -> None:
    """The conformance table (one row per corpus file) and the plot gallery."""
    npass = sum(e["passed"] for e in entries)
    nerr = sum("error" in e for e in entries)
    lines = [
        "# Conformance: va2jax vs OpenVAF OSDI over the corpus",
        "",
        f"Generated by `make conformance` (`va2jax validate --corpus --report docs`) on "
        f"{meta.get('date', _dt.date.today().isoformat())}; backend **{meta.get('backend')}** "
        f"({_BACKEND_TEXT.get(meta.get('backend'), 'JAX (jit)')}); "
        f"reference: `{meta.get('reference', 'openvaf-r -O3 (its default)')}` OSDI libraries. "
        "Corpus: the 67 files fetched by `scripts/fetch_corpus.py` (`make corpus`).",
        "",
        f"**{npass} of {len(entries)} files pass**"
        + (f", {nerr} failed to run" if nerr else "") + ". "
        f"Pass: every output entry within relative error {REL_TOL:g} (entries below {ABS_FLOOR:g} "
        "absolutely), same non-finite entries. Failures are analysed in "
        "[conformance-triage.md](conformance-triage.md)"
        + ("" if meta.get("reference", "").endswith("-O0") else
           " (root cause of the Jacobian-only differences: openvaf-r builds derivative code with "
           "LLVM fast-math flags `reassoc nnan arcp` and its optimiser reorders it; minimal "
           "reproducer `tests/data/va/fastmath_recip.va`; the same files against the -O0 build: "
           "[conformance-O0.md](conformance-O0.md))") + ".",
        "",
        "Points per file: per parameter set, bias sweeps within ±2 V (MOS: V_DS/V_GS/V_BS families in "
        "both polarities; BJT: output curves, forward/reverse Gummel; two-terminal: reverse to "
        f"forward) plus {meta.get('points')} random points; parameter sets: defaults at −40/27/150 °C, "
        "geometry variations (W, L, NF, NFIN, AREA where present), TYPE=−1 where present, and "
        f"{max(meta.get('param_sets', 1) - 1, 0)} random variation(s). Columns: max relative error of the "
        "resistive residual (I), reactive residual (Q), resistive and reactive Jacobians; seconds "
        "for the openvaf-r compile and for va2jax generate + first evaluation (both ~0 / load only "
        "when the compile caches are warm, as in this run).",
        "",
        _noise_summary(entries),
        "",
        "| file | module | points | I | Q | dI/dV | dQ/dV | noise | pass | openvaf-r s | va2jax s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for e in entries:
        r = e["max_rel_err"]
        status = "✅" if e["passed"] else ("error" if "error" in e else "❌")
        lines.append(
            f"| {e['file']} | {e['module'] or '–'} | {e['points']} | "
            + " | ".join(_fmt(r.get(o)) for o in OUTPUTS)
            + f" | {_noise_cell(e)} | {status} | {_sec(e.get('openvaf_r_seconds'))} | "
            f"{_sec(e.get('va2jax_seconds'))} |")
    errs = [e for e in entries if "error" in e]
    fails = [e for e in entries if not e["passed"] and "error" not in e]
    skipped = [e for e in entries if str(e.get("noise", "")).startswith("not compared")]
    if skipped:
        lines += ["", "## Noise not compared", ""]
        lines += [f"- `{e['file']}` ({e['noise_sources']} sources): {e['noise'][len('not compared: '):]}"
                  for e in skipped]
    if errs:
        lines += ["", "## Files that failed to run", ""]
        lines += [f"- `{e['file']}`: {e['error']}" for e in errs]
    if fails:
        lines += ["", "## Failing parameter sets", ""]
        for e in fails:
            fs = ", ".join(e.get("failed_sets", [])) or "?"
            lines.append(f"- `{e['file']}` ({e['module']}): {fs}")
    if plots:
        lines += ["", "## Plots", "",
                  "Per model: I–V of the first swept terminal current (families where the "
                  "topology has them), C–V from the reactive Jacobian diagonal, both paths overlaid; "
                  "histogram of the non-zero relative errors over all outputs and parameter sets (red: "
                  "tolerance).", ""]
        for e in entries:
            if e["file"] in plots:
                lines += [f"### {e['file']}", "", f"![{e['file']}]({plots[e['file']]})", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
