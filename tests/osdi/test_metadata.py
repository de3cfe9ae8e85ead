"""All prebuilt libraries load and report self-consistent metadata."""
from __future__ import annotations

import ctypes

import pytest

from va2jax.osdi import _structs as S
from va2jax.osdi import load_library


def _all(mod_dir):
    return sorted(mod_dir.rglob("*.osdi"))


def test_there_are_53_libraries(mod_dir):
    assert len(_all(mod_dir)) == 53


def test_descriptor_struct_sizes():
    # 0.5 descriptor on x86-64 is 360 bytes (docs/osdi-notes); 0.4 drops 5 trailing fields.
    assert ctypes.sizeof(S.OsdiDescriptor05) == 360
    assert ctypes.sizeof(S.OsdiDescriptor04) == 360 - 8 - 8 - 4 - 4 - 8 - 0  # 328
    assert ctypes.sizeof(S.OsdiNode) == 48


def test_all_libraries_self_consistent(mod_dir):
    for path in _all(mod_dir):
        lib = load_library(path)
        assert lib.version == (0, 5), path
        assert lib.modules, path
        for m in lib.modules:
            where = f"{path.name}:{m.name}"
            assert 0 < m.num_terminals <= m.num_nodes, where
            assert len(m.nodes) == m.num_nodes
            assert len({n.name for n in m.nodes}) == m.num_nodes, where
            for n in m.terminals:  # terminals are potentials (electrical or thermal)
                assert not n.is_flow and n.units in ("V", "K"), where
            assert len(m.params) == m.num_params, where
            assert sum(p.kind == "instance" for p in m.params) == m.num_instance_params, where
            assert all(p.kind in ("model", "instance") for p in m.params), where
            assert all(p.kind == "opvar" for p in m.opvars), where
            assert all(p.type in ("real", "int", "str") for p in m.params + m.opvars), where
            assert all(len(p.names) >= 1 and all(p.names) for p in m.params + m.opvars), where
            assert [p.id for p in m.params + m.opvars] == list(range(len(m.params) + len(m.opvars)))
            for e in m.jacobian:
                assert 0 <= e.row < m.num_nodes and 0 <= e.col < m.num_nodes, where
                assert e.resist or e.react, where
                assert (e.react_ptr_off != S.UINT32_MAX) == e.react, where
            assert len({(e.row, e.col) for e in m.jacobian}) == len(m.jacobian), where
            # the array writers cover at least every flagged entry (sometimes more; see
            # _array_layout_known), never more than all entries
            assert sum(e.resist for e in m.jacobian) <= m.num_resistive_jacobian_entries <= len(m.jacobian)
            assert sum(e.react for e in m.jacobian) <= m.num_reactive_jacobian_entries <= len(m.jacobian)
            for a, b in m.collapsible:
                assert 0 <= a < m.num_nodes and -1 <= b < m.num_nodes and a != b, where
            for s in m.noise_sources:
                assert 0 <= s.node1 < m.num_nodes and -1 <= s.node2 < m.num_nodes, where
                assert s.type in ("white", "flicker", "table"), where
            assert m.module_flags is not None and m.module_flags >= 0
            assert m.model_size > 0 and m.instance_size > 0
            assert "$mfactor" in {n for p in m.params for n in p.names}, where


def test_module_lookup_case_insensitive_and_suggestions(mod_dir):
    lib = load_library(mod_dir / "diode.osdi")
    assert lib.module("DIODE") is lib.module(0) is lib.module()
    with pytest.raises(Exception, match="did you mean"):
        lib.module("diod")
    m = lib.module()
    assert m.find_param("IS") is m.find_param("is")
    with pytest.raises(Exception, match="did you mean: Is"):
        m.find_param("iss")


def test_aliases_resolve_to_same_param(mod_dir):
    for path in _all(mod_dir):
        for m in load_library(path).modules:
            for p in m.params:
                for nm in p.names:
                    q = m.find_param(nm.upper())
                    assert nm.lower() in [x.lower() for x in q.names]


def test_lim_table_filled_for_vbic(mod_dir):
    lib = load_library(mod_dir / "vbic_1p3.osdi")
    assert dict(lib.lim_functions) == {"pnjlim": 2, "limitlog": 1}
    table = (S.OsdiLimFunction * 2).in_dll(lib._lib, "OSDI_LIM_TABLE")
    assert all(t.func_ptr for t in table)


def test_natures_and_disciplines(mod_dir):
    lib = load_library(mod_dir / "resistor.osdi")
    assert "electrical" in {d.name for d in lib.disciplines}
    assert {"Current", "Voltage"} <= {n.name for n in lib.natures}


def test_jacobian_paths_agree_on_all_libraries(mod_dir):
    """write_jacobian_array_* (where its layout is known) and the pointer path give the same
    dense Jacobians; where the layout is ambiguous the array path refuses instead of guessing."""
    import numpy as np

    from va2jax.errors import Va2JaxError
    from va2jax.osdi._instance import _array_layout_known

    rng = np.random.default_rng(11)
    known = 0
    for path in _all(mod_dir):
        m = load_library(path).module()
        inst = m.instance()
        v = rng.uniform(-0.2, 0.8, m.num_nodes)
        rp = inst.eval(v, jacobian_path="pointers")
        if _array_layout_known(m):
            known += 1
            ra = inst.eval(v, jacobian_path="array")
            assert np.array_equal(ra.jacobian_resist, rp.jacobian_resist, equal_nan=True), path
            assert np.array_equal(ra.jacobian_react, rp.jacobian_react, equal_nan=True), path
        else:
            with pytest.raises(Va2JaxError, match="Jacobian entries"):
                inst.eval(v, jacobian_path="array")
    assert known == 41
