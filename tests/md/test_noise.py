"""Counter-based noise: batch invariance, determinism, independence and normality."""

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from mlpot.md.noise import normals, normals_per_system


def _alone_and_batched(counts, seeds, step=3, stream=1, dtype=torch.float64):
    counts = torch.tensor(counts)
    batched = normals(torch.tensor(seeds), step, stream, counts, dtype)
    alone = [
        normals(torch.tensor([s]), step, stream, torch.tensor([n]), dtype)
        for s, n in zip(seeds, counts.tolist(), strict=True)
    ]
    return batched, alone


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_system_draws_the_same_bits_alone_and_in_any_batch(dtype):
    counts = [1, 3, 96, 7, 2, 31, 40, 5]
    batched, alone = _alone_and_batched(counts, [11, 5, 2, 99, 7, 3, 1, 8], dtype=dtype)
    assert torch.equal(batched, torch.cat(alone))
    # the same systems in another order, next to other systems
    shuffled = normals(torch.tensor([8, 77, 2, 11]), 3, 1, torch.tensor([5, 13, 96, 1]), dtype)
    assert torch.equal(shuffled[:5], alone[7])
    assert torch.equal(shuffled[18:114], alone[2])
    assert torch.equal(shuffled[114:], alone[0])


def test_large_batches_on_several_threads_match_single_draws():
    """Over 32,768 values torch splits elementwise work between threads; the pieces
    keep every value on the same vector code, so the bits still match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        counts = [3 * 33 + k % 5 for k in range(1200)]  # ~120k values
        seeds = list(range(1000, 2200))
        batched, alone = _alone_and_batched(counts, seeds)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(batched, torch.cat(alone))


def test_streams_steps_and_seeds_are_independent_standard_normals():
    n = 50_000
    draws = {
        key: normals(torch.tensor([seed]), step, stream, torch.tensor([n]), torch.float64).numpy()
        for key in [(0, 0, 1), (0, 1, 1), (0, 0, 2), (1, 0, 1), (2**40, 0, 1)]
        for seed, step, stream in [key]
    }
    values = np.stack(list(draws.values()))
    assert np.abs(values.mean(1)).max() < 4 / np.sqrt(n)
    assert np.abs(values.var(1) - 1).max() < 4 * np.sqrt(2 / n)
    corr = np.corrcoef(values)
    assert np.abs(corr - np.eye(len(values))).max() < 4 / np.sqrt(n)
    lag1 = np.corrcoef(values[:, :-1].ravel(), values[:, 1:].ravel())[0, 1]
    assert abs(lag1) < 4 / np.sqrt(values.size)
    # the whole distribution: empirical CDF against Φ at a few points
    for x in (-2.5, -1.0, 0.0, 0.7, 2.0):
        assert abs((values < x).mean() - ndtr(x)) < 4 * np.sqrt(0.25 / values.size)
    # deterministic
    again = normals(torch.tensor([0]), 0, 1, torch.tensor([n]), torch.float64).numpy()
    assert np.array_equal(again, draws[(0, 0, 1)])


def test_per_system_rows():
    rows = normals_per_system(torch.tensor([4, 9]), 2, 3, 9, torch.float64)
    assert rows.shape == (2, 9)
    assert torch.equal(rows[1], normals_per_system(torch.tensor([9]), 2, 3, 9, torch.float64)[0])
