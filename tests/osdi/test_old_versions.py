"""OSDI 0.3 / 0.4 code paths, exercised on copies of a 0.5 library whose version (and descriptor
size) constants are patched: the 0.3/0.4 descriptor is a prefix of the 0.5 one, so a library with
one descriptor reads correctly as the older version."""
from __future__ import annotations

import shutil
import struct
import subprocess

import numpy as np
import pytest

from va2jax.errors import Va2JaxError
from va2jax.osdi import load_library


def _file_offset(path, vaddr):
    data = path.read_bytes()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for k in range(phnum):
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + k * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
            return p_offset + (vaddr - p_vaddr)
    raise AssertionError("symbol not in a PT_LOAD segment")


def _patched(src, dst, values):
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm not available")
    shutil.copy(src, dst)
    syms = {}
    for ln in subprocess.run([nm, "-D", "--defined-only", str(dst)], capture_output=True,
                             text=True, check=True).stdout.splitlines():
        parts = ln.split()
        if len(parts) == 3:
            syms[parts[2]] = int(parts[0], 16)
    buf = bytearray(dst.read_bytes())
    for name, val in values.items():
        off = _file_offset(dst, syms[name])
        struct.pack_into("<I", buf, off, val)
    dst.write_bytes(bytes(buf))
    return dst


@pytest.mark.parametrize("minor,size", [(4, 328), (3, 240)])
def test_older_version_paths(mod_dir, tmp_path, minor, size):
    src = mod_dir / "diode.osdi"
    lib = load_library(_patched(src, tmp_path / f"diode_0{minor}.osdi",
                                {"OSDI_VERSION_MINOR": minor, "OSDI_DESCRIPTOR_SIZE": size}))
    assert lib.version == (0, minor)
    m = lib.module()
    ref = load_library(src).module()
    assert m.node_names == ref.node_names and len(m.params) == len(ref.params)
    assert (m.num_resistive_jacobian_entries is None) == (minor == 3)
    assert m.module_flags is None
    params = {"is": 2e-14, "rs": 7.0, "cjo": 1e-12}
    a = m.instance(params)
    b = ref.instance(params)
    v = np.array([0.7, 0.0, 0.6])
    ra, rb = a.eval(v), b.eval(v)
    for x, y in ((ra.residual_resist, rb.residual_resist), (ra.jacobian_resist, rb.jacobian_resist),
                 (ra.residual_react, rb.residual_react), (ra.jacobian_react, rb.jacobian_react)):
        assert np.array_equal(x, y)
    assert a.given("rs") is (None if minor == 3 else True)
    if minor == 3:
        with pytest.raises(Va2JaxError, match="0.4 or newer"):
            a.eval(v, jacobian_path="array")


def test_size_mismatch_of_real_library(mod_dir, tmp_path):
    p = _patched(mod_dir / "diode.osdi", tmp_path / "d.osdi", {"OSDI_DESCRIPTOR_SIZE": 368})
    with pytest.raises(Va2JaxError, match="OSDI_DESCRIPTOR_SIZE is 368"):
        load_library(p)
