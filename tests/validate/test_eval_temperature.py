"""``$temperature`` read only by eval (vajax ``asmhemt.va``: ``Tdev = $temperature + Temp(rth)``).

Eval's temperature input used to come from init's temperature input, and fell back to 300.15 K
when init does not read ``$temperature``: asmhemt was exact at 27 °C only. Expected values from
OSDI.
"""
from __future__ import annotations

import pytest

from va2jax import compile_va
from va2jax.validate import validate_file

SELF_HEATING = """`include "disciplines.vams"
module tsh(A, B, T);
    inout A, B, T;
    electrical A, B;
    thermal T;
    parameter real tnom = 27.0;
    parameter real ute = -1.5;
    parameter real rth = 10.0;
    real tdev, ids;
    analog begin
        tdev = $temperature + Temp(T);
        ids = 1e-3 * V(A, B) * pow(tdev / (tnom + 273.15), ute);
        I(A, B) <+ ids;
        Pwr(T) <+ -ids * V(A, B) + Temp(T) / rth;
    end
endmodule
"""


@pytest.mark.parametrize("temperature", [233.15, 300.15, 423.15])
def test_temperature_read_only_in_eval(tmp_path, temperature):
    va = tmp_path / "tsh.va"
    va.write_text(SELF_HEATING)
    model = compile_va(va)
    assert not any(p.kind == "temperature" for p in model.ir.init.params)
    assert any(p.kind == "temperature" for p in model.ir.eval.params)
    res = validate_file(va, points=20, param_sets=2, backend="numpy", temperature=temperature,
                        reference_opt_level=0)
    assert res.passed, res.max_rel_err
    assert set(res.max_abs_err.values()) == {0.0}, res.max_abs_err  # bit-identical to -O0


@pytest.mark.slow
def test_asmhemt_at_150C(corpus):
    res = validate_file(corpus / "vajax/asmhemt/asmhemt.va", points=20, param_sets=1,
                        backend="numpy", temperature=423.15, reference_opt_level=0)
    assert res.passed, res.max_rel_err
    assert set(res.max_abs_err.values()) == {0.0}, res.max_abs_err  # bit-identical to -O0
