"""Interatomic potentials: the `Potential` base class and the concrete models."""

from mlpot.models.base import Potential, PotentialOutput, energy_forces_stress
from mlpot.models.equivariant import EquivariantPotential, EquivariantPotentialConfig
from mlpot.models.lj import LennardJones, LennardJonesConfig
from mlpot.models.transip import TransIPEmbedding, TransIPPotential, TransIPPotentialConfig

#: Closed table of model classes a checkpoint may name (no import-path strings).
MODEL_CLASSES: dict[str, type[Potential]] = {
    "EquivariantPotential": EquivariantPotential,
    "LennardJones": LennardJones,
    "TransIPPotential": TransIPPotential,
}

__all__ = [
    "MODEL_CLASSES",
    "EquivariantPotential",
    "EquivariantPotentialConfig",
    "LennardJones",
    "LennardJonesConfig",
    "Potential",
    "PotentialOutput",
    "TransIPEmbedding",
    "TransIPPotential",
    "TransIPPotentialConfig",
    "energy_forces_stress",
]
