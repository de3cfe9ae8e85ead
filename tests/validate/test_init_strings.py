"""Init string constants (not exported by openvaf-py 0.1.5) recovered from the source.

SPICE ``bsim4v8.va`` compares its ``version`` parameter with nine literals in init; the front end
took only a parameter compared with a single literal. Expected values come from OSDI.
"""
from __future__ import annotations

import pytest

from va2jax.validate import validate_file

# one parameter compared with several literals (one of them twice, on either side of ==/!=),
# another with one literal through !=
STRINGS = """`include "disciplines.vams"
module strs(A, B);
    inout A, B;
    electrical A, B;
    parameter string mode = "b";
    parameter string flavour = "x";
    integer k;
    analog begin
        if (mode == "a" || mode == "aa") k = 1;
        else if (mode == "b") k = 2;
        else if ("c" == mode) k = 3;
        else k = 4;
        if (flavour != "y") k = k + 10;
        if (mode == "aa") k = k + 100;
        I(A, B) <+ k * V(A, B) / 1e3;
    end
endmodule
"""


@pytest.mark.parametrize("mode", ["a", "aa", "b", "c", "d"])
@pytest.mark.parametrize("flavour", ["x", "y"])
def test_parameter_compared_with_several_literals(tmp_path, mode, flavour):
    va = tmp_path / "strs.va"
    va.write_text(STRINGS)
    res = validate_file(va, points=5, param_sets=1, backend="numpy",
                        params={"mode": mode, "flavour": flavour}, reference_opt_level=0)
    assert res.passed, res.max_rel_err
    assert set(res.max_abs_err.values()) == {0.0}, res.max_abs_err  # bit-identical to -O0


@pytest.mark.slow
@pytest.mark.parametrize("version", ["4.8.3", "4.80", "4.8.1"])
def test_spice_bsim4v8_version_strings(corpus, version):
    # mobmod = 5 makes uc's default depend on version <= 4.80. Against the -O0 build every output
    # must match (-O3 rewrites the Jacobian's arithmetic, see docs/conformance-triage.md)
    res = validate_file(corpus / "bosdi/spice/bsim4v8.va", points=10, param_sets=1,
                        backend="numpy", params={"version": version, "mobmod": 5},
                        reference_opt_level=0)
    assert res.passed, res.max_rel_err
    assert res.max_rel_err["residual_resist"] == 0.0


# OpenVAF interns string constants: "a" is one value shared by both parameters, created at
# flavour's comparison, before mode's first literal "b"
SHARED = """`include "disciplines.vams"
module strs2(A, B);
    inout A, B;
    electrical A, B;
    parameter string flavour = "x";
    parameter string mode = "b";
    integer k;
    analog begin
        k = 0;
        if (flavour == "a") k = 10;
        if (mode == "b") k = k + 2;
        else if (mode == "a") k = k + 1;
        else if (mode == "c") k = k + 3;
        I(A, B) <+ (k + 1) * V(A, B) / 1e3;
    end
endmodule
"""


@pytest.mark.parametrize("mode", ["a", "b", "c", "d"])
@pytest.mark.parametrize("flavour", ["a", "x"])
def test_literal_shared_between_parameters(tmp_path, mode, flavour):
    va = tmp_path / "strs2.va"
    va.write_text(SHARED)
    res = validate_file(va, points=5, param_sets=1, backend="numpy",
                        params={"mode": mode, "flavour": flavour}, reference_opt_level=0)
    assert res.passed, res.max_rel_err
    assert set(res.max_abs_err.values()) == {0.0}, res.max_abs_err  # bit-identical to -O0
