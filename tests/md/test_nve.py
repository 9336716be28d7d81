"""NVE: energy conservation over 10⁴ steps and exact time reversibility (float64)."""

import numpy as np
import pytest
import torch

from mlpot.md import VelocityVerlet
from mlpot.md.units import KB

from .helpers import argon_lj, fcc_argon, run, start


@pytest.mark.slow
def test_nve_energy_drift_fcc_argon_near_melting():
    """32-atom fcc Ar at 80 K (melting 84 K), Δt = 2 fs, 10⁴ steps: |ΔE|/atom < 1e-5 eV."""
    state, ff = start([fcc_argon(2, a=5.40)], argon_lj(), temperature=2 * 80.0)
    vv = VelocityVerlet(2.0)
    e0 = float(vv.conserved_energy(state)[0])
    worst, energies = 0.0, []
    for _ in range(100):
        state, _ = run(state, vv, ff, 100)
        e = float(vv.conserved_energy(state)[0])
        energies.append(e)
        worst = max(worst, abs(e - e0) / 32)
    T = float(state.temperature()[0])
    assert 40 < T < 120, f"not near melting: T = {T}"
    assert worst < 1e-5, f"energy drift {worst:.2e} eV/atom over 1e4 steps"
    assert ff.rebuilds < 1000  # the Verlet list is reused
    print(f"NVE max |ΔE|/atom over 1e4 steps = {worst:.3e} eV, T = {T:.1f} K, "
          f"rebuilds = {ff.rebuilds}")


def test_time_reversibility():
    """Run forward, flip momenta, run back: the start is recovered to 1e-8 Å."""
    state, ff = start([fcc_argon(2, a=5.40)], argon_lj(), temperature=160.0)
    vv = VelocityVerlet(4.0)
    x0, p0 = state.positions.clone(), state.momenta.clone()
    fwd, _ = run(state, vv, ff, 500)
    moved = float((fwd.positions - x0).norm(dim=1).max())
    back, _ = run(fwd.replace(momenta=-fwd.momenta), vv, ff, 500)
    err = float((back.positions - x0).abs().max())
    assert moved > 0.3, "atoms did not move"
    assert ff.rebuilds > 2, "the test must cross neighbour-list rebuilds"
    assert err < 1e-8, f"reversibility error {err:.2e} Å"
    assert float((back.momenta + p0).abs().max()) < 1e-8
    print(f"reversibility error after 2x500 steps: {err:.2e} Å (moved {moved:.2f} Å)")


def test_maxwell_boltzmann_zero_momentum_and_temperature():
    targets = torch.tensor([50.0, 100.0, 150.0], dtype=torch.float64)
    state, _ = start([fcc_argon(2)] * 3, argon_lj(), temperature=targets)
    total = state.sum_per_system(state.momenta)
    assert float(total.abs().max()) < 1e-12
    assert torch.allclose(state.temperature(), targets)
    # kinetic energy = N_f k_B T / 2 with N_f = 3N - 3
    assert np.isclose(float(state.kinetic_energy()[0]), 0.5 * 93 * KB * 50.0)
