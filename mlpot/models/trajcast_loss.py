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


def forecast_loss(
    model: TrajCastForecaster,
    prediction: Forecast,
    target: Forecast,
    displacement_weight: float = 1.0,
    velocity_weight: float = 1.0,
) -> ForecastLoss:
    """Normalised MSE of a forecast against its reference (shapes ``[N, 3]``)."""
    for name, p, t in (
        ("displacement", prediction.displacement, target.displacement),
        ("velocities", prediction.velocities, target.velocities),
    ):
        if p.shape != t.shape:
            raise ValueError(f"{name}: prediction {tuple(p.shape)} vs target {tuple(t.shape)}")
    dx = ((prediction.displacement - target.displacement) / model.displacement_rms).square()
    dv = ((prediction.velocities - target.velocities) / model.velocity_rms).square()
    dx, dv = dx.mean(), dv.mean()
    return ForecastLoss(
        total=displacement_weight * dx + velocity_weight * dv,
        displacement=dx.detach(),
        velocity=dv.detach(),
    )
