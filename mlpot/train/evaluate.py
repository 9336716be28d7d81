"""``evaluate``: a model's errors on labelled data, per structure class and element,
its equivariance error over random rotations, and a parity plot.

Errors: energy per atom (eV/atom), force components (eV/Å), stress components (eV/Å³),
each as MAE and RMSE. Classes are the structures' ``data_id`` (e.g. ``emt/md``) and,
when the data holds any, ``charged`` (q ≠ 0) and ``open-shell`` (multiplicity > 1)
structures. Equivariance error (float64 by default, so rounding does not hide or
fake it): for random rotations R, mean and max over structures and rotations of
|E(Rx) − E(x)| / |E(x)| and ‖F(Rx) − R F(x)‖ / ‖F(x)‖ (norms over all atoms).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ase
import numpy as np
import torch
from ase.data import chemical_symbols

from mlpot.datasets import read
from mlpot.graph import AtomicGraph
from mlpot.models import Potential
from mlpot.neighbors import with_neighbors


@dataclass(frozen=True)
class ErrorStats:
    """Errors over a set of structures (NaN where a label is absent).

    Attributes:
        structures, atoms: counts.
        energy_mae, energy_rmse: eV/atom.
        forces_mae, forces_rmse: eV/Å per component.
        stress_mae, stress_rmse: eV/Å³ per component.
    """

    structures: int
    atoms: int
    energy_mae: float
    energy_rmse: float
    forces_mae: float
    forces_rmse: float
    stress_mae: float
    stress_rmse: float


@dataclass(frozen=True)
class EquivarianceError:
    """Relative rotation errors (see the module docstring), float64 unless said."""

    energy_mean: float
    energy_max: float
    forces_mean: float
    forces_max: float
    structures: int
    rotations: int
    dtype: str


@dataclass(frozen=True)
class EvalReport:
    """Everything :func:`evaluate` measured."""

    overall: ErrorStats
    by_class: dict[str, ErrorStats]
    element_force_mae: dict[str, float]
    equivariance: EquivarianceError | None
    parity_png: Path | None = None


@dataclass
class _PerStructure:
    """Per-structure error sums, filled batch by batch."""

    classes: list[list[str]] = field(default_factory=list)
    atoms: list[int] = field(default_factory=list)
    energy: list[float] = field(default_factory=list)  # error per atom
    force_abs: list[float] = field(default_factory=list)
    force_sq: list[float] = field(default_factory=list)
    force_n: list[int] = field(default_factory=list)
    stress_abs: list[float] = field(default_factory=list)
    stress_sq: list[float] = field(default_factory=list)
    stress_n: list[int] = field(default_factory=list)
    element_abs: dict[int, float] = field(default_factory=dict)
    element_n: dict[int, int] = field(default_factory=dict)
    parity_e: list[np.ndarray] = field(default_factory=list)
    parity_f: list[np.ndarray] = field(default_factory=list)


def structure_classes(atoms: ase.Atoms) -> list[str]:
    """Classes a structure is reported under: its data_id, charged, open-shell."""
    out = [str(atoms.info["data_id"])] if atoms.info.get("data_id") else []
    if int(atoms.info.get("charge", 0)) != 0:
        out.append("charged")
    if int(atoms.info.get("spin", 1)) > 1:
        out.append("open-shell")
    return out


def evaluate(
    model: Potential,
    data: str | Path | Sequence[ase.Atoms],
    batch_size: int = 16,
    rotations: int = 4,
    rotation_structures: int = 16,
    seed: int = 0,
    parity_png: str | Path | None = None,
) -> EvalReport:
    """Errors of ``model`` on the labelled structures in ``data`` (a file or a list).

    The equivariance error uses ``rotations`` random rotations of each of
    ``rotation_structures`` structures; either one 0 skips it (``equivariance`` None).
    """
    model = model.eval()
    structures = data if not isinstance(data, str | Path) else read(data)
    sums, chunk = _PerStructure(), []
    sampled: list[ase.Atoms] = []
    for k, atoms in enumerate(structures):
        chunk.append(atoms)
        if k < 10_000 and len(sampled) < rotation_structures * 8:
            sampled.append(atoms)
        if len(chunk) == batch_size:
            _accumulate(model, chunk, sums)
            chunk = []
    if chunk:
        _accumulate(model, chunk, sums)
    if not sums.atoms:
        raise ValueError(f"{data}: no labelled structures to evaluate")
    rng = np.random.default_rng(seed)
    picks = [
        sampled[i]
        for i in sorted(
            rng.choice(len(sampled), size=min(rotation_structures, len(sampled)), replace=False)
        )
    ]
    equi = equivariance_error(model, picks, rotations, rng) if rotations > 0 and picks else None
    classes = sorted({c for cs in sums.classes for c in cs})
    by_class = {c: _stats(sums, [c in cs for cs in sums.classes]) for c in classes}
    png = None
    if parity_png is not None:
        png = parity_plot(
            np.concatenate(sums.parity_e), np.concatenate(sums.parity_f), Path(parity_png)
        )
    element = {
        chemical_symbols[z]: sums.element_abs[z] / sums.element_n[z]
        for z in sorted(sums.element_abs)
    }
    return EvalReport(_stats(sums, [True] * len(sums.atoms)), by_class, element, equi, png)


def _accumulate(model: Potential, chunk: list[ase.Atoms], sums: _PerStructure) -> None:
    graph = with_neighbors(AtomicGraph.from_atoms(chunk, dtype=model.dtype), model.cutoff)
    has_stress = graph.stress is not None
    out = model(graph.to(model.e0.device), compute_forces=True, compute_stress=has_stress)
    n = graph.atoms_per_system
    sys_idx = graph.system_index.numpy()
    e_pred = out.energy.detach().cpu().double().numpy()
    for b, atoms in enumerate(chunk):
        sums.classes.append(structure_classes(atoms))
        sums.atoms.append(int(n[b]))
        ref = graph.energy[b].item() if graph.energy is not None else float("nan")
        sums.energy.append((e_pred[b] - ref) / int(n[b]))
        sums.parity_e.append(np.array([[ref / int(n[b]), e_pred[b] / int(n[b])]]))
        mask = sys_idx == b
        if graph.forces is not None:
            err = (out.forces.detach().cpu().double()[mask] - graph.forces.double()[mask]).numpy()
            sums.force_abs.append(float(np.abs(err).sum()))
            sums.force_sq.append(float((err**2).sum()))
            sums.force_n.append(err.size)
            for z in np.unique(graph.atomic_numbers[mask].numpy()):
                sel = graph.atomic_numbers[mask].numpy() == z
                sums.element_abs[int(z)] = sums.element_abs.get(int(z), 0.0) + float(
                    np.abs(err[sel]).sum()
                )
                sums.element_n[int(z)] = sums.element_n.get(int(z), 0) + int(sel.sum()) * 3
            ref_f = graph.forces.double()[mask].numpy().ravel()
            sums.parity_f.append(np.stack([ref_f, ref_f + err.ravel()], axis=1))
        else:
            _append_zero(sums.force_abs, sums.force_sq, sums.force_n)
        if has_stress and graph.volume()[b] > 0:
            err = (out.stress[b].detach().cpu().double() - graph.stress[b].double()).numpy()  # type: ignore[index]  # has_stress checked above
            sums.stress_abs.append(float(np.abs(err).sum()))
            sums.stress_sq.append(float((err**2).sum()))
            sums.stress_n.append(9)
        else:
            _append_zero(sums.stress_abs, sums.stress_sq, sums.stress_n)


def _append_zero(*lists: list) -> None:
    for values in lists:
        values.append(0)


def _stats(s: _PerStructure, select: list[bool]) -> ErrorStats:
    sel = np.asarray(select)

    def pick(values: list) -> np.ndarray:
        return np.asarray(values, dtype=float)[sel]

    e = pick(s.energy)
    e = e[np.isfinite(e)]
    fn, sn = pick(s.force_n).sum(), pick(s.stress_n).sum()
    nan = float("nan")
    return ErrorStats(
        structures=int(sel.sum()),
        atoms=int(pick(s.atoms).sum()),
        energy_mae=float(np.abs(e).mean()) if len(e) else nan,
        energy_rmse=float(np.sqrt((e**2).mean())) if len(e) else nan,
        forces_mae=float(pick(s.force_abs).sum() / fn) if fn else nan,
        forces_rmse=float(np.sqrt(pick(s.force_sq).sum() / fn)) if fn else nan,
        stress_mae=float(pick(s.stress_abs).sum() / sn) if sn else nan,
        stress_rmse=float(np.sqrt(pick(s.stress_sq).sum() / sn)) if sn else nan,
    )


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation ``[3, 3]`` (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def equivariance_error(
    model: Potential,
    structures: Sequence[ase.Atoms],
    rotations: int,
    rng: np.random.Generator,
    dtype: torch.dtype = torch.float64,
) -> EquivarianceError:
    """Relative energy and force changes under random rotations (see module docstring)."""
    m = copy.deepcopy(model).to(dtype).eval()
    e_rel, f_rel = [], []
    for atoms in structures:
        base = _energy_forces(m, atoms, dtype)
        for _ in range(rotations):
            rot = random_rotation(rng)
            turned = atoms.copy()
            turned.positions = atoms.positions @ rot.T
            turned.set_cell(np.asarray(atoms.cell[:]) @ rot.T, scale_atoms=False)
            e, f = _energy_forces(m, turned, dtype)
            e_rel.append(abs(e - base[0]) / max(abs(base[0]), 1e-12))
            f_rel.append(np.linalg.norm(f - base[1] @ rot.T) / max(np.linalg.norm(base[1]), 1e-12))
    return EquivarianceError(
        float(np.mean(e_rel)),
        float(np.max(e_rel)),
        float(np.mean(f_rel)),
        float(np.max(f_rel)),
        len(structures),
        rotations,
        str(dtype).removeprefix("torch."),
    )


def _energy_forces(
    model: Potential, atoms: ase.Atoms, dtype: torch.dtype
) -> tuple[float, np.ndarray]:
    graph = with_neighbors(
        AtomicGraph.from_atoms(atoms, dtype=dtype, read_labels=False), model.cutoff
    )
    out = model(graph.to(model.e0.device))
    return float(out.energy[0]), out.forces.detach().cpu().double().numpy()


def parity_plot(energy: np.ndarray, forces: np.ndarray, path: Path) -> Path:
    """Predicted vs reference energy per atom and force components, written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, values, title, unit in (
        (axes[0], energy, "energy", "eV/atom"),
        (axes[1], forces, "force components", "eV/Å"),
    ):
        values = values[np.isfinite(values).all(axis=1)]
        if len(values) > 20000:
            values = values[np.random.default_rng(0).choice(len(values), 20000, replace=False)]
        ax.scatter(values[:, 0], values[:, 1], s=2, alpha=0.4)
        if len(values):
            lo, hi = float(values.min()), float(values.max())
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"reference {title} ({unit})")
        ax.set_ylabel(f"predicted {title} ({unit})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return path
