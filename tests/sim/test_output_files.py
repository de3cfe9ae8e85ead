"""Files ``va2jax sim`` and ``va2jax compile`` write: inside the chosen folder, with the user's umask.

Analysis names come from the netlist and name the rawfiles (``NAME.raw`` beside the netlist) and
CSV files; a name such as ``../../x`` or an absolute path must not write elsewhere.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _netlist(analyses: list[str]) -> str:
    return ('rc\nload "resistor.osdi"\nmodel r resistor\nmodel vsource vsource\n'
            "v1 (a 0) vsource dc=1\nr1 (a 0) r r=1k\ncontrol\n"
            + "".join(f"  analysis {a} op\n" for a in analyses) + "endc\n")


def _run(args: list[str], cwd: Path, umask: int | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.run([sys.executable, "-m", "va2jax", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd,
                          preexec_fn=(lambda: os.umask(umask)) if umask is not None else None)


def _tree(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_analysis_names_never_leave_the_netlist_folder(tmp_path):
    net = tmp_path / "a" / "b" / "net"
    net.mkdir(parents=True)
    absolute = tmp_path / "abs"
    (net / "t.sim").write_text(_netlist([str(absolute), "../../x"]))
    r = _run(["sim", str(net / "t.sim"), "--no-progress", "--csv", str(net / "out.csv")], cwd=tmp_path,
             umask=0o027)
    assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in net.iterdir())
    assert len(made) == 5 and "t.sim" in made, made  # 2 rawfiles, 2 CSV files, the netlist
    assert _tree(tmp_path) == ["a", "a/b", "a/b/net"] + [f"a/b/net/{m}" for m in made]
    for m in made:  # written files get 0o666 & ~umask, like any file opened by the process
        if m != "t.sim":
            assert stat.S_IMODE((net / m).stat().st_mode) == 0o640, m


def test_compile_output_gets_the_umask(tmp_path):
    va = ROOT / "tests" / "data" / "va" / "nodes.va"
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        out = tmp_path / f"out{mask:o}"
        out.mkdir()
        r = _run(["compile", str(va), "-o", str(out)], cwd=tmp_path, umask=mask)
        assert r.returncode == 0, r.stderr
        (f,) = out.iterdir()
        assert stat.S_IMODE(f.stat().st_mode) == mode, (oct(mask), oct(f.stat().st_mode))
