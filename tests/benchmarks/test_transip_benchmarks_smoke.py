"""The TransIP benchmarks run end to end on tiny inputs (no timing asserted)."""

import numpy as np
import pytest

from benchmarks.transip_speed import organic_cluster, run


def test_organic_cluster_density_and_spacing():
    atoms = organic_cluster(60, seed=1)
    assert len(atoms) == 60
    d = atoms.get_all_distances()[np.triu_indices(60, 1)]
    assert d.min() >= 1.0
    assert (int(atoms.numbers.sum()) + atoms.info["spin"] - 1) % 2 == 0  # parity


def test_speed_benchmark_smoke(capsys):
    rows = run(sizes=(8,), repeats=1, threads=1, frame_averaging=True)
    assert rows[0].atoms == 8
    assert set(rows[0].times_ms) == {"transip", "equivariant", "transip+fa"}
    assert all(t > 0 for t in rows[0].times_ms.values())
    assert "equivariant/transip" in capsys.readouterr().out


def test_md_benchmark_smoke(tmp_path, capsys):
    """A few NVE steps from a saved checkpoint; frame averaging keeps L to rounding."""
    import torch

    from benchmarks.transip_md import run as run_md
    from mlpot import save_model
    from mlpot.models import TransIPPotential

    model = TransIPPotential(["H", "C", "N", "O"], dim=16, heads=2, num_layers=1)
    path = save_model(model, tmp_path / "transip.pt")
    plain, framed = run_md(  # ASE's geometry: a random model has no minimum to relax to
        model_path=str(path), molecule="H2O", time_ps=0.005, timestep=0.5, every=2,
        json_out=str(tmp_path / "nve.json"), series=str(tmp_path / "nve"),
        relax_fmax=None, equilibrate_ps=0.0,
    )
    assert not plain.frame_averaging and framed.frame_averaging
    assert framed.angular_momentum_change < 1e-10 * max(framed.angular_momentum, 1.0)
    assert torch.isfinite(torch.tensor(plain.energy_drift))
    assert "4 (FA)" in capsys.readouterr().out
    import json

    saved = json.loads((tmp_path / "nve.json").read_text())
    assert saved["steps"] == 10 and [r["frame_averaging"] for r in saved["runs"]] == [
        False, True]
    import csv

    for name, result in (("plain", plain), ("fa", framed)):
        rows = list(csv.DictReader((tmp_path / f"nve-{name}.csv").open()))
        assert [float(r["time_ps"]) for r in rows] == pytest.approx(
            [0.001 * k for k in range(6)])  # every 2 of 10 steps of 0.5 fs
        excursion = max(abs(float(r["conserved_dE_eV_per_atom"])) for r in rows)
        assert excursion == pytest.approx(result.energy_excursion, rel=1e-5, abs=1e-12)
        assert float(rows[0]["min_distance_A"]) == pytest.approx(0.9686, abs=1e-3)  # O-H
        assert all(float(r["max_force_eV_A"]) > 0 for r in rows)


def _lj_water():
    """H2O under a Lennard-Jones potential (σ = 1 Å): its minimum is the equilateral
    triangle with every side 2^(1/6) σ (inside the switch onset, 1.98 Å)."""
    import ase.build

    from mlpot.models import LennardJones

    return LennardJones(["H", "O"], epsilon=0.1, sigma=1.0, cutoff=3.0).double(), \
        ase.build.molecule("H2O")


def test_prepare_start_relaxes_to_the_minimum():
    import torch

    from benchmarks.transip_md import prepare_start

    model, atoms = _lj_water()
    state, start = prepare_start(model, atoms, 300.0, 0.5, relax_fmax=1e-4,
                                 equilibrate_ps=0.0)
    sides = torch.pdist(state.positions)
    torch.testing.assert_close(sides, torch.full_like(sides, 2 ** (1 / 6)), atol=1e-4, rtol=0)
    assert start.relaxed and start.relax_steps > 0 and start.relax_fmax < 1e-4
    e_ase = float(model(state.graph.replace(
        positions=torch.as_tensor(atoms.positions))).energy[0])
    assert start.relax_energy_drop == pytest.approx((e_ase - (-3 * 0.1)) / 3, rel=1e-6)
    assert float(state.temperature()[0]) == pytest.approx(300.0)  # exact MB rescale
    assert float((state.momenta.sum(0)).abs().max()) < 1e-12
    assert "relaxed in" in start.describe()


def test_prepare_start_equilibrates_into_a_plain_state():
    import torch

    from benchmarks.transip_md import prepare_start
    from mlpot.md import MDState

    model, atoms = _lj_water()
    relaxed, _ = prepare_start(model, atoms, 300.0, 0.5, relax_fmax=1e-4, equilibrate_ps=0.0)
    state, start = prepare_start(model, atoms, 300.0, 0.5, relax_fmax=1e-4,
                                 equilibrate_ps=0.05)
    assert type(state) is MDState and state.step == 0 and state.time == 0.0
    assert float((state.positions - relaxed.positions).abs().max()) > 1e-3  # it moved
    assert float((state.momenta.sum(0)).abs().max()) < 1e-12
    assert start.temperature == pytest.approx(float(state.temperature()[0]))
    torch.testing.assert_close(state.forces, model(state.graph).forces)  # forces current


def test_series_of_a_killed_run_is_kept_as_partial(tmp_path):
    """Rows reach the .partial file as they are sampled; only a finished run is renamed."""
    import csv

    from benchmarks.transip_md import Sample, SeriesWriter

    def at(t: float, e: float) -> Sample:
        return Sample(t, e, e, 300.0, np.zeros(3), 1.0, 0.5)

    writer = SeriesWriter(tmp_path / "run.csv", atoms=4)
    writer.write(at(0.0, -10.0))
    writer.write(at(0.01, -9.6))
    partial = tmp_path / "run.csv.partial"
    assert not (tmp_path / "run.csv").exists()
    rows = list(csv.DictReader(partial.open()))  # a kill here leaves these rows
    assert [float(r["conserved_dE_eV_per_atom"]) for r in rows] == pytest.approx([0.0, 0.1])
    writer.close()
    assert not partial.exists() and len((tmp_path / "run.csv").read_text().splitlines()) == 3
