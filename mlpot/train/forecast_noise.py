"""Noise injection for forecaster training: robustness to the model's own errors.

A rollout feeds the forecaster its own slightly wrong positions and velocities; a
model trained only on exact reference frames has never seen such inputs and its
errors compound (measured: the first mlpot-cu-trajcast added ~6 % kinetic energy per
step and melted the crystal within ~150 steps). As learned simulators do
(Sanchez-Gonzalez et al. 2020, "Learning to simulate complex physics with graph
networks"), each training input is perturbed and the targets are made consistent
with the reference trajectory, so the network learns to steer back onto it:

    x̃ = x + ε_x,   ṽ = v + ε_v,   ε ~ N(0, σ²) per component,
    Δx_target = x(t+Δt) − x̃ = Δx − ε_x,   v'_target = v(t+Δt)
    (and likewise for the later frames of an unrolled sample).

With ``scale="absolute"`` every atom gets the same σ (Å, Å/fs). With
``scale="thermal"`` the two numbers are fractions of each atom's thermal scale,

    σ_v,i = α_v · sqrt(θ/m_i),   σ_x,i = α_x · sqrt(θ/m_i) · Δt,
    θ = Σ_j m_j |v_j|² / (3 N)   (the sample's own equipartition k_B·T, per system),

so that the noise has the shape of the Maxwell–Boltzmann distribution. Why: a network
trained on noisy inputs and clean targets learns the posterior mean of the state,
which shrinks the part of the state the noise covers by 1/(1 + α²). With one σ for
all atoms that shrinkage is strongest where the thermal scale is smallest (heavy
atoms, stiff bonds): a rollout then damps those modes far more than the others, and a
global thermostat, which scales all velocities alike, cannot give the energy back to
them (measured on ethanol with σ_x = 0.02 Å, σ_v = 4e-3 Å/fs: bond-length spread
0.001-0.006 Å against 0.024-0.033 Å in the reference). Velocity noise shaped like the
Maxwell–Boltzmann distribution, which is independent of the configuration, is shrunk
by the same factor on every atom: a uniform friction, whose lost energy the thermostat
returns to all modes alike.

The noise of every system has zero mass-weighted mean (a rigid shift of the input, or
a change of its total momentum, is something the conservation layer keeps and the
network cannot undo) and, for forecasters that conserve the angular momentum, no
rigid rotation of the velocities. The noise of optimiser step ``step`` comes from a
generator seeded by (seed, step, rank), so a resumed run draws exactly the same noise.
"""

from __future__ import annotations

import torch

from mlpot.datasets.forecast import ForecastSample
from mlpot.graph import system_sum
from mlpot.models.trajcast import TrajCastForecaster
from mlpot.models.trajcast_conservation import fix_angular_momentum


def noise_generator(seed: int, step: int, rank: int = 0) -> torch.Generator:
    """CPU generator of the noise of one optimiser step (a pure function of its inputs)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 4099 + rank)


def _without_drift(
    noise: torch.Tensor, masses: torch.Tensor, system_index: torch.Tensor, num_systems: int
) -> torch.Tensor:
    total = system_sum(masses, system_index, num_systems)[:, None]
    mean = system_sum(masses[:, None] * noise, system_index, num_systems) / total
    return noise - mean.index_select(0, system_index)


def thermal_scale(
    velocities: torch.Tensor, masses: torch.Tensor, system_index: torch.Tensor, num_systems: int
) -> torch.Tensor:
    """``[N, 1]`` sqrt(θ/m_i), Å/fs: each atom's thermal velocity scale, θ = Σ m|v|²/(3N)
    of its system (amu·Å²/fs², the equipartition k_B·T of the sample itself)."""
    twice_kinetic = system_sum(masses * velocities.square().sum(-1), system_index, num_systems)
    atoms = system_sum(torch.ones_like(masses), system_index, num_systems)
    theta = (twice_kinetic / (3.0 * atoms)).index_select(0, system_index)
    return (theta / masses).sqrt()[:, None]


def perturb(
    sample: ForecastSample,
    model: TrajCastForecaster,
    position_noise: float,
    velocity_noise: float,
    generator: torch.Generator,
    scale: str = "absolute",
) -> ForecastSample:
    """``sample`` with noisy inputs and consistent targets (see the module docstring).

    Args:
        sample: batched pairs (graph without edges, ``[N, 3]`` targets).
        model: the forecaster (its masses and conservation laws).
        position_noise: σ_x, Å; with ``scale="thermal"`` α_x, a fraction of the thermal
            distance over one forecast interval (0: positions untouched).
        velocity_noise: σ_v, Å/fs; with ``scale="thermal"`` α_v, a fraction of the
            thermal velocity (0: velocities untouched).
        generator: CPU source of the noise.
        scale: ``absolute`` (one σ for all atoms) or ``thermal`` (per atom, see above).
    """
    if scale not in ("absolute", "thermal"):
        raise ValueError(f"unknown noise scale {scale!r}; known: absolute, thermal")
    graph = sample.graph
    v = graph.velocities
    assert v is not None  # forecast samples always carry velocities
    if position_noise == 0 and velocity_noise == 0:
        return sample
    shape, b = graph.positions.shape, graph.num_systems
    masses, index = model.masses(graph), graph.system_index
    eps_x = torch.randn(shape, generator=generator, dtype=torch.float64) * position_noise
    eps_v = torch.randn(shape, generator=generator, dtype=torch.float64) * velocity_noise
    if scale == "thermal":
        per_atom = thermal_scale(v.double(), masses.double(), index, b)
        eps_x, eps_v = eps_x * per_atom * model.forecast_fs, eps_v * per_atom
    eps_x = _without_drift(eps_x.to(graph.positions), masses, index, b)
    eps_v = _without_drift(eps_v.to(v), masses, index, b)
    if model.config.angular_momentum and velocity_noise > 0:
        eps_v = fix_angular_momentum(
            graph.positions, torch.zeros_like(eps_v), eps_v, eps_v, masses, index, b, "zero"
        )
    noisy = graph.replace(positions=graph.positions + eps_x, velocities=v + eps_v)
    later = sample.later_displacements
    return ForecastSample(
        graph=noisy,
        displacement=sample.displacement - eps_x,
        velocities=sample.velocities,
        later_displacements=None if later is None else later - eps_x[:, None],
        later_velocities=sample.later_velocities,
    )
