"""The Verlet-skin list in MD: skipping rebuilds never changes forces, energies or stress."""

import pytest
import torch

from mlpot.md import ForceField, Langevin, NPTStochasticCellRescaling
from mlpot.md.units import GPA
from mlpot.neighbors import needs_rebuild, with_neighbors

from .helpers import argon_lj, fcc_argon, start


@pytest.mark.parametrize("npt", [False, True])
def test_skin_list_gives_fresh_list_forces(npt):
    """Along a Langevin or full-cell NPT run, the skin list's forces (and stress) are bit
    for bit those of a list built fresh (skin 0) at every step, and agree with vesin."""
    model = argon_lj(7.0)
    state, _ = start([fcc_argon(2), fcc_argon(2, a=5.5)], model, 300.0, seed=2, stress=npt)
    ff = ForceField(model, skin=1.5, compute_stress=npt)
    fresh_ff = ForceField(model, skin=0.0, compute_stress=npt)
    state = ff.evaluate(state)
    integ = (NPTStochasticCellRescaling(5.0, 300.0, 0.5 * GPA, tau_p=100.0,
                                        compressibility=200.0, cell_mode="full")
             if npt else Langevin(5.0, 300.0, friction=0.05))
    worst = 0.0
    for _ in range(200):
        state = integ.step(state, ff)
        fresh = fresh_ff(state.graph)
        assert torch.equal(state.forces, fresh.forces)
        assert torch.equal(state.energy, fresh.energy)
        if npt:
            assert torch.equal(state.stress, fresh.stress)
        vesin = model(with_neighbors(state.graph, model.cutoff), compute_stress=npt)
        worst = max(worst, float((state.forces - vesin.forces).abs().max()
                                 / vesin.forces.abs().max()))
    assert 1 < ff.rebuilds < 150, f"rebuilt {ff.rebuilds} times in 200 steps"
    assert fresh_ff.rebuilds == 200  # skin 0: a new list every call
    assert worst < 1e-12, f"skin list changed forces by {worst:.2e} (relative)"


def test_rebuild_triggered_by_cell_shrink_only():
    """A pure compression with no relative motion must still trigger a rebuild."""
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2)], model, 0.0, skin=0.5)
    assert not needs_rebuild(ff.verlet, state.graph)
    shrunk = state.with_positions(state.positions * 0.9, state.cell * 0.9)
    assert needs_rebuild(ff.verlet, shrunk.graph)
    out = ff(shrunk.graph)
    fresh = model(with_neighbors(shrunk.graph, model.cutoff))
    assert torch.allclose(out.energy, fresh.energy, rtol=1e-13)


def test_min_distance_finds_close_pairs():
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2)], model, 50.0)
    nearest = ff.min_distance(state.graph)
    assert abs(nearest - 5.30 / 2**0.5) < 0.1
    pos = state.positions.clone()
    pos[5] = pos[3] + torch.tensor([0.4, 0.0, 0.0], dtype=pos.dtype)
    moved = state.with_positions(pos)
    assert abs(ff.min_distance(moved.graph) - 0.4) < 1e-12
