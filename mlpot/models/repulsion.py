"""`ZBLRepulsion`: the universal screened nuclear repulsion as a fixed short-range prior.

A potential trained on near-equilibrium structures has never seen two nuclei closer
than about 0.8 Å, and nothing stops its learned energy from going down there: in MD a
hot molecule can fall into such a hole, atoms fuse and the energy stops being
conserved. The Ziegler–Biersack–Littmark (ZBL) universal potential adds the physical
wall (as MACE's and NequIP's pair-repulsion options do); the learned part then fits
the rest of the label.

Pair energy, eV (r in Å):

    E_ij(r) = k_e Z_i Z_j / r · φ(r / a_ij) · s(r / r_ij)

- k_e = 14.399645 eV·Å (e²/4πε₀);
- screening length a_ij = 0.8854 a₀ / (Z_i^0.23 + Z_j^0.23), a₀ = 0.529177 Å;
- universal screening function φ(x) = 0.18175 e^(−3.19980x) + 0.50986 e^(−0.94229x)
  + 0.28022 e^(−0.40290x) + 0.02817 e^(−0.20162x) (φ(0) = 1);
- switch s(x) = 1 − 10x³ + 15x⁴ − 6x⁵ for x < 1, 0 beyond (C²), with r_ij the sum of
  the two covalent radii (``ase.data.covalent_radii``): the prior vanishes, with its
  first two derivatives, before a bond reaches its usual length, so near equilibrium
  the learned energy is unchanged and the wall acts only on compressed pairs (C–H at
  0.5 Å: +14.8 eV).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from ase.data import chemical_symbols, covalent_radii
from torch import nn

from mlpot.graph import system_sum
from mlpot.kernels.spline import polynomial_envelope

COULOMB = 14.399645
"""k_e = e²/(4πε₀), eV·Å."""
SCREENING_LENGTH = 0.8854 * 0.529177
"""0.8854 a₀, Å (the ZBL universal screening length before the Z^0.23 terms)."""
PHI_COEFFICIENTS = (0.18175, 0.50986, 0.28022, 0.02817)
PHI_EXPONENTS = (3.19980, 0.94229, 0.40290, 0.20162)


class ZBLRepulsion(nn.Module):
    """Per-atom ZBL energies (half of each pair to each atom) on a full neighbour list.

    Args:
        numbers: the model's atomic numbers in species order (species index → Z).
        cutoff: the model's cutoff, Å; every switch radius r_ij must lie within it.

    Buffers (not saved in checkpoints; rebuilt from the species):
        numbers: ``[S]`` atomic numbers, float.
        radii: ``[S]`` covalent radii, Å.

    Raises:
        ValueError: the largest covalent-radius sum exceeds ``cutoff`` (the neighbour
            list would miss pairs the prior acts on).
    """

    numbers: torch.Tensor
    radii: torch.Tensor

    def __init__(self, numbers: Sequence[int], cutoff: float) -> None:
        super().__init__()
        radii = torch.tensor([float(covalent_radii[z]) for z in numbers], dtype=torch.float64)
        largest = 2 * float(radii.max())
        if largest > cutoff:
            z = chemical_symbols[int(numbers[int(radii.argmax())])]
            raise ValueError(f"pair repulsion: the {z}-{z} switch radius {largest:.2f} Å "
                             f"exceeds the model cutoff {cutoff} Å")
        # derived from the species, so not saved: the state dict is that of the model
        # without the prior
        self.register_buffer("numbers", torch.tensor([float(z) for z in numbers]),
                             persistent=False)
        self.register_buffer("radii", radii.float(), persistent=False)

    def pair_energy(self, distance: torch.Tensor, zi: torch.Tensor, zj: torch.Tensor,
                    switch_radius: torch.Tensor) -> torch.Tensor:
        """E_ij ``[E]``, eV, of pairs at ``distance [E]`` (Å) with atomic numbers ``zi``,
        ``zj`` and switch radii ``switch_radius [E]`` (Å)."""
        a = SCREENING_LENGTH / (zi**0.23 + zj**0.23)
        x = distance / a
        phi = sum(c * torch.exp(-e * x) for c, e in zip(PHI_COEFFICIENTS, PHI_EXPONENTS,
                                                        strict=True))
        # beyond the switch radius the envelope is 0 with zero slope, so far pairs
        # add nothing to the energy or the forces
        switch = polynomial_envelope(distance, switch_radius, p=3)
        return COULOMB * zi * zj / distance * phi * switch

    def forward(self, edge_vectors: torch.Tensor, edge_index: torch.Tensor,
                species: torch.Tensor) -> torch.Tensor:
        """Per-atom energies ``[N]``, eV, from ``edge_vectors [E, 3]`` (Å) of a full
        list ``edge_index [2, E]`` (every pair both ways) and ``species [N]``."""
        i, j = edge_index
        si, sj = species[i], species[j]
        distance = edge_vectors.norm(dim=-1)
        pair = self.pair_energy(distance, self.numbers[si].to(distance),
                                self.numbers[sj].to(distance),
                                (self.radii[si] + self.radii[sj]).to(distance))
        return 0.5 * system_sum(pair, i, species.shape[0])
