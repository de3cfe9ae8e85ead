"""The netlists shared by the demo, examples and tests (``va2jax._circuits``; one file each)."""
from __future__ import annotations

from pathlib import Path

import pytest

from va2jax._circuits import circuit_text, variant
from va2jax._demo import graetz_netlist

ROOT = Path(__file__).resolve().parents[1]


def test_examples_graetz_is_the_package_file():
    """``examples/circuits/graetz.sim`` is the installed ``data/circuits/graetz.sim`` (a link)."""
    assert (ROOT / "examples" / "circuits" / "graetz.sim").read_text() == circuit_text("graetz")


def test_variant_applies_each_edit_once_and_swaps_the_control_block():
    text = "t\nr1 (a 0) r r=1k\nr2 (a 0) r r=1k\ncontrol\n  analysis op1 op\nendc\n"
    out = variant(text, {"r1 (a 0) r r=1k": "r1 (a 0) r r=2k"}, control="control\n  analysis x op\nendc\n")
    assert out == "t\nr1 (a 0) r r=2k\nr2 (a 0) r r=1k\ncontrol\n  analysis x op\nendc\n"
    assert variant(text, control="") == "t\nr1 (a 0) r r=1k\nr2 (a 0) r r=1k\n"


@pytest.mark.parametrize("edit, count", [("r r=1k", 2), ("r r=3k", 0)])
def test_variant_refuses_an_edit_that_is_not_there_exactly_once(edit, count):
    """An edit of the shared file cannot leave a variant silently unchanged or doubly changed."""
    with pytest.raises(ValueError, match=f"occurs {count} times"):
        variant("t\nr1 (a 0) r r=1k\nr2 (a 0) r r=1k\n", {edit: "r r=2k"})


def test_demo_netlist_is_the_shared_bridge_with_the_bundled_diode():
    text = graetz_netlist("diode.va", 20e-3)
    assert 'load "diode.va"' in text and "model dpwr va2jax_diode (" in text
    assert "spice/diode.osdi" not in text and "stop=0.02 " in text
    # everything else as in the shared file
    shared = circuit_text("graetz").splitlines()
    assert sum(line not in shared for line in text.splitlines()) == 3
