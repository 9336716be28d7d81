"""``evaluate`` / ``mlpot eval``: errors by class and element, equivariance, parity plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from train_helpers import TINY_MODEL
from typer.testing import CliRunner

import mlpot
from mlpot.cli.main import app
from mlpot.datasets import read
from mlpot.models import EquivariantPotential, LennardJones
from mlpot.train.evaluate import equivariance_error, evaluate


class _Tilted(LennardJones):
    """Lennard-Jones plus a field along x: not rotation invariant (a mutant model)."""

    def atomic_energies(self, graph, edge_vectors, species):
        return super().atomic_energies(graph, edge_vectors, species) + 0.05 * graph.positions[:, 0]


def test_errors_match_a_direct_computation(cu_store):
    model = LennardJones(["Cu"], epsilon=0.4, sigma=2.3, cutoff=5.0, onset=4.0)
    report = evaluate(model, cu_store, batch_size=5, rotations=0)
    structures = list(read(cu_store))
    de, df, ds = [], [], []
    for atoms in structures:
        g = mlpot.AtomicGraph.from_atoms(atoms, dtype=torch.float64)
        out = model.double()(g, compute_stress=True)
        de.append(abs(float(out.energy[0]) - atoms.get_potential_energy()) / len(atoms))
        df.append(np.abs(out.forces.numpy() - atoms.get_forces()).ravel())
        ds.append(np.abs(out.stress[0].numpy() - g.stress[0].numpy()).ravel())
    assert report.overall.structures == len(structures)
    assert report.overall.energy_mae == pytest.approx(np.mean(de), rel=1e-5)
    assert report.overall.forces_mae == pytest.approx(np.concatenate(df).mean(), rel=1e-5)
    assert report.overall.stress_mae == pytest.approx(np.concatenate(ds).mean(), rel=1e-5)
    assert set(report.by_class) == {a.info["data_id"] for a in structures}
    assert sum(s.structures for s in report.by_class.values()) == len(structures)
    assert list(report.element_force_mae) == ["Cu"]
    assert report.element_force_mae["Cu"] == pytest.approx(report.overall.forces_mae)


def test_zero_rotation_structures_skip_the_equivariance_error(cu_store):
    model = LennardJones(["Cu"], epsilon=0.4, sigma=2.3, cutoff=5.0, onset=4.0)
    report = evaluate(model, cu_store, batch_size=5, rotation_structures=0)
    assert report.equivariance is None and report.overall.structures > 0


def test_equivariance_error_separates_invariant_and_tilted_models(cu_store):
    structures = list(read(cu_store))[:3]
    rng = np.random.default_rng(0)
    lj = LennardJones(["Cu"], epsilon=0.4, sigma=2.3, cutoff=5.0, onset=4.0)
    exact = equivariance_error(lj, structures, 3, rng)
    assert exact.forces_max < 1e-12 and exact.energy_max < 1e-12
    tilted = _Tilted(["Cu"], epsilon=0.4, sigma=2.3, cutoff=5.0, onset=4.0)
    broken = equivariance_error(tilted, structures, 3, rng)
    assert broken.forces_mean > 1e-3 and broken.energy_mean > 1e-6
    grid = EquivariantPotential(["Cu"], **{**TINY_MODEL, "grid_oversample": 4})
    err = equivariance_error(grid, structures, 2, rng)
    assert err.forces_max < 1e-4 and err.dtype == "float64"


def test_cli_eval_writes_table_json_and_parity(tmp_path, cu_store):
    model = LennardJones(["Cu"], epsilon=0.4, sigma=2.3, cutoff=5.0, onset=4.0)
    path = mlpot.save_model(model, tmp_path / "lj.pt")
    result = CliRunner().invoke(
        app,
        [
            "eval",
            str(path),
            str(cu_store),
            "--parity",
            str(tmp_path / "p.png"),
            "--json",
            str(tmp_path / "r.json"),
            "--rotations",
            "2",
            "--rotation-structures",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "F MAE" in result.output and "equivariance" in result.output
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["overall"]["structures"] == 24
    assert report["equivariance"]["rotations"] == 2


def test_cli_eval_bad_inputs(tmp_path, cu_store):
    runner = CliRunner()
    res = runner.invoke(app, ["eval", "no-such-model", str(cu_store)])
    assert res.exit_code == 1 and "no checkpoint file or shipped model" in res.output
    model = LennardJones(["Ar"])
    path = mlpot.save_model(model, tmp_path / "ar.pt")
    res = runner.invoke(app, ["eval", str(path), str(cu_store), "--rotations", "0"])
    assert res.exit_code == 1 and "element Cu" in res.output
