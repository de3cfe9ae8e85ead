"""``va2jax._config``: every ``VA2JAX_*`` variable is read, checked and documented in one place."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from va2jax import _config
from va2jax.errors import Va2JaxError

SRC = Path(__file__).resolve().parents[1] / "src" / "va2jax"


def test_no_module_reads_va2jax_variables_itself():
    """Outside ``_config`` no string constant names a ``VA2JAX_*`` variable in code (docstrings
    and messages that merely mention one are fine: they are not ``os.environ`` keys)."""
    bad = []
    for path in SRC.rglob("*.py"):
        if path.name == "_config.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and ast.unparse(node.func).endswith(("environ.get", "getenv"))
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith("VA2JAX_")):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
            if (isinstance(node, ast.Subscript) and ast.unparse(node.value).endswith("environ")
                    and isinstance(node.slice, ast.Constant)
                    and str(node.slice.value).startswith("VA2JAX_")):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, bad


def test_every_variable_is_documented():
    for var in _config.VARIABLES.values():
        assert var.env in _config.__doc__, var.env


def test_defaults_when_unset(monkeypatch):
    for var in _config.VARIABLES.values():
        monkeypatch.delenv(var.env, raising=False)
    assert _config.get("PART_SIZE") == 1500
    assert _config.get("OPT") is True and _config.get("XLA_FUSION") is False
    assert _config.get("SIM_DEVICE_EVAL") is None and _config.get("XLA_MAX_ISA") is None


def test_values_are_parsed(monkeypatch):
    monkeypatch.setenv("VA2JAX_PART_SIZE", "200")
    monkeypatch.setenv("VA2JAX_EXE_CACHE", "0")
    monkeypatch.setenv("VA2JAX_SIM_DEVICE_EVAL", " Separate ")
    monkeypatch.setenv("VA2JAX_XLA_MAX_ISA", "")  # empty is a value: no ISA cap
    assert _config.get("PART_SIZE") == 200 and _config.get("EXE_CACHE") is False
    assert _config.get("SIM_DEVICE_EVAL") == "separate" and _config.get("XLA_MAX_ISA") == ""


@pytest.mark.parametrize("name, value", [("PART_SIZE", "many"), ("PART_SIZE", "0"),
                                         ("OPT", "yes"), ("SIM_DEVICE_EVAL", "sideways"),
                                         ("FUSE_MIN_BATCH", "-1")])
def test_bad_values_name_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(f"VA2JAX_{name}", value)
    with pytest.raises(Va2JaxError, match=f"VA2JAX_{name}="):
        _config.get(name)
    with pytest.raises(Va2JaxError, match=f"VA2JAX_{name}="):
        _config.check_all()


def test_cli_reports_a_bad_variable_in_one_line():
    env = dict(os.environ, PYTHONPATH=str(SRC.parent), VA2JAX_PART_SIZE="lots")
    proc = subprocess.run([sys.executable, "-m", "va2jax", "sim", "none.sim"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "va2jax: error: VA2JAX_PART_SIZE='lots': expected a whole number"


def test_every_entry_point_sets_the_requested_isa_cap_before_jax_starts():
    """The one process-wide XLA flag va2jax may set — the ISA cap ``VA2JAX_XLA_MAX_ISA=AVX``, which
    keeps XLA from contracting a·b+c into an FMA (OSDI code never does) — takes effect only if set
    before JAX's CPU backend starts. Since generated code is imported lazily, a simulation whose
    first devices are built-in elements used to start JAX without it, and a later generated model
    then ran with other roundings (a rectifier's transient differed by 8e-11 relative in its time
    points, depending on what the process had run before). Importing ``va2jax.sim`` alone must
    set it, and nothing else (fusion is turned off per compilation, never in ``XLA_FLAGS``)."""
    code = ("import os, va2jax.sim, jax.numpy as jnp; jnp.zeros(1).block_until_ready(); "
            "print(repr(os.environ.get('XLA_FLAGS')))")
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "VA2JAX_XLA_MAX_ISA",
                                                             "VA2JAX_XLA_FUSION")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "VA2JAX_XLA_MAX_ISA": "AVX"}, timeout=300, check=True).stdout
    import platform

    x86 = platform.machine().lower() in ("x86_64", "amd64")
    assert out.strip() == ("'--xla_cpu_max_isa=AVX'" if x86 else "None")
