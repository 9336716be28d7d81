"""Kinetic energy per system: the numba kernel against the pure-torch reference."""

import pytest
import torch

from mlpot.kernels.kinetic import kinetic_energy, kinetic_energy_reference


def _batch(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.tensor([5, 1, 17, 40])
    system = torch.repeat_interleave(torch.arange(len(counts)), counts)
    n = int(counts.sum())
    momenta = torch.randn(n, 3, generator=g, dtype=dtype) * 3.0
    masses = torch.rand(n, generator=g, dtype=dtype) * 100 + 1
    return momenta, masses, system, len(counts) + 1  # the last system has no atoms


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_numba_kinetic_energy_is_bit_identical_to_reference(dtype):
    momenta, masses, system, b = _batch(dtype)
    got = kinetic_energy(momenta, masses, system, b, backend="numba")
    want = kinetic_energy_reference(momenta, masses, system, b)
    assert got.dtype == dtype
    assert torch.equal(got, want)
    # and it is the kinetic energy: per system Σ p²/2m, in float64 from scratch
    p64, m64 = momenta.double(), masses.double()
    exact = [float(((p64[system == s] ** 2).sum(1) / (2 * m64[system == s])).sum())
             for s in range(b)]
    assert got.double().tolist() == pytest.approx(exact, rel=1e-5 if dtype == torch.float32
                                                   else 1e-13)
    assert float(got[-1]) == 0.0


def test_differentiable_momenta_use_the_reference():
    momenta, masses, system, b = _batch(torch.float64, seed=1)
    momenta.requires_grad_(True)
    ekin = kinetic_energy(momenta, masses, system, b)
    (grad,) = torch.autograd.grad(ekin.sum(), momenta)
    assert torch.allclose(grad, momenta / masses[:, None])
