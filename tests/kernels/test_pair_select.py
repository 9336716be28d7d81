"""Per-step pair selection: the fused numba kernels against the pure-torch reference."""

import pytest
import torch

from mlpot.kernels.pair_select import (
    SameCellUpdate,
    max_displacement,
    resolve_backend,
    select_pairs,
)

CUTOFF = 3.0


def _candidates(dtype: torch.dtype, seed: int = 0, n: int = 60, e: int = 3000):
    """Random positions in a 10 Å box, random pairs with image shifts, sorted by the
    reference distance and stored as couples (i, j, S), (j, i, −S), as a Verlet list
    stores them."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(n, 3, generator=g, dtype=dtype) * 10.0
    half = torch.randint(0, n, (2, e // 2), generator=g)
    half_shifts = torch.randint(-1, 2, (e // 2, 3), generator=g).to(dtype) * 10.0
    d = (pos[half[1]] - pos[half[0]] + half_shifts).norm(dim=1)
    d, order = torch.sort(d, stable=True)
    half, half_shifts = half[:, order], half_shifts[order]
    edges = torch.stack([half, half.flip(0)], dim=2).reshape(2, -1)
    shifts = torch.stack([half_shifts, -half_shifts], dim=1).reshape(-1, 3)
    return pos, edges, shifts, d.repeat_interleave(2)


def _run_select(backend, pos, edges, shifts, start, stop):
    out_e = torch.full_like(edges, -1)
    out_s = torch.full_like(shifts, float("nan"))
    kept = select_pairs(pos, edges, shifts, start, stop, CUTOFF, out_e, out_s, backend)
    return kept, out_e, out_s


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_select_numba_matches_reference(dtype):
    pos, edges, shifts, _ = _candidates(dtype)
    moved = pos + 0.3 * torch.randn(pos.shape, dtype=dtype,
                                    generator=torch.Generator().manual_seed(1))
    for start, stop in ((0, 3000), (500, 2500), (1000, 1000)):
        kn, en, sn = _run_select("numba", moved, edges, shifts, start, stop)
        kt, et, st = _run_select("torch", moved, edges, shifts, start, stop)
        assert kn == kt
        assert torch.equal(en, et)
        assert torch.equal(st[start:start + kt], sn[start:start + kn])
        # what was kept is exactly the pairs of the range closer than the cutoff, in order
        d = (moved[edges[1]] - moved[edges[0]] + shifts).norm(dim=1)[start:stop]
        want = torch.nonzero(d < CUTOFF).view(-1) + start
        assert torch.equal(et[:, start:start + kt], edges[:, want])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_same_cell_update_numba_matches_reference(dtype):
    pos, edges, shifts, d_ref = _candidates(dtype, seed=3)
    ref_host = d_ref.double().numpy()
    skin = 1.0
    g = torch.Generator().manual_seed(5)
    for scale in (0.0, 0.03, 0.1):  # max displacement stays below skin/2
        moved = pos + scale * torch.randn(pos.shape, dtype=dtype, generator=g)
        results = {}
        for backend in ("numba", "torch"):
            out_e, out_s = edges.clone(), shifts.clone()
            update = SameCellUpdate(pos, ref_host, edges, shifts, CUTOFF, skin, out_e, out_s,
                                    backend)
            results[backend] = (update(moved, edges.shape[1]), out_e, out_s)
        (sn, en, dn), out_en, out_sn = results["numba"]
        (st, et, dt), out_et, out_st = results["torch"]
        assert (sn, en) == (st, et)
        assert dn == pytest.approx(dt, rel=1e-6)
        assert torch.equal(out_en[:, :en], out_et[:, :et])
        assert torch.equal(out_sn[:en], out_st[:et])
        # the list is exactly the pairs now closer than the cutoff
        d = (moved[edges[1]] - moved[edges[0]] + shifts).norm(dim=1)
        got = {tuple(p) for p in out_et[:, :et].T.tolist()}
        want = {tuple(p) for p in edges[:, d < CUTOFF].T.tolist()}
        assert want <= got
        d_kept = (moved[out_et[1, :et]] - moved[out_et[0, :et]] + out_st[:et]).norm(dim=1)
        assert bool((d_kept < CUTOFF).all())


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_same_cell_update_asks_for_a_rebuild_when_stale(backend):
    pos, edges, shifts, d_ref = _candidates(torch.float64, seed=7)
    moved = pos.clone()
    moved[4, 0] += 0.51  # more than skin/2 = 0.5 Å
    update = SameCellUpdate(pos, d_ref.numpy(), edges, shifts, CUTOFF, 1.0, edges.clone(),
                            shifts.clone(), backend)
    assert update(moved, edges.shape[1]) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_max_displacement_backends_agree(dtype):
    pos = torch.rand(100, 3, dtype=dtype)
    moved = pos + 0.1 * torch.randn(100, 3, dtype=dtype)
    want = float((moved - pos).norm(dim=1).max())
    for backend in ("numba", "torch"):
        assert max_displacement(moved, pos, backend) == pytest.approx(want, rel=1e-6)
    assert max_displacement(pos[:0], pos[:0]) == 0.0


def test_backend_resolution():
    cpu = torch.device("cpu")
    assert resolve_backend("auto", cpu) == "numba"
    assert resolve_backend("auto", torch.device("cuda")) == "torch"
    with pytest.raises(ValueError, match="needs numba and CPU tensors"):
        resolve_backend("numba", torch.device("cuda"))
    with pytest.raises(ValueError, match="unknown pair-selection backend"):
        resolve_backend("triton", cpu)
