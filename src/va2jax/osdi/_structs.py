"""ctypes mirrors of the OSDI 0.3 / 0.4 / 0.5 C structures (x86-64 / any LP64 ABI).

Written from the published OSDI headers (``osdi_0_3.h``, ``osdi_0_4.h``, ``osdi_0_5.h``). Only the
descriptor differs between the versions: 0.4 appends given-flag getters, Jacobian-array writers,
inputs and natures to the 0.3 descriptor (and ``load_noise`` loses its ``ln_noise_dens`` argument);
0.5 appends noise-source types, ``load_noise_params``, module flags and ``$absdelay`` info.
"""
from __future__ import annotations

import ctypes as C

SUPPORTED_VERSIONS: tuple[tuple[int, int], ...] = ((0, 3), (0, 4), (0, 5))

# --- constants (identical in 0.3, 0.4, 0.5) -------------------------------------------------
PARA_TY_MASK = 3
PARA_TY_REAL = 0
PARA_TY_INT = 1
PARA_TY_STR = 2
PARA_KIND_MASK = 3 << 30
PARA_KIND_MODEL = 0 << 30
PARA_KIND_INST = 1 << 30
PARA_KIND_OPVAR = 2 << 30

ACCESS_FLAG_READ = 0
ACCESS_FLAG_SET = 1
ACCESS_FLAG_INSTANCE = 4

JACOBIAN_ENTRY_RESIST_CONST = 1
JACOBIAN_ENTRY_REACT_CONST = 2
JACOBIAN_ENTRY_RESIST = 4
JACOBIAN_ENTRY_REACT = 8

CALC_RESIST_RESIDUAL = 1
CALC_REACT_RESIDUAL = 2
CALC_RESIST_JACOBIAN = 4
CALC_REACT_JACOBIAN = 8
CALC_NOISE = 16
CALC_OP = 32
CALC_RESIST_LIM_RHS = 64
CALC_REACT_LIM_RHS = 128
ENABLE_LIM = 256
INIT_LIM = 512
ANALYSIS_NOISE = 1024
ANALYSIS_DC = 2048
ANALYSIS_AC = 4096
ANALYSIS_TRAN = 8192
ANALYSIS_IC = 16384
ANALYSIS_STATIC = 32768
ANALYSIS_NODESET = 65536
#: analysis name → bit (the one table of them in va2jax)
ANALYSIS_BITS = {"noise": ANALYSIS_NOISE, "dc": ANALYSIS_DC, "ac": ANALYSIS_AC, "tran": ANALYSIS_TRAN,
                 "ic": ANALYSIS_IC, "static": ANALYSIS_STATIC, "nodeset": ANALYSIS_NODESET}

EVAL_RET_FLAG_LIM = 1
EVAL_RET_FLAG_FATAL = 2
EVAL_RET_FLAG_FINISH = 4
EVAL_RET_FLAG_STOP = 8

LOG_LVL_MASK = 7
LOG_LVL_DEBUG = 0
LOG_LVL_DISPLAY = 1
LOG_LVL_INFO = 2
LOG_LVL_WARN = 3
LOG_LVL_ERR = 4
LOG_LVL_FATAL = 5
LOG_FMT_ERR = 16

INIT_ERR_OUT_OF_BOUNDS = 1

ATTR_TYPE_STR = 0
ATTR_TYPE_INT = 1
ATTR_TYPE_REAL = 2

NATREF_NONE = 0
NATREF_NATURE = 1
NATREF_DISCIPLINE_FLOW = 2
NATREF_DISCIPLINE_POTENTIAL = 3

NOISE_TYPE_WHITE = 0
NOISE_TYPE_FLICKER = 1
NOISE_TYPE_TABLE = 2

MODULEFLAG_ABSTIME = 1

UINT32_MAX = 0xFFFFFFFF

u32 = C.c_uint32
dbl = C.c_double
vp = C.c_void_p
P = C.POINTER


class OsdiLimFunction(C.Structure):
    _fields_ = [("name", C.c_char_p), ("num_args", u32), ("func_ptr", vp)]


class OsdiSimParas(C.Structure):
    _fields_ = [
        ("names", P(C.c_char_p)),
        ("vals", P(dbl)),
        ("names_str", P(C.c_char_p)),
        ("vals_str", P(C.c_char_p)),
    ]


class OsdiSimInfo(C.Structure):
    _fields_ = [
        ("paras", OsdiSimParas),
        ("abstime", dbl),
        ("prev_solve", P(dbl)),
        ("prev_state", P(dbl)),
        ("next_state", P(dbl)),
        ("flags", u32),
    ]


class OsdiInitErrorEntry(C.Structure):
    """C ``OsdiInitError`` (one entry of ``OsdiInitInfo.errors``); the exception raised for it is
    :class:`va2jax.osdi.OsdiInitError`."""

    _fields_ = [("code", u32), ("parameter_id", u32)]  # payload is a union of one uint32


class OsdiInitInfo(C.Structure):
    _fields_ = [("flags", u32), ("num_errors", u32), ("errors", P(OsdiInitErrorEntry))]


class OsdiNodePair(C.Structure):
    _fields_ = [("node_1", u32), ("node_2", u32)]


class OsdiJacobianEntry(C.Structure):
    _fields_ = [("nodes", OsdiNodePair), ("react_ptr_off", u32), ("flags", u32)]


class OsdiNode(C.Structure):
    _fields_ = [
        ("name", C.c_char_p),
        ("units", C.c_char_p),
        ("residual_units", C.c_char_p),
        ("resist_residual_off", u32),
        ("react_residual_off", u32),
        ("resist_limit_rhs_off", u32),
        ("react_limit_rhs_off", u32),
        ("is_flow", C.c_bool),
    ]


class OsdiParamOpvar(C.Structure):
    _fields_ = [
        ("name", P(C.c_char_p)),
        ("num_alias", u32),
        ("description", C.c_char_p),
        ("units", C.c_char_p),
        ("flags", u32),
        ("len", u32),
    ]


class OsdiNoiseSource(C.Structure):
    _fields_ = [("name", C.c_char_p), ("nodes", OsdiNodePair)]


class OsdiNatureRef(C.Structure):
    _fields_ = [("ref_type", u32), ("index", u32)]


class OsdiAbsDelayInfo(C.Structure):
    _fields_ = [("y_node", u32), ("z_node", u32), ("td_offset", u32)]


class OsdiNature(C.Structure):
    _fields_ = [
        ("name", C.c_char_p),
        ("parent_type", u32),
        ("parent", u32),
        ("ddt", u32),
        ("idt", u32),
        ("attr_start", u32),
        ("num_attr", u32),
    ]


class OsdiDiscipline(C.Structure):
    _fields_ = [
        ("name", C.c_char_p),
        ("flow", u32),
        ("potential", u32),
        ("domain", u32),
        ("attr_start", u32),
        ("num_flow_attr", u32),
        ("num_potential_attr", u32),
        ("num_user_attr", u32),
    ]


class OsdiAttributeValue(C.Union):
    _fields_ = [("string", C.c_char_p), ("integer", C.c_int32), ("real", dbl)]


class OsdiAttribute(C.Structure):
    _fields_ = [("name", C.c_char_p), ("value_type", u32), ("value", OsdiAttributeValue)]


# --- function pointer types -------------------------------------------------------------------
ACCESS_FN = C.CFUNCTYPE(vp, vp, vp, u32, u32)
SETUP_MODEL_FN = C.CFUNCTYPE(None, vp, vp, P(OsdiSimParas), P(OsdiInitInfo))
SETUP_INSTANCE_FN = C.CFUNCTYPE(None, vp, vp, vp, dbl, u32, P(OsdiSimParas), P(OsdiInitInfo))
EVAL_FN = C.CFUNCTYPE(u32, vp, vp, vp, P(OsdiSimInfo))
LOAD_NOISE_03_FN = C.CFUNCTYPE(None, vp, vp, dbl, P(dbl), P(dbl))
LOAD_NOISE_FN = C.CFUNCTYPE(None, vp, vp, dbl, P(dbl))
LOAD_VEC_FN = C.CFUNCTYPE(None, vp, vp, P(dbl))
LOAD_SPICE_DC_FN = C.CFUNCTYPE(None, vp, vp, P(dbl), P(dbl))
LOAD_SPICE_TRAN_FN = C.CFUNCTYPE(None, vp, vp, P(dbl), P(dbl), dbl)
LOAD_JAC_FN = C.CFUNCTYPE(None, vp, vp)
LOAD_JAC_ALPHA_FN = C.CFUNCTYPE(None, vp, vp, dbl)
GIVEN_MODEL_FN = C.CFUNCTYPE(u32, vp, u32)
GIVEN_INST_FN = C.CFUNCTYPE(u32, vp, u32)
LOAD_JAC_OFFSET_FN = C.CFUNCTYPE(None, vp, vp, C.c_size_t)
LOAD_NOISE_PARAMS_FN = C.CFUNCTYPE(None, vp, vp, P(dbl), P(dbl))
LOG_FN = C.CFUNCTYPE(None, vp, vp, u32)  # msg as void* so that it can be freed

_FIELDS_03 = [
    ("name", C.c_char_p),
    ("num_nodes", u32),
    ("num_terminals", u32),
    ("nodes", P(OsdiNode)),
    ("num_jacobian_entries", u32),
    ("jacobian_entries", P(OsdiJacobianEntry)),
    ("num_collapsible", u32),
    ("collapsible", P(OsdiNodePair)),
    ("collapsed_offset", u32),
    ("noise_sources", P(OsdiNoiseSource)),
    ("num_noise_src", u32),
    ("num_params", u32),
    ("num_instance_params", u32),
    ("num_opvars", u32),
    ("param_opvar", P(OsdiParamOpvar)),
    ("node_mapping_offset", u32),
    ("jacobian_ptr_resist_offset", u32),
    ("num_states", u32),
    ("state_idx_off", u32),
    ("bound_step_offset", u32),
    ("instance_size", u32),
    ("model_size", u32),
    ("access", ACCESS_FN),
    ("setup_model", SETUP_MODEL_FN),
    ("setup_instance", SETUP_INSTANCE_FN),
    ("eval", EVAL_FN),
    ("load_noise", vp),  # signature differs between 0.3 and 0.4+; cast on use
    ("load_residual_resist", LOAD_VEC_FN),
    ("load_residual_react", LOAD_VEC_FN),
    ("load_limit_rhs_resist", LOAD_VEC_FN),
    ("load_limit_rhs_react", LOAD_VEC_FN),
    ("load_spice_rhs_dc", LOAD_SPICE_DC_FN),
    ("load_spice_rhs_tran", LOAD_SPICE_TRAN_FN),
    ("load_jacobian_resist", LOAD_JAC_FN),
    ("load_jacobian_react", LOAD_JAC_ALPHA_FN),
    ("load_jacobian_tran", LOAD_JAC_ALPHA_FN),
]

_FIELDS_04_EXTRA = [
    ("given_flag_model", GIVEN_MODEL_FN),
    ("given_flag_instance", GIVEN_INST_FN),
    ("num_resistive_jacobian_entries", u32),
    ("num_reactive_jacobian_entries", u32),
    ("write_jacobian_array_resist", LOAD_VEC_FN),
    ("write_jacobian_array_react", LOAD_VEC_FN),
    ("num_inputs", u32),
    ("inputs", P(OsdiNodePair)),
    ("load_jacobian_with_offset_resist", LOAD_JAC_OFFSET_FN),
    ("load_jacobian_with_offset_react", LOAD_JAC_OFFSET_FN),
    ("unknown_nature", P(OsdiNatureRef)),
    ("residual_nature", P(OsdiNatureRef)),
]

_FIELDS_05_EXTRA = [
    ("noise_source_type", P(u32)),
    ("load_noise_params", LOAD_NOISE_PARAMS_FN),
    ("module_flags", u32),
    ("absdelay_count", u32),
    ("absdelays", P(OsdiAbsDelayInfo)),
]


class OsdiDescriptor03(C.Structure):
    """``OsdiDescriptor`` of OSDI 0.3."""

    _fields_ = _FIELDS_03


class OsdiDescriptor04(C.Structure):
    """``OsdiDescriptor`` of OSDI 0.4 (0.3 + given flags, Jacobian arrays, inputs, natures)."""

    _fields_ = _FIELDS_03 + _FIELDS_04_EXTRA


class OsdiDescriptor05(C.Structure):
    """``OsdiDescriptor`` of OSDI 0.5 (0.4 + noise types/params, module flags, absdelays)."""

    _fields_ = _FIELDS_03 + _FIELDS_04_EXTRA + _FIELDS_05_EXTRA


DESCRIPTOR_TYPES: dict[tuple[int, int], type[C.Structure]] = {
    (0, 3): OsdiDescriptor03,
    (0, 4): OsdiDescriptor04,
    (0, 5): OsdiDescriptor05,
}


#: The C library's ``free``: OSDI libraries hand out ``malloc``'ed messages that the caller frees.
libc_free = C.CDLL(None).free
libc_free.argtypes = [C.c_void_p]
libc_free.restype = None
