"""``equivariance:`` modes of ``mlpot train``: config checks, augmentation, contrastive, resume."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import ase.build
import ase.io
import numpy as np
import pytest
import torch
import yaml
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.checkpoint import load_training_state
from mlpot.train.config import ConfigError, parse_config
from mlpot.train.distributed import World
from mlpot.train.trainer import PotentialRun, _device, fit, latest_checkpoint

TINY_TRANSIP = {
    "dim": 8,
    "heads": 2,
    "num_layers": 1,
    "num_radial": 4,
    "head_hidden": 8,
    "cutoff": 3.0,
}


@pytest.fixture(scope="module")
def molecules(tmp_path_factory) -> Path:
    """8 rattled small molecules (H, C, N, O) labelled with EMT, as extxyz."""
    rng = np.random.default_rng(0)
    frames = []
    for k, name in enumerate(["H2O", "NH3", "CH4", "CO2", "H2O", "NH3", "CH4", "CO2"]):
        atoms = ase.build.molecule(name)
        atoms.rattle(0.05, seed=k)
        atoms.positions += rng.normal(size=3)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        frames.append(atoms)
    path = tmp_path_factory.mktemp("mol") / "mol.extxyz"
    ase.io.write(path, frames)
    return path


def _config(
    run_dir: Path, data: Path, mode: str, kind: str = "TransIPPotential", invariant=False, **extra
):
    params = dict(TINY_TRANSIP, frame_averaging=invariant) if kind == "TransIPPotential" else {}
    raw = {
        "run_dir": str(run_dir),
        "data": {"train": [str(data)], "batch_size": 4, "valid_fraction": 0.0},
        "model": {"kind": kind, "params": params, "scale": 1.0},
        "loss": {"energy": 1.0, "forces": 1.0, "stress": 0.0},
        "optimizer": {"lr": 1e-2, "ema_decay": None, "schedule": "constant"},
        "train": {"epochs": 1, "dtype": "float64", "seed": 0, "threads": 1, "device": "cpu"},
        "log": {"progress": False, "tensorboard": False},
        "equivariance": {"mode": mode, "weight": 1.0},
    }
    for key, value in extra.items():
        raw.setdefault(key, {}).update(value)
    return raw


def test_config_errors_name_the_key(tmp_path, molecules):
    with pytest.raises(ConfigError, match=r"equivariance\.mode"):
        parse_config(_config(tmp_path, molecules, "rotate"))
    with pytest.raises(ConfigError, match=r"equivariance\.temperature"):
        parse_config(_config(tmp_path, molecules, "contrastive", equivariance={"temperature": 0}))
    with pytest.raises(ConfigError, match=r"equivariance\.level"):
        parse_config(_config(tmp_path, molecules, "contrastive", equivariance={"level": "bond"}))
    with pytest.raises(ConfigError, match=r"equivariance\.max_anchors"):
        parse_config(_config(tmp_path, molecules, "contrastive", equivariance={"max_anchors": 1}))
    with pytest.raises(ConfigError, match=r"equivariance\.tau: unknown key"):
        parse_config(_config(tmp_path, molecules, "contrastive", equivariance={"tau": 1.0}))
    with pytest.raises(ConfigError, match=r"equivariance\.augment: false is only for mode"):
        parse_config(_config(tmp_path, molecules, "augment", equivariance={"augment": False}))
    with pytest.raises(ConfigError, match="contrastive needs a model with embeddings"):
        parse_config(_config(tmp_path, molecules, "contrastive", kind="LennardJones"))
    parse_config(_config(tmp_path, molecules, "augment", kind="LennardJones"))  # fine


def _first_batch(run: PotentialRun):
    batches = run._batches(0)
    return next(run._loader(batches, 0))[1]


def test_augment_rotates_batch_and_labels(tmp_path, molecules):
    """The augmented batch differs from the raw one, its labels turn with it, and an
    exactly invariant model (frame-averaged TransIP) sees the same loss either way."""
    cfg = parse_config(_config(tmp_path / "a", molecules, "augment", invariant=True))
    run = PotentialRun(cfg, World(), _device("cpu"), False)
    graph = _first_batch(run)
    rotated = run.equivariance.batch(graph, run.equivariance.generator(0))
    assert (rotated.positions - graph.positions).abs().max() > 0.1
    # the same rotation (recovered per system) maps positions and forces alike
    for b in range(graph.num_systems):
        mask = graph.system_index == b
        x = graph.positions[mask] - graph.positions[mask].mean(0)
        y = rotated.positions[mask] - rotated.positions[mask].mean(0)
        u, _, vt = torch.linalg.svd(y.T @ x)
        rot = u @ vt
        torch.testing.assert_close(x @ rot.T, y, atol=1e-10, rtol=0)
        torch.testing.assert_close(graph.forces[mask] @ rot.T, rotated.forces[mask])
    state = [run.equivariance.generator(s).get_state() for s in (5, 5, 6)]
    assert torch.equal(state[0], state[1]) and not torch.equal(state[0], state[2])

    losses = {}
    for mode in ("none", "augment"):
        cfg = parse_config(_config(tmp_path / mode, molecules, mode, invariant=True))
        r = PotentialRun(cfg, World(), _device("cpu"), False)
        losses[mode] = r._step(_first_batch(r))
    torch.testing.assert_close(
        losses["augment"], losses["none"], atol=1e-10, rtol=1e-10, equal_nan=True
    )


def test_augment_changes_a_non_invariant_models_loss(tmp_path, molecules):
    """TransIP is not invariant, so its augmented first-step loss differs."""
    losses = {}
    for mode in ("none", "augment"):
        cfg = parse_config(_config(tmp_path / mode, molecules, mode))
        r = PotentialRun(cfg, World(), _device("cpu"), False)
        losses[mode] = float(r._step(_first_batch(r))[0])
    assert abs(losses["augment"] - losses["none"]) > 1e-6 * abs(losses["none"])


@pytest.mark.parametrize("level", ["system", "atoms"])
def test_contrastive_trains_the_transform(tmp_path, molecules, level):
    cfg = parse_config(
        _config(
            tmp_path / "c",
            molecules,
            "contrastive",
            equivariance={"level": level, "weight": 0.5},
        )
    )
    run = PotentialRun(cfg, World(), _device("cpu"), False)
    before = [p.detach().clone() for p in run.equivariance.parameters()]
    assert before and all(any(p is q for q in run.params) for p in run.equivariance.parameters())
    graph = _first_batch(run)
    plain = parse_config(_config(tmp_path / "a", molecules, "augment"))
    baseline_terms = PotentialRun(plain, World(), _device("cpu"), False)._step(graph)
    terms = run._step(graph)
    baseline, loss = float(baseline_terms[0]), float(terms[0])
    assert loss > baseline + 0.25  # λ = 0.5 × the InfoNCE term (≈ log of candidates) is added
    # the logged contrastive term is what was added, before its weight; NaN without one
    assert torch.isnan(baseline_terms[4])
    torch.testing.assert_close(loss - baseline, cfg.equivariance.weight * float(terms[4]))
    after = [p.detach() for p in run.equivariance.parameters()]
    assert max(float((a - b).abs().max()) for a, b in zip(after, before, strict=True)) > 1e-4
    # the deployed model carries no transform
    assert not any("net." in k for k in run._deployed().state_dict())


def test_contrastive_without_augmentation_keeps_the_batch(tmp_path, molecules):
    """``augment: false``: the energy/force loss sees the batch as given (its part of the
    loss equals mode ``none``'s on the same batch and weights), the contrastive term is
    still added. Mutant: ``augment`` ignored (batch rotated) → the energy/force part
    equals ``augment``'s instead, the first assertion fails."""
    raw = _config(tmp_path / "c", molecules, "contrastive", equivariance={"augment": False})
    run = PotentialRun(parse_config(raw), World(), _device("cpu"), False)
    graph = _first_batch(run)
    assert run.equivariance.batch(graph, run.equivariance.generator(0)) is graph
    terms = run._step(graph)
    contrastive = float(terms[4])
    assert contrastive > 0.5  # InfoNCE over 3 candidates per structure, log 3 ≈ 1.1
    reference = {}
    for mode in ("none", "augment"):
        r = PotentialRun(parse_config(_config(tmp_path / mode, molecules, mode)), World(),
                         _device("cpu"), False)
        reference[mode] = float(r._step(graph)[0])
    energy_forces = float(terms[0]) - contrastive  # weight 1.0
    assert energy_forces == pytest.approx(reference["none"], rel=1e-10)
    assert abs(energy_forces - reference["augment"]) > 1e-6 * reference["none"]


def test_contrastive_resume_is_exact(tmp_path, molecules):
    """2 epochs (2 steps each), checkpoint every step; resume from step 1 and compare."""
    extra = {"train": {"epochs": 2}, "checkpoint": {"every_steps": 1, "keep_last": 10}}
    raw = _config(tmp_path / "full", molecules, "contrastive", **extra)
    full = fit(parse_config(raw))
    with open(tmp_path / "full" / "metrics.csv", newline="") as fh:
        logged = [float(row["train_contrastive"]) for row in csv.DictReader(fh)]
    assert len(logged) == 2 and all(math.log(3) - 1 < c < 20 for c in logged), logged
    mid = tmp_path / "full" / "checkpoints" / "step-00000001.pt"
    assert load_training_state(mid)["equivariance"] is not None
    resumed_dir = tmp_path / "resumed"
    (resumed_dir / "checkpoints").mkdir(parents=True)
    shutil.copy(mid, resumed_dir / "checkpoints" / mid.name)
    raw = _config(resumed_dir, molecules, "contrastive", **extra)
    resumed = fit(parse_config(raw), resume=True)
    assert resumed.steps == full.steps == 4
    a, b = full.model.state_dict(), resumed.model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)
    state_a = load_training_state(latest_checkpoint(tmp_path / "full"))["equivariance"]
    state_b = load_training_state(latest_checkpoint(resumed_dir))["equivariance"]
    for key in state_a:
        torch.testing.assert_close(state_a[key], state_b[key], rtol=0, atol=1e-6, msg=key)


def test_example_config_is_valid(tmp_path, molecules):
    raw = yaml.safe_load(
        (Path(__file__).parents[2] / "examples" / "train_transip.yaml").read_text()
    )
    raw["data"]["train"], raw["run_dir"] = str(molecules), str(tmp_path)
    cfg = parse_config(raw)
    assert cfg.equivariance.mode == "contrastive" and cfg.model.kind == "TransIPPotential"
