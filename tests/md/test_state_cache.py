"""MDState caches E_kin, T and the volume per source tensor: a new tensor means a new value."""

import torch

from mlpot.md import MDState
from mlpot.md.units import KB, MVV2E

from .helpers import fcc_argon


def test_kinetic_energy_and_temperature_follow_their_sources():
    state = MDState.from_atoms([fcc_argon(2), fcc_argon(2)], seed=0, dtype=torch.float64)
    g = torch.Generator().manual_seed(1)
    state = state.replace(momenta=torch.randn(state.momenta.shape, generator=g,
                                              dtype=torch.float64))

    def exact(s):
        per_atom = (s.momenta**2).sum(1) / (2 * s.masses) * MVV2E
        ekin = torch.zeros(s.num_systems, dtype=torch.float64).index_add(
            0, s.system_index, per_atom)
        return ekin, 2 * ekin / (s.degrees_of_freedom() * KB)

    first = state.kinetic_energy()
    assert state.kinetic_energy() is first  # cached
    assert torch.allclose(first, exact(state)[0], rtol=1e-14)
    assert torch.allclose(state.temperature(), exact(state)[1], rtol=1e-14)
    hotter = state.replace(momenta=2 * state.momenta)  # the cache is carried, then refused
    assert torch.allclose(hotter.kinetic_energy(), 4 * first, rtol=1e-14)
    assert torch.allclose(hotter.temperature(), exact(hotter)[1], rtol=1e-14)
    # the same momenta split differently between systems
    regrouped = state.replace(graph=state.graph.replace(
        system_index=torch.zeros_like(state.system_index), cell=state.cell[:1],
        pbc=state.graph.pbc[:1], charge=state.graph.charge[:1], spin=state.graph.spin[:1]))
    assert torch.allclose(regrouped.kinetic_energy(), first.sum().view(1), rtol=1e-14)
    moved = state.with_positions(state.positions + 0.1)
    assert moved.kinetic_energy() is first  # positions do not matter
    bigger = state.with_positions(state.positions, 1.1 * state.cell)
    assert torch.allclose(bigger.volume(), 1.1**3 * state.volume(), rtol=1e-12)
