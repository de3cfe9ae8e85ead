"""Whole transient steps as one native kernel (``codegen/native/_tstep.py``, the CPU default on the
native-Newton path) against the XLA step loop of ``sim/tran.py`` it replaces
(``VA2JAX_SIM_NATIVE_STEP=0``): the kernel performs the same IEEE operations in the same order, so
the time points, Newton iterations, rejected steps and every value must be equal bit for bit (the
XLA loop is the reference: its arithmetic is ``TranKernel``'s documented step control; VACASK's
own answers for the suite circuits are checked in test_vacask_suite.py)."""
from __future__ import annotations

import re

import jax
import numpy as np
import pytest
import suite

from va2jax.sim import Simulation
from va2jax.sim.sources import Waveform

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="the native step kernel is CPU code")


def _run(path, monkeypatch, native: str, device: bool = True):
    monkeypatch.setenv("VA2JAX_SIM_NATIVE_STEP", native)
    # the XLA loop unfused: fused XLA code on a CPU with FMA contracts ``a*b + c`` into one
    # rounding (va2jax no longer caps the process's ISA), the kernel never does; unfused, every
    # HLO operation rounds once on any x86-64 CPU, so the comparison is CPU-independent
    monkeypatch.setenv("VA2JAX_SIM_FUSION", "0")
    sim = Simulation.from_file(path)
    res = sim.run()["tran1"]
    kerns = list(sim.engine._tran_kernels.values())
    assert len(kerns) == 1 and kerns[0].native == (native == "1")
    assert kerns[0].device_ref == device  # the residual reference (nr_resref; auto: "device")
    return res


def _assert_same(a, b):
    assert (a.stats.points, a.stats.newton_iterations, a.stats.rejected) == (
        b.stats.points, b.stats.newton_iterations, b.stats.rejected)
    np.testing.assert_array_equal(a.scale, b.scale)
    np.testing.assert_array_equal(a.data, b.data)


# reduced stops: rc crosses pulse corners (breakpoints, trapezoidal ringing filter), graetz and mul
# (Gear-2, sine sources, diode limiting) reject steps on the LTE. VACASK's residual reference
# (the default, nr_resref="device": the reactive slots' history eqh/eqdot in the kernel's state)
# and the former one from the sums ("sum") on graetz
@pytest.mark.parametrize("case,stop,resref", [("rc", "3m", "auto"), ("graetz", "2m", "auto"),
                                              ("mul", "20u", "auto"), ("graetz", "2m", "sum")])
def test_suite_native_step_equals_xla_step(case, stop, resref, tmp_path, monkeypatch):
    path = suite.prepare(case, tmp_path, stop=stop)
    path.write_text(re.sub(r"^(\s*)options ", lambda m: m.group(1) + f'options nr_resref="{resref}" ',
                           path.read_text(), count=1, flags=re.M))
    xla = _run(path, monkeypatch, "0", resref != "sum")
    native = _run(path, monkeypatch, "1", resref != "sum")
    assert native.stats.points > 100
    _assert_same(xla, native)


_SOURCES = """
vs (1 0) vsource dc=0 type="pulse" val0=0 val1=1 rise=1u fall=1u width=0.3m period=0.7m
vp (3 0) vsource type="pulse" val0=0.5 val1=-1 delay=0.1m rise=2u fall=0
vq (6 0) vsource type="pulse" val0=0.2 val1=0.7 delay=0.25m rise=3u fall=7u width=0.2m
vsn (4 0) vsource type="sine" sinedc=0.1 ampl=2 freq=3k delay=0.2m sinephase=30
vd (7 0) vsource dc=0.3
vw (8 0) vsource type="pwl" wave=[0.1m, 0, 0.3m, 1, 0.31m, 0.5, 0.9m, -0.4, 3m, 2]
rw (8 2) r r=2.5k
is (0 5) isource type="pulse" val0=0 val1=1m rise=3u fall=5u width=0.3m delay=50u period=0.5m
ic (5 0) isource type="sine" sinedc=1u ampl=2u freq=5k
iw (0 5) isource type="pwl" wave=[0, 0.2m, 0.2m, -0.5m, 0.5m, 0.3m] offset=0.1m scale=2 stretch=1.5 delay=-0.05m
r2 (3 2) r r=2k
r3 (4 2) r r=3k
r4 (6 2) r r=1.5k
r6 (7 5) r r=4k
r5 (5 0) r r=1k
c5 (5 2) c c=10n
"""


@pytest.mark.parametrize("method", ["trap", "gear2", "be"])
def test_every_native_waveform_equals_xla(method, tmp_path, monkeypatch):
    """dc, periodic and single pulses (with and without a fall), a delayed sine with a phase, a pwl
    wave with a point after ``stop``, a pwl shaped by ``offset scale stretch delay``, voltage and
    current sources, on each integration method."""
    path = suite.prepare("rc", tmp_path, stop="2m")
    text = path.read_text()
    text = text.replace('model vsource vsource\n', 'model vsource vsource\nmodel isource isource\n')
    text = text.replace('vs (1 0) vsource dc=0 type="pulse" val0=0 val1=1 rise=1u fall=1u width=1m period=2m\n',
                        _SOURCES)
    text = text.replace('options tran_method="trap"', f'options tran_method="{method}"')
    text = text.replace("maxstep=1u", "maxstep=5u")
    path.write_text(text)
    xla = _run(path, monkeypatch, "0")
    native = _run(path, monkeypatch, "1")
    assert native.stats.points > 100
    _assert_same(xla, native)


def test_unsupported_waveforms_keep_the_xla_step():
    from va2jax.codegen.native._tstep import supported

    class S:
        def __init__(self, w):
            self.wave = w

    assert supported([S(Waveform("dc", 1.0)), S(Waveform("sine", p={"ampl": 1.0, "freq": 1e3}))])
    assert not supported([S(Waveform("sine", p={"ampl": 1.0, "freq": 1e3, "damp": 10.0}))])
    assert not supported([S(Waveform("exp", p={"val1": 1.0}))])
    assert supported([S(Waveform("pwl", wave=np.array([[0.0, 0.0], [1.0, 1.0]])))])


def test_newton_failure_reported_alike(tmp_path, monkeypatch):
    """``tran_itl=1`` never converges (convergence needs a second iteration): both loops shrink the
    step by ``tran_ft`` down to ``hmin`` and stop with the same time and residual in the message."""
    from va2jax.errors import Va2JaxError

    path = suite.prepare("rc", tmp_path, stop="1m")
    path.write_text(path.read_text().replace('options tran_method="trap"',
                                              'options tran_method="trap" tran_itl=1'))
    msgs = []
    for native in ("0", "1"):
        monkeypatch.setenv("VA2JAX_SIM_NATIVE_STEP", native)
        with pytest.raises(Va2JaxError, match="did not converge") as exc:
            Simulation.from_file(path).run()
        msgs.append(str(exc.value))
    assert msgs[0].startswith("transient tran1: Newton did not converge at t=")
    assert msgs[0] == msgs[1]
