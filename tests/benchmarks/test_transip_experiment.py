"""The TransIP experiment end to end at a tiny size: xTB labels → .aselmdb → fit → table."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from benchmarks import transip_experiment as exp
from mlpot.checkpoint import load_model
from mlpot.datasets import OMol25Reader, read
from mlpot.train.evaluate import evaluate

pytest.importorskip("tblite")



def _tiny(tmp_path, **changes) -> exp.ExperimentConfig:
    cfg = exp.ExperimentConfig(
        cache=tmp_path / "labels", out=tmp_path / "out", sizes=(6, 12), valid=4, test=6,
        steps=3, batch_size=4, lr=1e-3, warmup=0,
        transip={"dim": 16, "heads": 2, "num_layers": 1, "head_hidden": 8,
                 "neighbour_density": True, "neighbour_sum": True, "min_wavelength": 2.0,
                 "max_wavelength": 40.0, "learned_rotary": True,
                 "angular_density": True},  # the default's options
        equivariant={"channels": 4, "lmax": 1, "num_layers": 1, "avg_num_neighbors": 4.0},
        rotation_structures=2, speed_sizes=())
    return exp.ExperimentConfig(**{**cfg.__dict__, **changes})


def test_labels_are_cached_nested_and_disjoint_from_validation(tmp_path, monkeypatch):
    cfg = _tiny(tmp_path)
    files = exp.label_files(cfg)
    pool = list(read(next(cfg.cache.glob("pool-*.aselmdb"))))
    assert len(pool) == 12 + 4
    small, large = (list(OMol25Reader(files.train[n])) for n in (6, 12))
    valid, test = list(read(files.valid)), list(read(files.test))
    assert (len(small), len(large), len(valid), len(test)) == (6, 12, 4, 6)
    key = lambda a: a.positions.tobytes()  # noqa: E731
    assert [key(a) for a in small] == [key(a) for a in large[:6]]  # nested sizes
    assert not {key(a) for a in large} & {key(a) for a in valid}
    assert not {key(a) for a in pool} & {key(a) for a in test}  # another seed
    for atoms in large + test:
        assert {"charge", "spin"} <= set(atoms.info)
    # a second call reuses the shards: no xTB call at all
    import mlpot.datasets.reference.xtb as xtb

    def refuse(*args, **kwargs):
        raise AssertionError("labels regenerated although cached")

    monkeypatch.setattr(xtb, "xtb_molecules", refuse)
    again = exp.label_files(cfg)
    assert np.array_equal(next(iter(read(again.test))).positions, test[0].positions)


def test_training_subset_draws_distinct_training_structures(tmp_path):
    cfg = _tiny(tmp_path)
    path = exp.label_files(cfg).train[12]
    everything = [a.positions.tobytes() for a in read(path)]
    five = [a.positions.tobytes() for a in exp.training_subset(path, 5, seed=3)]
    assert len(set(five)) == 5 and set(five) <= set(everything)
    assert five == [a.positions.tobytes() for a in exp.training_subset(path, 5, seed=3)]
    assert five != [a.positions.tobytes() for a in exp.training_subset(path, 5, seed=4)]
    assert len(exp.training_subset(path, 100, seed=3)) == len(everything)  # capped
    assert exp.training_subset(path, 0, seed=3) == []


def test_every_variant_gets_the_same_budget_and_data(tmp_path):
    cfg = _tiny(tmp_path)
    files = exp.label_files(cfg)
    configs = {v: exp.training_config(cfg, v, 12, files, tmp_path / v) for v in exp.VARIANTS}
    for v, c in configs.items():
        assert c["train"]["max_steps"] == 3 and c["train"]["seed"] == 0
        assert c["data"] == configs["none"]["data"]
        assert c["optimizer"] == configs["none"]["optimizer"]
        mode = c["equivariance"]["mode"]
        assert mode == ("none" if v == "equivariant" else v)
    assert configs["equivariant"]["model"]["kind"] == "EquivariantPotential"
    # a training seed changes initialisation and batch order only, not the labels
    other = dataclasses.replace(cfg, train_seed=5)
    assert exp.label_files(other) == files
    assert exp.training_config(other, "augment", 12, files, tmp_path / "a")["train"]["seed"] == 5


def test_experiment_end_to_end(tmp_path, capsys):
    cfg = _tiny(tmp_path)
    rows = exp.run(cfg)
    assert [(r.variant, r.size) for r in rows] == [
        (v, n) for n in (6, 12) for v in exp.VARIANTS]
    for r in rows:
        assert r.steps == 3
        assert all(math.isfinite(x) and x > 0 for x in (r.energy_mae, r.forces_mae))
    rot = {r.variant: r.equivariance for r in rows if r.size == 12}
    assert rot["equivariant"] < 1e-8  # exact by construction
    assert rot["none"] > 1e-4  # learned, not built in
    for r in rows:  # averaging over rotations changes nothing for the equivariant model
        assert math.isfinite(r.forces_mae_averaged)
        if r.variant == "equivariant":
            assert r.forces_mae_averaged == pytest.approx(r.forces_mae, rel=1e-4)
    # the training-set error is the best model's error on the drawn training subset
    files = exp.label_files(cfg)
    seen = exp.training_subset(files.train[12], cfg.train_error_structures, cfg.seed)
    for r in rows:
        if r.size == 12 and r.variant in ("augment", "equivariant"):
            model = load_model(cfg.out / f"{r.variant}-12" / "best.pt")
            expected = evaluate(model, seen, rotation_structures=0).overall.forces_mae
            assert r.forces_mae_train == pytest.approx(1e3 * expected, rel=1e-9)
            assert r.forces_mae_train != pytest.approx(r.forces_mae, rel=1e-6)
    saved = json.loads((cfg.out / "results.json").read_text())
    assert len(saved["rows"]) == 8 and saved["parameters"]["transip"] > 0
    assert saved["labels"]["test"] == exp.label_fingerprint(read(files.test))
    assert saved["labels"]["train"] == exp.label_fingerprint(read(files.train[12]))
    assert saved["versions"]["torch"] == torch.__version__
    assert all(math.isfinite(row["forces_mae_train"]) for row in saved["rows"])
    assert (cfg.out / "results.csv").read_text().count("\n") == 9
    out = capsys.readouterr().out
    assert "contrastive vs augment" in out and "equivariant force MAE" in out


def test_parallel_workers_give_the_sequential_table(tmp_path):
    cfg = _tiny(tmp_path, sizes=(6,), variants=("augment", "equivariant"))
    sequential = exp.run(cfg)
    parallel = exp.run(dataclasses.replace(cfg, out=tmp_path / "parallel", workers=2))
    assert [(r.variant, r.size) for r in parallel] == [(r.variant, r.size) for r in sequential]
    for a, b in zip(parallel, sequential, strict=True):
        assert (a.energy_mae, a.forces_mae, a.equivariance) == (
            b.energy_mae, b.forces_mae, b.equivariance)
    with pytest.raises(ValueError, match="workers"):
        exp.run(dataclasses.replace(cfg, workers=0))


def test_label_fingerprint_sees_any_change_of_a_label(tmp_path):
    import ase.build
    from ase.calculators.singlepoint import SinglePointCalculator

    def labelled(force: float, charge: int = 0):
        atoms = ase.build.molecule("H2O")
        forces = np.zeros((3, 3))
        forces[1, 2] = force
        atoms.calc = SinglePointCalculator(atoms, energy=-14.2, forces=forces)
        atoms.info.update(charge=charge, spin=1)
        return atoms

    ref = exp.label_fingerprint([labelled(0.5)])
    assert exp.label_fingerprint([labelled(0.5)]) == ref and len(ref) == 12
    assert exp.label_fingerprint([labelled(0.5 + 1e-12)]) != ref
    assert exp.label_fingerprint([labelled(0.5, charge=1)]) != ref
    assert exp.label_fingerprint([labelled(0.5)] * 2) != ref


def test_random_orientation_turns_positions_and_forces_together():
    import ase.build
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = ase.build.molecule("CH3CH2OH")
    forces = np.random.default_rng(0).normal(size=(len(atoms), 3))
    atoms.calc = SinglePointCalculator(atoms, energy=-3.5, forces=forces)
    out = next(exp.randomly_oriented([atoms], seed=3))
    rot, *_ = np.linalg.lstsq(atoms.positions - atoms.positions.mean(0),
                              out.positions - out.positions.mean(0), rcond=None)
    assert np.allclose(rot.T @ rot, np.eye(3), atol=1e-10)  # a rotation ...
    assert np.isclose(np.linalg.det(rot), 1.0) and not np.allclose(rot, np.eye(3))
    np.testing.assert_allclose(out.get_forces(), forces @ rot, atol=1e-10)  # ... of both
    assert out.get_potential_energy() == -3.5


class _LabelPlus(torch.nn.Module):
    """A fake potential whose forces are the (rotated) labels scaled by ``factor`` plus a
    constant lab-frame vector ``offset``: equivariant when ``offset`` is zero."""

    def __init__(self, factor: float, offset: tuple[float, float, float]) -> None:
        super().__init__()
        self.register_buffer("e0", torch.zeros(1, dtype=torch.float64))
        self.factor, self.offset = factor, torch.tensor(offset, dtype=torch.float64)

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def forward(self, graph):
        from types import SimpleNamespace

        return SimpleNamespace(forces=self.factor * graph.forces + self.offset)


def _labelled_molecules():
    import ase.build
    from ase.calculators.singlepoint import SinglePointCalculator

    rng = np.random.default_rng(1)
    out = []
    for name in ("CH3CH2OH", "H2O", "C6H6"):
        atoms = ase.build.molecule(name)
        atoms.calc = SinglePointCalculator(atoms, energy=-1.0,
                                           forces=rng.normal(size=(len(atoms), 3)))
        out.append(atoms)
    return out


def test_rotation_averaging_keeps_the_error_of_an_equivariant_model():
    structures = _labelled_molecules()
    plain = np.mean(np.concatenate([np.abs(0.1 * a.get_forces()).ravel() for a in structures]))
    averaged = exp.rotation_averaged_force_mae(_LabelPlus(1.1, (0, 0, 0)), structures, 5)
    assert averaged == pytest.approx(plain, rel=1e-12)


def test_rotation_averaging_removes_the_orientation_dependent_error():
    structures = _labelled_molecules()
    model = _LabelPlus(1.0, (0.3, -0.2, 0.5))  # plain MAE: the offset, 1/3 eV/Å
    one = exp.rotation_averaged_force_mae(model, structures, 1)
    assert one == pytest.approx(1 / 3, rel=0.3)  # one random turn of the offset
    many = exp.rotation_averaged_force_mae(model, structures, 400)
    assert many < 0.05  # the mean of R^T c over rotations is zero
    with pytest.raises(ValueError, match="rotations"):
        exp.rotation_averaged_force_mae(model, structures, 0)
