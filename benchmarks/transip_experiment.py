"""TransIP equivariance experiment on an OMol25 stand-in (issue 15, acceptance 2 and 3).

``python -m benchmarks transip-experiment``. One command:

1. **Labels.** GFN2-xTB (tblite) energies and forces of small organic molecules, neutral,
   charged and open-shell (:func:`mlpot.datasets.reference.xtb.xtb_molecules`): a
   training pool (seed ``seed``) whose first ``max(sizes)`` structures are the training
   sets (nested: the first 300 ⊂ the first 1000 ⊂ ...) and whose next ``valid``
   structures are the validation set (model selection and any tuning), and a test set
   generated with another seed (``seed + 1``: other geometries, other MD runs), used only
   for the final numbers. Every structure is turned by a random rotation (OMol25's
   structures have no common orientation; ASE's G2 geometries do). Each set is written
   as an ``.aselmdb`` shard in OMol25's layout
   (:func:`mlpot.datasets.omol25_writer.write_aselmdb`) and cached under
   ``cache``: a rerun with the same counts and seed does not call xTB again.
2. **Training.** Every variant (``contrastive``, ``augment``, ``none`` TransIP and the
   ``EquivariantPotential`` of similar parameter count) at every training-set size is
   trained by :func:`mlpot.train.fit` from the ``.aselmdb`` files (the OMol25 reader,
   ``mlpot train``'s data path) with the same steps, batch size, optimiser, seed and
   validation set. The checkpoint with the lowest validation loss is kept. Both
   architectures have per-system charge/spin reference energies
   (:class:`~mlpot.models.references.SystemReferences`, the models' default), fitted
   with E0 on each training set.
3. **Evaluation** on the test set with :func:`mlpot.train.evaluate.evaluate` (the numbers
   ``mlpot eval`` prints): energy MAE (meV/atom), force MAE (meV/Å) and the equivariance
   error, the mean relative change ‖F(Rx) − R F(x)‖/‖F(x)‖ of the forces under random
   rotations (float64). Also the force MAE of the rotation-averaged prediction
   (:func:`rotation_averaged_force_mae`): how much of a model's force error its remaining
   non-equivariance causes, i.e. the most that better learned symmetry could remove.
4. **Speed** (optional): :mod:`benchmarks.transip_speed`'s energy+forces table for the
   two architectures at the sizes trained here.

The table is printed and saved as ``results.json`` and ``results.csv`` in ``out``, with a
fingerprint of the labels (:func:`label_fingerprint`) and the versions of the packages
that made them: the generator is deterministic on one machine, but another tblite or
ASE release relaxes and samples other geometries, and so may another CPU with the same
releases (rounding differences grow along the MD runs), so numbers are comparable only
between runs whose fingerprints agree.

TransIP's configuration: ``dim`` 56, 4 heads, 3 blocks, the neighbour density and its
bond-angle power spectrum in the input tokens (``angular_density``), a sum over the
neighbours in every block (``neighbour_sum``), rotary wavelengths 2–40 Å and learned wave
vectors (``learned_rotary``); 122k parameters against the equivariant model's 95k
(``--transip-dim 48``: 93k). These options became the experiment's default after the
grids with them (README, "TransIP"), and since 2026-12-02 they are the class defaults of
:class:`~mlpot.models.TransIPPotential` too (at ``dim`` 64).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.metadata
import json
import math
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import ase
import numpy as np
import torch
from ase.calculators.singlepoint import SinglePointCalculator

from mlpot.checkpoint import load_model
from mlpot.datasets import open_reader, read
from mlpot.datasets.omol25_writer import write_aselmdb
from mlpot.graph import AtomicGraph, collate
from mlpot.models import EquivariantPotential, Potential, TransIPPotential
from mlpot.models.transip_equivariance import random_rotations, rotate_graph
from mlpot.train import fit, parse_config
from mlpot.train.evaluate import evaluate, random_rotation

SPECIES = ("H", "C", "N", "O", "F", "P", "S", "Cl")
VARIANTS = ("contrastive", "augment", "none", "equivariant")


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one experiment run uses (all variants share it).

    Attributes:
        cache: where the labelled ``.aselmdb`` shards are kept between runs.
        out: run folders and the result files.
        sizes: training-set sizes (structures).
        valid: validation structures (model selection, tuning).
        test: held-out test structures (another generation seed).
        steps: optimiser steps per training (the budget, equal for all variants).
        batch_size: structures per batch.
        lr: peak learning rate (cosine schedule, ``warmup`` linear warm-up steps).
        seed: labels use ``seed`` (train/valid) and ``seed + 1`` (test); also the model
            initialisation and batch order unless ``train_seed`` is given.
        train_seed: model initialisation and batch order only (None: ``seed``), to
            measure the spread between trainings on the same labels.
        variants: which of :data:`VARIANTS` to train.
        transip: TransIPPotential hyper-parameters.
        equivariant: EquivariantPotential hyper-parameters.
        equivariance: the ``equivariance:`` settings of the contrastive variant
            (``mode`` is set per variant; ``augment: False`` applies to ``contrastive``
            only: its energy/force loss then sees unrotated batches).
        rotation_structures: test structures the equivariance error is measured on
            (4 random rotations each).
        train_error_structures: training structures (a random subset drawn with ``seed``)
            on which the training-set force MAE is measured; 0 skips it. Next to the test
            error it tells underfitting (both high) from overfitting (a large gap).
        averaged_rotations: K of the rotation-averaged force MAE
            (:func:`rotation_averaged_force_mae`; 0 skips it).
        speed_sizes: molecule sizes of the speed table (empty: no table).
        threads: torch threads of training and timing (per worker).
        report_on: ``test`` (the experiment) or ``valid`` (a tuning pilot: the errors are
            measured on the validation set, the test set is not used).
        workers: trainings run at once, each in its own process (on a machine with
            N cores, ``workers * threads <= N``). Each training is deterministic
            given its config, so the table does not depend on ``workers``.
    """

    cache: Path = Path("runs/transip-experiment/labels")
    out: Path = Path("runs/transip-experiment")
    sizes: tuple[int, ...] = (300, 1000, 3000)
    valid: int = 100
    test: int = 200
    steps: int = 4000
    batch_size: int = 16
    lr: float = 2e-3
    warmup: int = 50
    seed: int = 0
    train_seed: int | None = None
    variants: tuple[str, ...] = VARIANTS
    transip: dict = field(
        default_factory=lambda: {"dim": 56, "heads": 4, "num_layers": 3, "head_hidden": 64,
                                 "neighbour_density": True, "neighbour_sum": True,
                                 "min_wavelength": 2.0, "max_wavelength": 40.0,
                                 "learned_rotary": True, "angular_density": True}
    )
    equivariant: dict = field(
        default_factory=lambda: {"channels": 48, "lmax": 2, "num_layers": 2,
                                 "avg_num_neighbors": "auto"}
    )
    equivariance: dict = field(
        default_factory=lambda: {"weight": 0.03, "temperature": 0.1, "rotation_negatives": 2,
                                 "variance_floor": 0.1, "augment": True}
    )
    rotation_structures: int = 16
    averaged_rotations: int = 32
    train_error_structures: int = 400
    speed_sizes: tuple[int, ...] = (20, 100, 500)
    threads: int = 1
    report_on: str = "test"
    workers: int = 1

    @property
    def training_seed(self) -> int:
        """The seed of initialisation and batch order: ``train_seed``, else ``seed``."""
        return self.seed if self.train_seed is None else self.train_seed


@dataclass(frozen=True)
class LabelFiles:
    """The cached ``.aselmdb`` shards: ``train[size]``, ``valid``, ``test``."""

    train: dict[int, Path]
    valid: Path
    test: Path


@dataclass(frozen=True)
class ResultRow:
    """Test-set errors of one trained model.

    Attributes:
        variant: ``contrastive``, ``augment``, ``none`` or ``equivariant``.
        size: training structures.
        parameters: trainable parameters of the deployed model.
        steps: optimiser steps done.
        energy_mae: meV/atom.
        forces_mae: meV/Å per component.
        equivariance: mean relative rotation error of the forces.
        forces_mae_averaged: meV/Å, force MAE of the prediction averaged over
            ``averaged_rotations`` random orientations of each structure
            (:func:`rotation_averaged_force_mae`; NaN when skipped).
        forces_mae_train: meV/Å, force MAE on ``train_error_structures`` random
            structures of the training set, as stored (NaN when skipped).
        train_seconds: wall time of the training.
    """

    variant: str
    size: int
    parameters: int
    steps: int
    energy_mae: float
    forces_mae: float
    equivariance: float
    forces_mae_averaged: float
    forces_mae_train: float
    train_seconds: float


def randomly_oriented(structures: Iterable[ase.Atoms], seed: int) -> Iterator[ase.Atoms]:
    """Each structure turned by its own uniformly random rotation (positions and force
    labels; the energy is unchanged).

    The generator builds molecules in ASE's G2 orientation; OMol25 structures come in
    arbitrary orientations, and a model without built-in symmetry must not be tested on
    data that share one frame.
    """
    rng = np.random.default_rng([seed, 7])
    for atoms in structures:
        rot = random_rotation(rng)
        out = atoms.copy()
        out.positions = atoms.positions @ rot.T
        out.calc = SinglePointCalculator(out, energy=atoms.get_potential_energy(),
                                         forces=atoms.get_forces() @ rot.T)
        yield out


def xtb_shard(path: Path, count: int, seed: int) -> list[ase.Atoms]:
    """``count`` xTB-labelled molecules of generation seed ``seed``, cached in ``path``.

    Generated (into a temporary packed store, then randomly oriented into an
    ``.aselmdb``) only when ``path`` does not exist yet; the structures always come
    back through the OMol25 reader.
    """
    if not path.is_file():
        from mlpot.datasets.reference.xtb import xtb_molecules

        tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.h5")
        start = time.perf_counter()
        try:
            result = xtb_molecules(tmp, count=count, seed=seed)
            write_aselmdb(path, randomly_oriented(read(tmp), seed))
        finally:
            tmp.unlink(missing_ok=True)
        print(f"  xTB labels: {result.structures} structures (seed {seed}) in "
              f"{time.perf_counter() - start:.0f} s, {result.kinds}, "
              f"{result.failed} failed, {result.rejected} rejected -> {path}")
    return list(read(path))


def label_fingerprint(structures: Iterable[ase.Atoms]) -> str:
    """First 12 hex digits of the SHA-256 of every structure's atomic numbers,
    positions, energy, forces, charge and spin (float64 bytes, in order): equal labels,
    equal fingerprint."""
    digest = hashlib.sha256()
    for atoms in structures:
        digest.update(np.asarray(atoms.numbers, dtype=np.int64).tobytes())
        digest.update(np.asarray(atoms.positions, dtype=np.float64).tobytes())
        digest.update(np.float64(atoms.get_potential_energy()).tobytes())
        digest.update(np.asarray(atoms.get_forces(), dtype=np.float64).tobytes())
        digest.update(np.array([atoms.info.get("charge", 0), atoms.info.get("spin", 1)],
                               dtype=np.float64).tobytes())
    return digest.hexdigest()[:12]


def package_versions(names: Iterable[str] = ("tblite", "ase", "numpy", "torch")
                     ) -> dict[str, str]:
    """Installed versions of ``names`` (``"not installed"`` where missing)."""
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def label_files(cfg: ExperimentConfig) -> LabelFiles:
    """Generate (or find) the pool and test shards; write the per-size training shards."""
    cfg.cache.mkdir(parents=True, exist_ok=True)
    largest = max(cfg.sizes)
    prefix = f"seed{cfg.seed}-n{largest + cfg.valid}"
    pool = xtb_shard(cfg.cache / f"pool-{prefix}.aselmdb", largest + cfg.valid, cfg.seed)
    test = cfg.cache / f"test-seed{cfg.seed + 1}-n{cfg.test}.aselmdb"
    xtb_shard(test, cfg.test, cfg.seed + 1)
    train = {}
    for size in cfg.sizes:
        train[size] = cfg.cache / f"train-{prefix}-first{size}.aselmdb"
        if not train[size].is_file():
            write_aselmdb(train[size], pool[:size])
    valid = cfg.cache / f"valid-{prefix}-last{cfg.valid}.aselmdb"
    if not valid.is_file():
        write_aselmdb(valid, pool[largest:])
    return LabelFiles(train, valid, test)


def training_config(cfg: ExperimentConfig, variant: str, size: int, files: LabelFiles,
                    run_dir: Path) -> dict:
    """The ``mlpot train`` config (as a raw dict) of one variant at one size."""
    per_epoch = math.ceil(size / cfg.batch_size)
    epochs = math.ceil(cfg.steps / per_epoch)
    transip = variant != "equivariant"
    equivariance = {**cfg.equivariance, "mode": variant if transip else "none"}
    if equivariance["mode"] != "contrastive":  # ``augment: false`` is contrastive's option
        equivariance.pop("augment", None)
    return {
        "run_dir": str(run_dir),
        "data": {"train": [str(files.train[size])], "valid": [str(files.valid)],
                 "batch_size": cfg.batch_size},
        "model": {"kind": "TransIPPotential" if transip else "EquivariantPotential",
                  "species": list(SPECIES),
                  "params": dict(cfg.transip if transip else cfg.equivariant)},
        "loss": {"energy": 1.0, "forces": 10.0},
        "optimizer": {"lr": cfg.lr, "warmup_steps": cfg.warmup, "schedule": "cosine",
                      "ema_decay": 0.99},
        "train": {"epochs": epochs, "max_steps": cfg.steps, "dtype": "float32",
                  "device": "cpu", "seed": cfg.training_seed, "threads": cfg.threads,
                  "valid_every": max(1, epochs // 5)},
        "checkpoint": {"every_epochs": epochs, "keep_last": 1},
        "log": {"progress": False, "tensorboard": False},
        "equivariance": equivariance,
    }


def rotation_averaged_force_mae(model: Potential, structures: Iterable[ase.Atoms],
                                rotations: int, seed: int = 0) -> float:
    """Force MAE (eV/Å per component) of the symmetrised prediction
    F̄(x) = (1/K) Σ_k R_kᵀ F(R_k x) over K = ``rotations`` uniformly random rotations per
    structure (fresh ones for each, from ``seed``), in the model's dtype.

    For an exactly equivariant model F̄ = F. For a model that learned symmetry only
    approximately, the drop from the plain force MAE to this one is the part of its error
    that its remaining non-equivariance causes (the orientation-dependent part, averaged
    out); what is left is the error of the symmetric function it learned. A finite K
    leaves 1/K of the orientation-dependent variance in.
    """
    if rotations < 1:
        raise ValueError(f"rotations must be >= 1, got {rotations}")
    generator = torch.Generator().manual_seed(seed)
    model = model.eval()
    total, count = 0.0, 0
    for atoms in structures:
        graph = AtomicGraph.from_atoms(atoms, dtype=model.dtype)
        turns = random_rotations(rotations, generator, model.dtype)
        copies = rotate_graph(collate([graph] * rotations), turns)
        forces = model(copies.to(model.e0.device)).forces.detach().cpu()
        back = torch.einsum("knj,kji->kni", forces.unflatten(0, (rotations, -1)), turns)
        error = back.mean(0).double() - torch.as_tensor(atoms.get_forces())
        total += float(error.abs().sum())
        count += error.numel()
    return total / count


def training_subset(path: Path, count: int, seed: int) -> list[ase.Atoms]:
    """``count`` structures of the training file drawn at random without replacement
    (all of them when it holds fewer; none when ``count`` is 0). Only the drawn records
    are read (random access)."""
    if count <= 0:
        return []
    reader = open_reader(path)
    picks = np.random.default_rng(seed).permutation(len(reader))[:count]
    return [reader[int(i)] for i in sorted(picks)]


def train_and_test(cfg: ExperimentConfig, variant: str, size: int, files: LabelFiles,
                   test: list[ase.Atoms], seen: list[ase.Atoms]) -> ResultRow:
    """Train one variant at one size and measure it on the test set, and on ``seen``
    (structures of its training set; empty: the training-set error is NaN)."""
    run_dir = cfg.out / f"{variant}-{size}"
    config = parse_config(training_config(cfg, variant, size, files, run_dir),
                          f"{variant}-{size}")
    start = time.perf_counter()
    result = fit(config)
    seconds = time.perf_counter() - start
    model = load_model(result.best)
    report = evaluate(model, test, rotation_structures=cfg.rotation_structures, seed=cfg.seed)
    averaged = (rotation_averaged_force_mae(model, test, cfg.averaged_rotations, cfg.seed)
                if cfg.averaged_rotations else float("nan"))
    on_train = evaluate(model, seen, rotation_structures=0).overall.forces_mae if seen else math.nan
    return ResultRow(
        variant=variant,
        size=size,
        parameters=sum(p.numel() for p in model.parameters()),
        steps=result.steps,
        energy_mae=1e3 * report.overall.energy_mae,
        forces_mae=1e3 * report.overall.forces_mae,
        equivariance=report.equivariance.forces_mean,
        forces_mae_averaged=1e3 * averaged,
        forces_mae_train=1e3 * on_train,
        train_seconds=seconds,
    )


def _train_grid(cfg: ExperimentConfig, files: LabelFiles,
                report_set: list[ase.Atoms]) -> Iterator[ResultRow]:
    """Every (size, variant) cell in grid order, ``cfg.workers`` trainings at a time
    (separate processes, started with ``spawn`` so no torch state is forked)."""
    cells = [(variant, size) for size in cfg.sizes for variant in cfg.variants]
    seen = {size: training_subset(files.train[size], cfg.train_error_structures, cfg.seed)
            for size in cfg.sizes}  # drawn once per size, shared by its variants
    if cfg.workers <= 1:
        for variant, size in cells:
            yield train_and_test(cfg, variant, size, files, report_set, seen[size])
        return
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(cfg.workers, mp_context=context) as pool:
        futures = [pool.submit(train_and_test, cfg, variant, size, files, report_set,
                               seen[size])
                   for variant, size in cells]
        for future in futures:
            yield future.result()


def parameter_counts(cfg: ExperimentConfig) -> dict[str, int]:
    """Parameters of the two architectures as configured (before training)."""
    equivariant = {k: v for k, v in cfg.equivariant.items() if v != "auto"}
    models = {"transip": TransIPPotential(list(SPECIES), **cfg.transip),
              "equivariant": EquivariantPotential(list(SPECIES), **equivariant)}
    return {k: sum(p.numel() for p in m.parameters()) for k, m in models.items()}


def print_table(rows: list[ResultRow]) -> None:
    print(f"{'variant':>12} {'train':>6} {'params':>8} {'steps':>6} {'E MAE meV/at':>13} "
          f"{'F MAE meV/A':>12} {'rot.-avg. F':>12} {'F on train':>11} {'rot. err F':>11} "
          f"{'train s':>8}")
    for r in rows:
        print(f"{r.variant:>12} {r.size:>6} {r.parameters:>8} {r.steps:>6} "
              f"{r.energy_mae:>13.2f} {r.forces_mae:>12.1f} {r.forces_mae_averaged:>12.1f} "
              f"{r.forces_mae_train:>11.1f} {r.equivariance:>11.2e} {r.train_seconds:>8.0f}")


def print_targets(rows: list[ResultRow]) -> None:
    """The issue's targets, from the rows (PASS/FAIL with the numbers)."""
    force = {(r.variant, r.size): r.forces_mae for r in rows}
    for size in sorted({r.size for r in rows}):
        c, a = force.get(("contrastive", size)), force.get(("augment", size))
        if c is not None and a is not None:
            gain = 1 - c / a
            print(f"  size {size}: contrastive vs augment force MAE {c:.1f} vs {a:.1f} meV/A: "
                  f"{100 * gain:+.0f} % lower (target >= 30 %: "
                  f"{'PASS' if gain >= 0.3 else 'FAIL'})")
    largest = max(r.size for r in rows)
    c, e = force.get(("contrastive", largest)), force.get(("equivariant", largest))
    if c is not None and e is not None:
        print(f"  size {largest}: contrastive / equivariant force MAE {c / e:.2f} "
              f"(target <= 1.20: {'PASS' if c / e <= 1.2 else 'FAIL'})")


def save(rows: list[ResultRow], cfg: ExperimentConfig, counts: dict[str, int],
         speed: list | None, labels: dict[str, str], versions: dict[str, str]) -> None:
    """``results.json`` (config, parameter counts, label fingerprints and package
    versions, rows, speed) and ``results.csv``."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "config": {k: (str(v) if isinstance(v, Path) else v)
                   for k, v in dataclasses.asdict(cfg).items()},
        "parameters": counts,
        "labels": labels,
        "versions": versions,
        "rows": [dataclasses.asdict(r) for r in rows],
        "speed": [dataclasses.asdict(s) for s in speed] if speed else [],
    }
    (cfg.out / "results.json").write_text(json.dumps(payload, indent=2))
    with open(cfg.out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in dataclasses.fields(ResultRow)])
        writer.writeheader()
        writer.writerows(dataclasses.asdict(r) for r in rows)


def run(cfg: ExperimentConfig) -> list[ResultRow]:
    """Labels, the training grid, the table, the targets, the speed table; saved."""
    unknown = sorted(set(cfg.variants) - set(VARIANTS))
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    torch.set_num_threads(cfg.threads)
    counts = parameter_counts(cfg)
    print(f"TransIP experiment: sizes {list(cfg.sizes)}, valid {cfg.valid}, test {cfg.test}, "
          f"{cfg.steps} steps of {cfg.batch_size}, seed {cfg.seed}, training seed "
          f"{cfg.training_seed}; parameters: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if cfg.report_on not in ("test", "valid"):
        raise ValueError(f"report_on must be 'test' or 'valid', got {cfg.report_on!r}")
    if cfg.workers < 1:
        raise ValueError(f"workers must be >= 1, got {cfg.workers}")
    files = label_files(cfg)
    valid, test = list(read(files.valid)), list(read(files.test))
    labels = {"train": label_fingerprint(read(files.train[max(cfg.sizes)])),
              "valid": label_fingerprint(valid), "test": label_fingerprint(test)}
    versions = package_versions()
    print("label fingerprints: " + ", ".join(f"{k} {v}" for k, v in labels.items())
          + "; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    report_set = test if cfg.report_on == "test" else valid
    rows = []
    for row in _train_grid(cfg, files, report_set):
        rows.append(row)
        print_table(rows[-1:])
        save(rows, cfg, counts, None, labels, versions)
    print(f"\nErrors on the {cfg.report_on} set (force MAE per component; rotation error "
          "of the forces):")
    print_table(rows)
    print_targets(rows)
    speed = None
    if cfg.speed_sizes:
        from benchmarks.transip_speed import run as speed_run

        print("\nSpeed (the same two architectures as trained above):")
        speed = speed_run(sizes=cfg.speed_sizes, threads=cfg.threads,
                          transip=cfg.transip,
                          equivariant={k: v for k, v in cfg.equivariant.items() if v != "auto"})
    save(rows, cfg, counts, speed, labels, versions)
    print(f"saved {cfg.out / 'results.json'} and {cfg.out / 'results.csv'}")
    return rows
