"""NPT (stochastic cell rescaling): mean volume and volume fluctuations.

Reference: NVT (CSVR) runs at V̄(1 ± 1%) give the pressure–volume slope, hence the
isothermal compressibility κ_T = −(1/V) dV/dP and the volume V* where ⟨P⟩ = P₀.
Checks: ⟨V⟩_NPT ≈ V* and Var(V) = k_B T κ_T ⟨V⟩ within 15%.
"""

import numpy as np
import pytest
import torch

from mlpot.md import CSVR, NPTStochasticCellRescaling, SafetyLimits, run_md
from mlpot.md.units import GPA, KB

from .helpers import argon_lj, as_numpy, fcc_argon, run, start

T0, P0 = 40.0, 0.05 * GPA


def nvt_pressures(model, volumes):
    """Mean P + k_B T/V (the pressure SCR targets) over 8 replicas at each volume."""
    atoms = []
    for v in volumes:
        a = fcc_argon(2)
        a.set_cell(a.cell * (v / a.get_volume()) ** (1 / 3), scale_atoms=True)
        atoms += [a] * 8
    state, ff = start(atoms, model, T0, seed=11, stress=True)
    _, kept = run(state, CSVR(10.0, T0, tau=50.0), ff, 600, record=100)
    P = as_numpy([s.pressure() + KB * T0 / s.volume() for s in kept])
    return np.array([P[:, 8 * k:8 * k + 8].mean() for k in range(len(volumes))])


@pytest.mark.slow
def test_isotropic_npt_volume_and_fluctuations():
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2, a=5.40)] * 16, model, T0, seed=5, stress=True)
    npt = NPTStochasticCellRescaling(10.0, T0, P0, tau_t=100.0, tau_p=200.0,
                                     compressibility=90.0)
    _, kept = run(state, npt, ff, 2000, record=200)
    V = as_numpy([s.volume() for s in kept])
    v_mean = V.mean()
    stderr = V.mean(0).std() / np.sqrt(V.shape[1])
    v1, v2 = 0.99 * v_mean, 1.01 * v_mean
    p1, p2 = nvt_pressures(model, [v1, v2])
    kappa = -(v2 - v1) / (p2 - p1) / v_mean
    v_star = v1 + (P0 - p1) * (v2 - v1) / (p2 - p1)
    ratio = V.var() / (KB * T0 * kappa * v_mean)
    print(f"NPT <V> = {v_mean:.1f} ± {stderr:.1f} Å³, NVT V* = {v_star:.1f} Å³ "
          f"({v_mean / v_star - 1:+.2%}), κ_T = {kappa * GPA:.3f} /GPa, "
          f"Var(V)/(kT κ V) = {ratio:.3f}")
    assert abs(v_mean / v_star - 1) < 0.006
    assert abs(ratio - 1) < 0.15


@pytest.mark.parametrize("mode", ["anisotropic", "full"])
def test_anisotropic_npt_reaches_target_pressure(mode):
    """Each diagonal pressure component averages to P₀; anisotropic keeps the box orthorhombic."""
    state, ff = start([fcc_argon(2, a=5.20)] * 8, argon_lj(7.0), T0, seed=7, stress=True)
    npt = NPTStochasticCellRescaling(10.0, T0, P0, tau_t=100.0, tau_p=200.0,
                                     compressibility=90.0, cell_mode=mode)
    final, kept = run(state, npt, ff, 600, record=200)
    P = as_numpy([torch.diagonal(s.pressure_tensor(), dim1=1, dim2=2) for s in kept])
    p_diag = (P.mean(axis=(0, 1)) + KB * T0 / float(final.volume().mean())) / GPA
    print(f"{mode}: mean diagonal pressure {np.round(p_diag, 4)} GPa (target {P0 / GPA} GPa), "
          f"<V> = {float(final.volume().mean()):.1f} Å³")
    assert np.all(np.abs(p_diag - P0 / GPA) < 0.01)
    off = final.cell - torch.diag_embed(torch.diagonal(final.cell, dim1=1, dim2=2))
    if mode == "anisotropic":
        assert float(off.abs().max()) < 1e-12
    assert float(final.volume().mean()) > float(state.volume().mean())  # expanded from a=5.20


@pytest.mark.parametrize("mode", ["isotropic", "anisotropic", "full"])
def test_effective_energy_is_conserved(mode):
    """H̃ = E_pot + K + P₀V − W_thermostat − W_barostat stays within 1e-4 eV/atom over
    3 ps while the reservoirs exchange ~1e-2 eV/atom (E_pot + K + P₀V alone wanders by
    that much); run_md's drift report is that of H̃. Without the barostat work, or with
    its potential-energy part to first order in the strain only (the noise makes dε² of
    order Δt), H̃ drifts by 1e-3–1e-2 eV/atom."""
    state, ff = start([fcc_argon(2, a=5.35)] * 4, argon_lj(7.0), T0, seed=3, stress=True)
    npt = NPTStochasticCellRescaling(10.0, T0, P0, tau_t=100.0, tau_p=200.0,
                                     compressibility=90.0, cell_mode=mode)
    summary = run_md(state, npt, ff, 300, limits=SafetyLimits(check_every=1))
    H = np.stack(summary.conserved) / 32
    work = as_numpy([summary.state.thermostat_work + summary.state.barostat_work]) / 32
    drift = np.abs(H - H[0]).max()
    print(f"{mode}: max |ΔH̃| = {drift:.2e} eV/atom, |work| = {np.abs(work).max():.2e} "
          f"eV/atom, barostat work {float(summary.state.barostat_work.abs().max()) / 32:.2e}")
    assert drift < 1e-4
    assert float(summary.state.barostat_work.abs().max()) / 32 > 5 * drift
    assert np.abs(summary.drift_per_atom_per_ns).max() < 0.05  # eV/atom/ns


def nvt_elastic_constants(model, length, strain=0.01):
    """Isothermal C11, C12 (eV/Å³) of the cubic crystal of cell ``length`` from the mean
    pressure tensor of NVT (CSVR) runs at ε_xx = ±``strain`` (8 replicas each)."""
    atoms = []
    for e in (-strain, strain):
        a = fcc_argon(2)
        a.set_cell(np.diag([length * (1 + e), length, length]), scale_atoms=True)
        atoms += [a] * 8
    state, ff = start(atoms, model, T0, seed=13, stress=True)
    _, kept = run(state, CSVR(10.0, T0, tau=50.0), ff, 600, record=100)
    P = as_numpy([torch.diagonal(s.pressure_tensor(), dim1=1, dim2=2) for s in kept])
    lo, hi = P[:, :8].mean(axis=(0, 1)), P[:, 8:].mean(axis=(0, 1))
    c11 = -(hi[0] - lo[0]) / (2 * strain)
    c12 = -((hi[1] + hi[2]) - (lo[1] + lo[2])) / 2 / (2 * strain)
    return c11, c12


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["anisotropic", "full"])
def test_cell_length_and_volume_fluctuations_match_the_compliance(mode):
    """Strain fluctuations of a cubic crystal: Var(ln L_a) = k_B T S₁₁/⟨V⟩ and
    Var(V) = k_B T κ_T ⟨V⟩ with S₁₁ = (C₁₁ + C₁₂)/((C₁₁ − C₁₂)(C₁₁ + 2C₁₂)) and
    κ_T = 3(S₁₁ + 2S₁₂) = 3/(C₁₁ + 2C₁₂) from NVT stress–strain runs, within 20 %."""
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2, a=5.40)] * 16, model, T0, seed=5, stress=True)
    npt = NPTStochasticCellRescaling(10.0, T0, P0, tau_t=100.0, tau_p=200.0,
                                     compressibility=90.0, cell_mode=mode)
    _, kept = run(state, npt, ff, 2000, record=200)
    lengths = as_numpy([torch.linalg.vector_norm(s.cell, dim=2) for s in kept])  # [T, B, 3]
    V = as_numpy([s.volume() for s in kept])
    v_mean = V.mean()
    c11, c12 = nvt_elastic_constants(model, float(np.cbrt(v_mean)))
    s11 = (c11 + c12) / ((c11 - c12) * (c11 + 2 * c12))
    kappa = 3 / (c11 + 2 * c12)
    var_ln_l = np.log(lengths).var(axis=0).mean()  # per replica and axis, averaged
    ratio_l = var_ln_l / (KB * T0 * s11 / v_mean)
    ratio_v = V.var(axis=0).mean() / (KB * T0 * kappa * v_mean)
    print(f"{mode}: C11 = {c11 / GPA:.2f} GPa, C12 = {c12 / GPA:.2f} GPa; "
          f"Var(ln L)/(kT S11/V) = {ratio_l:.3f}, Var(V)/(kT κ V) = {ratio_v:.3f}")
    assert abs(ratio_l - 1) < 0.2
    assert abs(ratio_v - 1) < 0.2
