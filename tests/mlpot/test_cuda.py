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


# ------------------------------------------------------------------ MD on the GPU
def _md_integrators():
    from mlpot.md import CSVR, Langevin, NoseHooverChain, NPTStochasticCellRescaling, VelocityVerlet
    from mlpot.md.units import GPA

    return {
        "nve": lambda: VelocityVerlet(5.0),
        "langevin": lambda: Langevin(5.0, 80.0, friction=0.05),
        "csvr": lambda: CSVR(5.0, 80.0, tau=50.0),
        "nhc": lambda: NoseHooverChain(5.0, 80.0, tau=50.0),
        "npt-iso": lambda: NPTStochasticCellRescaling(5.0, 80.0, 0.1 * GPA, tau_p=200.0,
                                                      compressibility=90.0),
        "npt-full": lambda: NPTStochasticCellRescaling(5.0, 80.0, 0.1 * GPA, tau_p=200.0,
                                                       compressibility=90.0,
                                                       cell_mode="full"),
    }


def _md_run(name, device, tmp_path):
    from mlpot.md import ForceField, MDState, maxwell_boltzmann, run_md
    from mlpot.md.reporters import ThermoReporter, TrajectoryReporter
    from mlpot.md.simulate import RestartSchedule

    systems = [ase.build.bulk("Ar", "fcc", a=5.3, cubic=True).repeat(2),
               ase.build.bulk("Ar", "fcc", a=5.4, cubic=True).repeat((2, 2, 3))]
    npt = name.startswith("npt")
    ff = ForceField(LennardJones(["Ar"], cutoff=7.0).double().to(device), skin=1.0,
                    compute_stress=npt)
    state = maxwell_boltzmann(MDState.from_atoms(systems, seed=3, device=device), 80.0)
    state = ff.evaluate(state, compute_stress=npt)
    folder = tmp_path / f"{name}-{device}"
    reporters = [ThermoReporter(folder / "log.csv", 5),
                 TrajectoryReporter(folder / "t.extxyz", state, every=10)]
    summary = run_md(state, _md_integrators()[name](), ff, 40, reporters,
                     restart=RestartSchedule(folder / "r.pt"))
    assert summary.stop_reason == "completed", summary.message
    return summary


@pytest.mark.parametrize("name", list(_md_integrators()))
def test_run_md_on_gpu_matches_cpu(name, tmp_path):
    """Every integrator runs on CUDA tensors end to end (noise, Verlet list, reporters,
    restart) and follows the CPU trajectory (float64; 40 steps)."""
    gpu = _md_run(name, "cuda", tmp_path)
    cpu = _md_run(name, "cpu", tmp_path)
    s = gpu.state
    assert s.positions.device.type == "cuda" and s.seeds.device.type == "cuda"
    for f in ("positions", "momenta", "forces", "energy"):
        torch.testing.assert_close(getattr(s, f).cpu(), getattr(cpu.state, f),
                                   rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(s.cell.cpu(), cpu.state.cell, rtol=1e-9, atol=1e-9)
    assert abs(gpu.drift_per_atom_per_ns - cpu.drift_per_atom_per_ns).max() < 1e-3


def test_fire_on_gpu_matches_cpu():
    from mlpot.md import FIRE, ForceField, MDState

    atoms = ase.build.bulk("Ar", "fcc", a=5.0, cubic=True).repeat(2)
    atoms.rattle(0.1, seed=2)
    results = {}
    for device in ("cpu", "cuda"):
        model = LennardJones(["Ar"], cutoff=7.0).double().to(device)
        ff = ForceField(model, skin=0.5, compute_stress=True)
        results[device] = FIRE(fmax=1e-4, max_steps=2000, cell_filter=True).run(
            MDState.from_atoms([atoms], device=device), ff)
        assert bool(results[device].converged.all())
    torch.testing.assert_close(results["cuda"].state.energy.cpu(),
                               results["cpu"].state.energy, rtol=1e-10, atol=1e-10)
    assert results["cuda"].state.cell.device.type == "cuda"
