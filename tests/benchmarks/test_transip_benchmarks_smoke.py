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
    plain, framed = run_md(
        model_path=str(path), molecule="H2O", time_ps=0.005, timestep=0.5, every=2,
        json_out=str(tmp_path / "nve.json"), series=str(tmp_path / "nve"),
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
