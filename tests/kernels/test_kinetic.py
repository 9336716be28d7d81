"""Kinetic energy per system: value, batch invariance and gradient."""

import pytest
import torch

from mlpot.kernels.kinetic import kinetic_energy


def _batch(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([5, 1, 17, 40])
    system = torch.repeat_interleave(torch.arange(len(counts)), counts)
    n = int(counts.sum())
    momenta = torch.randn(n, 3, generator=g, dtype=dtype) * 3.0
    masses = torch.rand(n, generator=g, dtype=dtype) * 100 + 1
    return momenta, masses, system, counts, len(counts) + 1  # the last system has no atoms


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kinetic_energy_per_system_and_batch_invariant(dtype):
    momenta, masses, system, counts, b = _batch(dtype)
    got = kinetic_energy(momenta, masses, system, b)
    assert got.dtype == dtype
    p64, m64 = momenta.double(), masses.double()
    exact = [float(((p64[system == s] ** 2).sum(1) / (2 * m64[system == s])).sum())
             for s in range(b)]
    assert got.double().tolist() == pytest.approx(exact, rel=1e-5 if dtype == torch.float32
                                                   else 1e-13)
    assert float(got[-1]) == 0.0
    start = 0
    for s, n in enumerate(counts.tolist()):  # each system alone: the same bits
        sl = slice(start, start + n)
        alone = kinetic_energy(momenta[sl], masses[sl], torch.zeros(n, dtype=torch.int64), 1)
        assert torch.equal(alone[0], got[s])
        start += n


def test_kinetic_energy_is_differentiable():
    momenta, masses, system, _, b = _batch(torch.float64, seed=1)
    momenta.requires_grad_(True)
    ekin = kinetic_energy(momenta, masses, system, b)
    (grad,) = torch.autograd.grad(ekin.sum(), momenta)
    assert torch.allclose(grad, momenta / masses[:, None])
