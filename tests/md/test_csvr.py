"""The CSVR kinetic-energy update against its exact distribution.

Bussi, Donadio & Parrinello (2007): for fixed K the new kinetic energy is
K' = cK + (1 − c) K̄ (R₁² + S)/N_f + 2 R₁ sqrt(c (1 − c) K K̄ / N_f), S ~ χ²(N_f − 1), so
E[K'] = cK + (1 − c) K̄ and Var[K'] = 2 (1 − c)² K̄²/N_f + 4 c (1 − c) K K̄ / N_f; its
stationary distribution is Gamma(N_f/2, k_B T). Small systems (N_f = 9) make an
off-by-one in N_f a 5–10 % effect, far beyond the statistical error.
"""

import ase
import numpy as np
import torch
from scipy.special import gammainc

from mlpot.md import CSVR, MDState, maxwell_boltzmann
from mlpot.md.integrators.csvr import csvr_kinetic_energy
from mlpot.md.units import KB
from mlpot.models.base import PotentialOutput

T0 = 100.0


def test_kinetic_energy_mean_and_variance_for_fixed_k():
    n, nf, c = 200_000, 9, 0.6
    kbar = 0.5 * nf * KB * T0
    for K0 in (0.3 * kbar, kbar, 2.5 * kbar):
        K = torch.full((n,), K0, dtype=torch.float64)
        k_new, _ = csvr_kinetic_energy(
            K,
            torch.full_like(K, kbar),
            torch.full_like(K, nf),
            c,
            torch.arange(n),
            step=7,
            stream=1,
        )
        k_new = k_new.numpy()
        mean = c * K0 + (1 - c) * kbar
        var = 2 * (1 - c) ** 2 * kbar**2 / nf + 4 * c * (1 - c) * K0 * kbar / nf
        se = np.sqrt(var / n)
        print(
            f"K = {K0 / kbar:.1f} K̄: mean {k_new.mean() / mean - 1:+.2e}, "
            f"var {k_new.var() / var - 1:+.2e}"
        )
        assert abs(k_new.mean() - mean) < 4 * se
        assert abs(k_new.var() / var - 1) < 0.02


class FreeParticles:
    """No forces (an ideal gas): K changes only through the thermostat."""

    def __call__(self, graph, compute_stress=False):
        zeros = torch.zeros(graph.num_systems, dtype=graph.dtype)
        return PotentialOutput(
            energy=zeros,
            energies=torch.zeros_like(graph.positions[:, 0]),
            forces=torch.zeros_like(graph.positions),
        )


def test_stationary_kinetic_energy_is_gamma_of_half_the_degrees_of_freedom():
    """4-atom systems (N_f = 3·4 − 3 = 9) with the CSVR integrator: the sampled K
    follows Gamma(N_f/2, k_B T) (mean, variance and the whole CDF)."""
    atoms = ase.Atoms("Ar4", positions=np.eye(4, 3) * 3.0, cell=[10, 10, 10], pbc=True)
    state = maxwell_boltzmann(MDState.from_atoms([atoms] * 2000, seed=5), T0)
    integ, forces = CSVR(50.0, T0, tau=50.0), FreeParticles()
    samples = []
    for k in range(120):
        state = integ.step(state, forces)
        if k >= 20:
            samples.append(state.kinetic_energy())
    K = torch.stack(samples).numpy().ravel()
    kT, nf = KB * T0, 9
    print(
        f"<K>/(N_f kT/2) = {K.mean() / (0.5 * nf * kT):.4f}, "
        f"Var(K)/(N_f (kT)^2/2) = {K.var() / (0.5 * nf * kT**2):.4f}"
    )
    assert abs(K.mean() / (0.5 * nf * kT) - 1) < 0.01
    assert abs(K.var() / (0.5 * nf * kT**2) - 1) < 0.03
    quantiles = np.quantile(K, [0.05, 0.25, 0.5, 0.75, 0.95])
    cdf = gammainc(nf / 2, quantiles / kT)
    assert np.allclose(cdf, [0.05, 0.25, 0.5, 0.75, 0.95], atol=0.01), cdf
    assert float(state.degrees_of_freedom()[0]) == nf
