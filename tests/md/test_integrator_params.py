"""Integrator parameters (and the rollout step's): a time step, time constant, friction or
compressibility that is zero, negative or NaN is refused at construction with an error
naming the field, its value and its unit."""

import math

import pytest

from mlpot.md import CSVR, Langevin, NoseHooverChain, NPTStochasticCellRescaling, VelocityVerlet
from mlpot.md.integrators.base import require_positive
from mlpot.md.rollout import ForecastStep

VALID = {
    VelocityVerlet: {"dt": 1.0},
    CSVR: {"dt": 1.0, "temperature": 300.0, "tau": 100.0},
    Langevin: {"dt": 1.0, "temperature": 300.0, "friction": 0.01},
    NoseHooverChain: {"dt": 1.0, "temperature": 300.0, "tau": 100.0},
    NPTStochasticCellRescaling: {"dt": 1.0, "temperature": 300.0, "tau_t": 100.0,
                                 "tau_p": 1000.0, "compressibility": 90.0},
    ForecastStep: {"dt": 5.0, "temperature": 300.0, "tau": 20.0},
}
UNITS = {"dt": "fs", "tau": "fs", "tau_t": "fs", "tau_p": "fs", "friction": "1/fs",
         "compressibility": "Å³/eV"}
CASES = [(cls, name) for cls, params in VALID.items() for name in params if name in UNITS]


@pytest.mark.parametrize(("cls", "name"), CASES,
                         ids=[f"{cls.__name__}.{name}" for cls, name in CASES])
@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan])
def test_non_positive_parameter_is_refused_by_name(cls, name, bad):
    cls(**VALID[cls])  # the valid set builds
    with pytest.raises(ValueError, match=rf"^{cls.__name__}: {name} must be positive, "
                                         rf"got {bad} {UNITS[name]}$"):
        cls(**{**VALID[cls], name: bad})


def test_nose_hoover_chain_needs_one_thermostat():
    with pytest.raises(ValueError, match="chain_length must be >= 1, got 0"):
        NoseHooverChain(1.0, 300.0, chain_length=0)


def test_require_positive_checks_in_order_and_accepts_positive_values():
    class Params:
        a = 2.0
        b = -3.0
        c = 0.0

    require_positive(Params(), a="fs")
    with pytest.raises(ValueError, match=r"^Params: b must be positive, got -3.0 eV$"):
        require_positive(Params(), a="fs", b="eV", c="K")
