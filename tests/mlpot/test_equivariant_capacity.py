"""Capacity check: plain Adam overfits 20 rattled/strained Cu–Ni EMT cells.

float32 (speed); 4-atom cells, 2 % strain, 0.05 Å rattle (force RMS ≈ 0.6 eV/Å).
"""

import time

import numpy as np
import pytest
import torch
from ase.build import bulk
from ase.calculators.emt import EMT

from mlpot import AtomicGraph
from mlpot.models import EquivariantPotential


def emt_configs(count: int = 20, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
        atoms.numbers[rng.random(len(atoms)) < 0.5] = 28
        strain = np.eye(3) + 0.02 * rng.normal(size=(3, 3))
        atoms.set_cell(atoms.cell[:] @ (0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.positions += 0.05 * rng.normal(size=atoms.positions.shape)
        atoms.calc = EMT()
        atoms.get_potential_energy()
        atoms.get_stress()
        out.append(atoms)
    return out


def fit(model, graph, steps: int, lr: float):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr / 20)
    n = graph.atoms_per_system.to(graph.dtype)
    for _ in range(steps):
        out = model(graph, compute_stress=True, training=True)
        loss = (((out.energy - graph.energy) / n) ** 2).mean()
        loss = loss + ((out.forces - graph.forces) ** 2).mean()
        loss = loss + ((out.stress - graph.stress) ** 2).mean() * 10.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model(graph, compute_stress=True)


@pytest.mark.slow
def test_overfits_emt_cuni():
    torch.manual_seed(0)
    configs = emt_configs()
    graph = AtomicGraph.from_atoms(configs, dtype=torch.float32)
    model = EquivariantPotential(["Cu", "Ni"], cutoff=4.5, channels=16, lmax=2, correlation=3,
                                 num_knots=12, avg_num_neighbors=30.0)
    counts = torch.stack([(graph.atomic_numbers[graph.system_index == b, None]
                           == model.species_numbers).sum(0) for b in range(len(configs))])
    e0 = torch.linalg.lstsq(counts.double(), graph.energy[:, None].double()).solution[:, 0]
    model.set_reference_energies(e0)
    start = time.perf_counter()
    out = fit(model, graph, steps=800, lr=1e-2)
    rmse_f = float(((out.forces - graph.forces) ** 2).mean().sqrt())
    rmse_e = float((((out.energy - graph.energy) / graph.atoms_per_system) ** 2).mean().sqrt())
    rmse_s = float(((out.stress - graph.stress) ** 2).mean().sqrt())
    print(f"force RMSE {rmse_f * 1e3:.2f} meV/Å, energy {rmse_e * 1e3:.2f} meV/atom, "
          f"stress {rmse_s * 1e3:.3f} meV/Å³, {time.perf_counter() - start:.1f} s, "
          f"force scale {float(graph.forces.pow(2).mean().sqrt()):.3f} eV/Å")
    assert rmse_f < 0.010
