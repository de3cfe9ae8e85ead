"""Snapshots of the generated Python for the small models in ``tests/data/va``.

Each ``snapshots/<name>.py.snap`` is va2jax's OWN generated code, committed as it was when last
reviewed (in the spirit of OpenVAF's ``test_data/*.snap``). It is no reference for correctness —
the OSDI comparisons prove that — only a change detector: a change to the front end or the code
generator that alters generated code shows up here as a diff to review. After reviewing, rewrite
the snapshots with ``pytest tests/codegen/test_snapshots.py --update-snapshots`` (or
``UPDATE_SNAPSHOTS=1``). The source path in each module's header is written relative to the
repository, so the snapshots do not depend on where it is checked out.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from va2jax.codegen import generate
from va2jax.mir import load_modules

HERE = Path(__file__).resolve().parent
VA_DIR = HERE.parent / "data" / "va"
SNAP_DIR = HERE / "snapshots"
REPO = HERE.parents[1]

#: include folders and macro definitions a file needs (the rest need none)
OPTIONS = {"incdef.va": ([VA_DIR / "inc"], {"RVAL": "250.0", "GSHUNT": "1e-3"})}
FILES = sorted(p.name for p in VA_DIR.glob("*.va"))


def _generated(name: str) -> str:
    incs, defs = OPTIONS.get(name, ([], {}))
    mods = load_modules(VA_DIR / name, [str(d) for d in incs], defs)
    text = "".join(generate(m).source for m in mods)
    return text.replace(str(REPO) + os.sep, "")


def test_every_small_model_has_a_snapshot():
    assert FILES, "no Verilog-A files in tests/data/va"
    snaps = {p.name for p in SNAP_DIR.glob("*.py.snap")}
    assert snaps == {f"{Path(n).stem}.py.snap" for n in FILES}


@pytest.mark.parametrize("name", FILES)
def test_generated_code_matches_snapshot(name, request):
    snap = SNAP_DIR / f"{Path(name).stem}.py.snap"
    text = _generated(name)
    if request.config.getoption("--update-snapshots", False) or os.environ.get("UPDATE_SNAPSHOTS") == "1":
        snap.write_text(text, encoding="utf-8")
    assert snap.is_file(), f"{snap} missing: run with --update-snapshots and review it"
    want = snap.read_text(encoding="utf-8")
    assert text == want, (f"generated code of {name} differs from {snap.name}; review the change and "
                          "rerun with --update-snapshots")
