"""Simulator parameters (``$simparam``) that va2jax passes to models — shared by OSDI and JAX paths.

This module has no dependencies so that the code generator can import it as well; both evaluation
paths must see exactly these values, because ``$simparam("name", default)`` returns the simulator's
value when the name is passed and ``default`` otherwise, and that changes model outputs.

Source of the values: VACASK (the reference simulator), ``lib/osdidevice.cpp``
(``OsdiDevice::simParamNames`` / ``populateSimParas``) with the default options of
``lib/options.cpp`` (``SimulatorOptions::SimulatorOptions``), ``lib/comdata.cpp``
(``CommonData::reset``) and ``include/simulator.h`` (version 0.1), as read from the VACASK sources:

==========================  ===========  =================================================================
name                        value        where it comes from
==========================  ===========  =================================================================
``iniLim``                  0            VACASK: 1 while limiting is initialised, else 0. va2jax sets it
                                         to 1 when an eval requests ``INIT_LIM`` (see ``eval``), else 0.
``gmin``                    1e-12 S      VACASK ``options.gmin`` (``commons.gmin + commons.gdev``, gdev=0)
``gdev``                    0 S          VACASK homotopy conductance, 0 outside homotopy
``tnom``                    27 (°C)      VACASK ``options.tnom`` — passed in **Celsius**, unconverted
``minr``                    0 Ω          VACASK ``options.minr``
``scale``                   1            VACASK ``options.scale``
``iteration``               0            VACASK ``commons.iteration`` (Newton iteration counter, reset 0)
``simulatorVersion``        0            VACASK ``Simulator::majorVersion``
``simulatorSubversion``     1            VACASK ``Simulator::minorVersion``
``sourceScaleFactor``       1            VACASK ``commons.sourcescalefactor`` (1 outside source stepping)
``reltol``                  1e-3         VACASK ``options.reltol``
``vntol``                   1e-6 V       VACASK ``options.vntol``
``abstol``                  1e-12 A      VACASK ``options.abstol``
``chgtol``                  1e-15 C      VACASK ``options.chgtol``
``fluxtol``                 1e-14 Wb     VACASK ``options.fluxtol``
``shrink``                  0 (%)        *not passed by VACASK*; Verilog-AMS LRM table 9-27 name. 0 is
                                         the neutral value (no optical shrink) that models default to.
``imax``                    1 A          *not passed by VACASK*; LRM table 9-27 name. 1 A is the usual
                                         explosion-current default (e.g. ``$simparam("imax",1.0)``).
==========================  ===========  =================================================================

String simulator parameters (``$simparam$str``), VACASK ``simStrParamNames``: ``analysis_name``,
``analysis_type`` (VACASK fills them per analysis; va2jax passes ``""`` for the name and ``"dc"``
for the type unless told otherwise) and ``cwd`` (VACASK: its start-up path; va2jax: ``""`` so
that results never depend on the working directory).

Because VACASK does not pass ``shrink`` and ``imax``, a model whose ``$simparam("shrink", d)`` or
``$simparam("imax", d)`` default ``d`` differs from the value above evaluates differently in VACASK;
:data:`VACASK_SIM_PARAM_NAMES` lists exactly what VACASK passes for such comparisons.
"""
from __future__ import annotations

#: Real-valued simulator parameters passed to every ``setup_model``/``setup_instance``/``eval``.
DEFAULT_SIM_PARAMS: dict[str, float] = {
    "iniLim": 0.0,
    "gmin": 1e-12,
    "gdev": 0.0,
    "tnom": 27.0,
    "minr": 0.0,
    "scale": 1.0,
    "iteration": 0.0,
    "simulatorVersion": 0.0,
    "simulatorSubversion": 1.0,
    "sourceScaleFactor": 1.0,
    "reltol": 1e-3,
    "vntol": 1e-6,
    "abstol": 1e-12,
    "chgtol": 1e-15,
    "fluxtol": 1e-14,
    "shrink": 0.0,
    "imax": 1.0,
}

#: String-valued simulator parameters (``$simparam$str``).
DEFAULT_SIM_PARAMS_STR: dict[str, str] = {
    "analysis_name": "",
    "analysis_type": "dc",
    "cwd": "",
}

#: The real-valued names VACASK itself passes (in its order); see the module docstring.
VACASK_SIM_PARAM_NAMES: tuple[str, ...] = (
    "iniLim", "gmin", "gdev", "tnom", "minr", "scale", "iteration", "simulatorVersion",
    "simulatorSubversion", "sourceScaleFactor", "reltol", "vntol", "abstol", "chgtol", "fluxtol",
)

#: Name of the simulator parameter that reports limiting initialisation (1 with ``INIT_LIM``).
INIT_LIM_SIM_PARAM = "iniLim"
