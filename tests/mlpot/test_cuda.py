"""CUDA paths (vesin-torch neighbours, models on the GPU) agree with the CPU.

Skipped where no GPU is present; run on a GPU machine with ``pytest tests/mlpot/test_cuda.py``.
"""

import ase.build
import pytest
import torch

from mlpot import AtomicGraph, with_neighbors
from mlpot.models import LennardJones

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def _systems():
    cu = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(3)
    cu.rattle(0.1, seed=0)
    slab = ase.build.fcc111("Ar", size=(3, 3, 2), a=5.26, vacuum=5.0)
    cluster = ase.build.bulk("Ar", "fcc", a=5.26, cubic=True).repeat(2)
    cluster.pbc = False
    return [cu, slab, cluster]


def test_neighbors_on_gpu_match_cpu():
    cpu = with_neighbors(AtomicGraph.from_atoms(_systems(), dtype=torch.float64), 7.0)
    gpu = with_neighbors(AtomicGraph.from_atoms(_systems(), dtype=torch.float64,
                                                device="cuda"), 7.0)
    assert gpu.edge_index.device.type == "cuda"

    def pairs(g):
        key = torch.cat([g.edge_index.T.double(), g.shifts.round(decimals=6)], dim=1)
        return sorted(map(tuple, key.cpu().tolist()))

    assert pairs(cpu) == pairs(gpu)


def test_lennard_jones_on_gpu_matches_cpu():
    model = LennardJones(["Ar"]).double()
    systems = _systems()[:1]
    ref = model(AtomicGraph.from_atoms(systems, dtype=torch.float64), compute_stress=True)
    out = model.to("cuda")(AtomicGraph.from_atoms(systems, dtype=torch.float64,
                                                  device="cuda"), compute_stress=True)
    torch.testing.assert_close(out.energy.cpu(), ref.energy, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(out.forces.cpu(), ref.forces, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out.stress.cpu(), ref.stress, rtol=1e-10, atol=1e-12)
