"""The Verlet-skin list: skipping rebuilds never changes forces, energies or stress."""

import pytest
import torch

from mlpot.md import ForceField, Langevin, NPTStochasticCellRescaling, VelocityVerlet
from mlpot.md.forces import build_verlet_list
from mlpot.md.units import GPA
from mlpot.neighbors import with_neighbors

from .helpers import argon_lj, fcc_argon, start


@pytest.mark.parametrize(("prune", "npt", "backend"), [
    (True, False, "numba"), (True, False, "torch"), (False, False, "auto"),
    (True, True, "numba"), (True, True, "torch")])
def test_skin_list_gives_fresh_list_forces(prune, npt, backend):
    model = argon_lj(7.0)
    state, _ = start([fcc_argon(2), fcc_argon(2, a=5.5)], model, 300.0, seed=2, stress=npt)
    ff = ForceField(model, skin=1.5, compute_stress=npt, prune=prune, backend=backend)
    state = ff.evaluate(state)
    integ = (NPTStochasticCellRescaling(5.0, 300.0, 0.5 * GPA, tau_p=100.0,
                                        compressibility=200.0, cell_mode="full")
             if npt else Langevin(5.0, 300.0, friction=0.05))
    worst = 0.0
    for _ in range(200):
        state = integ.step(state, ff)
        fresh = model(with_neighbors(state.graph, model.cutoff), compute_stress=npt)
        scale = float(fresh.forces.abs().max())
        worst = max(worst, float((state.forces - fresh.forces).abs().max()) / scale,
                    float((state.energy - fresh.energy).abs().max() / fresh.energy.abs().max()))
        if npt:
            worst = max(worst, float((state.stress - fresh.stress).abs().max()
                                     / fresh.stress.abs().max()))
    assert 1 < ff.rebuilds < 150, f"rebuilt {ff.rebuilds} times in 200 steps"
    assert worst < 1e-12, f"skin list changed forces by {worst:.2e} (relative)"


def test_rebuild_triggered_by_cell_shrink_only():
    """A pure compression with no relative motion must still trigger a rebuild."""
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2)], model, 0.0, skin=0.5)
    assert not ff.needs_rebuild(state.graph)
    shrunk = state.with_positions(state.positions * 0.9, state.cell * 0.9)
    assert ff.needs_rebuild(shrunk)
    out = ff(shrunk.graph)
    fresh = model(with_neighbors(shrunk.graph, model.cutoff))
    assert torch.allclose(out.energy, fresh.energy, rtol=1e-13)


def test_min_distance_finds_close_pairs_only_when_asked():
    model = argon_lj(7.0)
    state, ff = start([fcc_argon(2)], model, 50.0)
    nearest = ff.min_distance(state.graph)
    assert abs(nearest - 5.30 / 2**0.5) < 0.1
    assert ff.min_distance(state.graph, below=1.0) is None
    pos = state.positions.clone()
    pos[5] = pos[3] + torch.tensor([0.4, 0.0, 0.0], dtype=pos.dtype)
    moved = state.with_positions(pos)
    assert abs(ff.min_distance(moved.graph, below=1.0) - 0.4) < 1e-12


def test_pair_kernels_give_the_same_trajectory():
    """The numba and torch pair selections keep the same pairs in the same order, so
    the trajectories agree bit for bit (float64, NVE, rebuilds included)."""
    model = argon_lj(7.0)
    final = {}
    for backend in ("numba", "torch"):
        state, _ = start([fcc_argon(2)], model, 400.0, seed=4)
        ff = ForceField(model, skin=0.6, backend=backend)
        state = ff.evaluate(state)
        vv = VelocityVerlet(4.0)
        for _ in range(150):
            state = vv.step(state, ff)
        assert ff.rebuilds > 2
        final[backend] = state
    assert torch.equal(final["numba"].positions, final["torch"].positions)
    assert torch.equal(final["numba"].momenta, final["torch"].momenta)


def test_unknown_pair_backend_is_rejected():
    with pytest.raises(ValueError, match="pair-selection backend 'cuda'"):
        ForceField(argon_lj(7.0), backend="cuda")


def test_verlet_list_stores_each_pair_with_its_reverse():
    """Couples (i, j, S), (j, i, −S) of equal length, together exactly the full list."""
    model = argon_lj(7.0)
    state, _ = start([fcc_argon(2), fcc_argon(1)], model, 300.0, seed=6)  # 1 cell: self-images
    v = build_verlet_list(state.graph, 6.0)
    i, j = v.edge_index
    assert torch.equal(i[0::2], j[1::2]) and torch.equal(j[0::2], i[1::2])
    assert torch.equal(v.cell_shifts[0::2], -v.cell_shifts[1::2])
    assert torch.equal(v.ref_distance[0::2], v.ref_distance[1::2])
    assert bool((v.ref_distance[1:] >= v.ref_distance[:-1]).all())
    full = with_neighbors(state.graph, 6.0)
    cell = state.cell[state.system_index[full.edge_index[0]]]
    want = {(a, b, *s) for a, b, s in zip(*full.edge_index.tolist(), torch.linalg.solve(
        cell.transpose(1, 2), full.shifts).round().long().tolist(), strict=True)}
    got = {(a, b, *s) for a, b, s in zip(i.tolist(), j.tolist(),
                                          v.cell_shifts.round().long().tolist(), strict=True)}
    assert got == want
    assert int((i == j).sum()) > 0  # the 4-atom cell has pairs of an atom with its images
