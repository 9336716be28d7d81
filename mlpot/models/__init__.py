"""Interatomic potentials: the `Potential` base class and the concrete models."""

from mlpot.models.base import Potential, PotentialOutput, energy_forces_stress
from mlpot.models.equivariant import EquivariantPotential, EquivariantPotentialConfig
from mlpot.models.lj import LennardJones, LennardJonesConfig
from mlpot.models.references import SystemReferences
from mlpot.models.trajcast import Forecast, TrajCastForecaster, TrajCastForecasterConfig
from mlpot.models.transip import TransIPEmbedding, TransIPPotential, TransIPPotentialConfig

#: Closed table of model classes a checkpoint may name (no import-path strings).
MODEL_CLASSES: dict[str, type[Potential] | type[TrajCastForecaster]] = {
    "EquivariantPotential": EquivariantPotential,
    "LennardJones": LennardJones,
    "TransIPPotential": TransIPPotential,
    "TrajCastForecaster": TrajCastForecaster,
}

__all__ = [
    "MODEL_CLASSES",
    "EquivariantPotential",
    "EquivariantPotentialConfig",
    "Forecast",
    "LennardJones",
    "LennardJonesConfig",
    "Potential",
    "PotentialOutput",
    "SystemReferences",
    "TrajCastForecaster",
    "TrajCastForecasterConfig",
    "TransIPEmbedding",
    "TransIPPotential",
    "TransIPPotentialConfig",
    "energy_forces_stress",
]
