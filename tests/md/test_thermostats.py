"""NVT ensembles: mean temperature and kinetic-energy variance against the canonical values.

16 replicas of 32-atom fcc Ar (LJ, r_c = 7 Å) at 60 K run as one batch. Canonical
values with N_f = 3N − 3: ⟨K⟩ = N_f k_B T / 2, Var(K) = N_f (k_B T)² / 2.
"""

import pytest

from mlpot.md import CSVR, Langevin, NoseHooverChain
from mlpot.md.units import KB

from .helpers import argon_lj, as_numpy, fcc_argon, run, start

T0 = 60.0
CASES = {
    "langevin": (lambda: Langevin(10.0, T0, friction=0.02), 1000),
    "csvr": (lambda: CSVR(20.0, T0, tau=50.0), 700),
    "nose_hoover_chain": (lambda: NoseHooverChain(20.0, T0, tau=100.0), 700),
}


@pytest.mark.parametrize("name", list(CASES))
def test_canonical_temperature_and_kinetic_energy_variance(name):
    make, steps = CASES[name]
    state, ff = start([fcc_argon(2)] * 16, argon_lj(7.0), T0, seed=3)
    _, kept = run(state, make(), ff, steps, record=100)
    K = as_numpy([s.kinetic_energy() for s in kept])
    nf = float(state.degrees_of_freedom()[0])
    mean_T = 2 * K.mean() / (nf * KB)
    var_ratio = K.var() / (0.5 * nf * (KB * T0) ** 2)
    print(f"{name}: mean T = {mean_T:.2f} K ({mean_T / T0 - 1:+.2%}), "
          f"Var(K)/canonical = {var_ratio:.3f}")
    assert abs(mean_T / T0 - 1) < 0.015
    assert abs(var_ratio - 1) < 0.10
