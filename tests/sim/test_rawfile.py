"""Rawfile round trip and the header layout ngspice writes."""
from __future__ import annotations

import numpy as np
from sim_peers import CIRCUITS, run_ngspice

from va2jax.sim.analysis import Result
from va2jax.sim.rawfile import read_raw, write_csv, write_raw


def test_roundtrip_real_and_complex(tmp_path):
    t = np.linspace(0, 1, 5)
    r1 = Result("tran1", "tran", "time", t, ["a", "v1:flow(br)"], np.stack([t, -t], 1))
    f = np.array([1.0, 10.0])
    r2 = Result("ac1", "ac", "frequency", f, ["a"], np.array([[1 + 2j], [3 - 1j]]))
    write_raw(tmp_path / "x.raw", [r1, r2])
    p1, p2 = read_raw(tmp_path / "x.raw")
    assert p1.names == ["time", "a", "v1:flow(br)"] and p1.types == ["time", "voltage", "current"]
    np.testing.assert_array_equal(p1["a"], t)
    np.testing.assert_array_equal(p2["a"], [1 + 2j, 3 - 1j])
    write_csv(tmp_path / "x.csv", r1)
    assert (tmp_path / "x.csv").read_text().splitlines()[0] == "time,a,v1:flow(br)"


def test_header_matches_ngspice(tmp_path):
    ref = (run_ngspice(CIRCUITS / "rc.cir", tmp_path), tmp_path / "rc_ng.raw")
    ng_head = ref[1].read_bytes().split(b"Binary:\n")[0].decode().splitlines()
    t = np.linspace(0, 1, 3)
    write_raw(tmp_path / "o.raw", [Result("tran1", "tran", "time", t, ["1"], t[:, None])])
    our_head = (tmp_path / "o.raw").read_bytes().split(b"Binary:\n")[0].decode().splitlines()
    keys = lambda h: [ln.split(":")[0] for ln in h if not ln.startswith("\t")]  # noqa: E731
    assert keys(our_head) == keys(ng_head)
