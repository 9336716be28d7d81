"""Training loss of :class:`~mlpot.models.TrajCastForecaster`: MSE on normalised outputs.

L = w_x ⟨((Δx − Δx_ref)/σ_x)²⟩ + w_v ⟨((v − v_ref)/σ_v)²⟩, the means over atoms and
components, σ_x and σ_v the model's stored training RMS of Δx and v
(``displacement_rms``, ``velocity_rms``), so both terms are O(1) whatever Δt.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mlpot.models.trajcast import Forecast, TrajCastForecaster


@dataclass(frozen=True)
class ForecastLoss:
    """Loss terms (scalars; ``total`` carries the autograd graph).

    Attributes:
        total: w_x·displacement + w_v·velocity.
        displacement: normalised MSE of Δx.
        velocity: normalised MSE of v(t + Δt).
    """

    total: torch.Tensor
    displacement: torch.Tensor
    velocity: torch.Tensor


def squared_error_sums(
    model: TrajCastForecaster,
    displacement: torch.Tensor,
    velocities: torch.Tensor,
    target_displacement: torch.Tensor,
    target_velocities: torch.Tensor,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[2]`` Σ w_i ((Δx − Δx_ref)/σ_x)² and Σ w_i ((v − v_ref)/σ_v)² over atoms and
    components (inputs ``[N, 3]``, Å and Å/fs; ``weights`` ``[N, 1]`` per-atom, None: all
    1); training sums these over a batch."""
    for name, p, t in (
        ("displacement", displacement, target_displacement),
        ("velocities", velocities, target_velocities),
    ):
        if p.shape != t.shape:
            raise ValueError(f"{name}: prediction {tuple(p.shape)} vs target {tuple(t.shape)}")
    dx = (displacement - target_displacement) / model.displacement_rms
    dv = (velocities - target_velocities) / model.velocity_rms
    dx2, dv2 = dx.square(), dv.square()
    if weights is not None:
        dx2, dv2 = dx2 * weights, dv2 * weights
    return torch.stack([dx2.sum(), dv2.sum()])


def forecast_loss(
    model: TrajCastForecaster,
    prediction: Forecast,
    target: Forecast,
    displacement_weight: float = 1.0,
    velocity_weight: float = 1.0,
) -> ForecastLoss:
    """Normalised MSE of a forecast against its reference (shapes ``[N, 3]``)."""
    sums = squared_error_sums(
        model,
        prediction.displacement,
        prediction.velocities,
        target.displacement,
        target.velocities,
    )
    dx, dv = sums / target.displacement.numel()
    return ForecastLoss(
        total=displacement_weight * dx + velocity_weight * dv,
        displacement=dx.detach(),
        velocity=dv.detach(),
    )
