"""Dataset statistics: neighbour counts for choosing a cutoff, and summaries for ``inspect``."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import ase
import ase.data
import numpy as np
import torch

from mlpot.datasets.records import atoms_labels
from mlpot.graph import AtomicGraph
from mlpot.neighbors import with_neighbors


@dataclass(frozen=True)
class NeighborStats:
    """Neighbours per atom within one cutoff, over all atoms seen.

    Attributes:
        cutoff: Å.
        mean, median, p95, max: neighbours per atom.
        isolated_fraction: fraction of atoms with no neighbour.
    """

    cutoff: float
    mean: float
    median: float
    p95: float
    max: int
    isolated_fraction: float


def neighbor_statistics(structures: Iterable[ase.Atoms], cutoffs: Sequence[float]
                        ) -> list[NeighborStats]:
    """Neighbour counts per atom at each cutoff (one neighbour list at the largest)."""
    cutoffs = sorted(float(c) for c in cutoffs)
    counts: list[list[np.ndarray]] = [[] for _ in cutoffs]
    for atoms in structures:
        graph = with_neighbors(AtomicGraph.from_atoms(atoms, dtype=torch.float64,
                                                      read_labels=False), cutoffs[-1])
        (i, j), shifts = graph.require_edges()
        dist = (graph.positions[j] - graph.positions[i] + shifts).norm(dim=1).numpy()
        centres = i.numpy()
        for k, rc in enumerate(cutoffs):
            counts[k].append(np.bincount(centres[dist < rc], minlength=len(atoms)))
    out = []
    for rc, parts in zip(cutoffs, counts, strict=True):
        c = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        if len(c) == 0:
            raise ValueError("neighbor_statistics: no atoms")
        out.append(NeighborStats(rc, float(c.mean()), float(np.median(c)),
                                 float(np.percentile(c, 95)), int(c.max()),
                                 float((c == 0).mean())))
    return out


@dataclass(frozen=True)
class Summary:
    """What ``mlpot data inspect`` prints.

    Attributes:
        structures, atoms: counts.
        elements: ``{symbol: atom count}``.
        atoms_histogram: ``(bin_edges, counts)`` of atoms per structure.
        energy_per_atom: (mean, std, min, max) eV/atom over labelled structures.
        force_rms, force_max: eV/Å over labelled atoms.
        stress_abs_max: largest |σ| component, eV/Å³ (nan when none).
        labelled: structures with energy, forces, stress.
        charges, spins: ``{value: count}``.
    """

    structures: int
    atoms: int
    elements: dict[str, int]
    atoms_histogram: tuple[np.ndarray, np.ndarray]
    energy_per_atom: tuple[float, float, float, float]
    force_rms: float
    force_max: float
    stress_abs_max: float
    labelled: dict[str, int]
    charges: dict[int, int]
    spins: dict[int, int]


def summarize(structures: Iterable[ase.Atoms], bins: int = 10) -> Summary:
    """One pass over the structures, collecting :class:`Summary`."""
    sizes, epa, f_sq, f_max, s_max = [], [], 0.0, 0.0, np.nan
    n_force_atoms = 0
    elements: dict[int, int] = {}
    labelled = {"energy": 0, "forces": 0, "stress": 0}
    charges: dict[int, int] = {}
    spins: dict[int, int] = {}
    for atoms in structures:
        n = len(atoms)
        sizes.append(n)
        for z, c in zip(*np.unique(atoms.numbers, return_counts=True), strict=True):
            elements[int(z)] = elements.get(int(z), 0) + int(c)
        lab = atoms_labels(atoms)
        for key in labelled:
            labelled[key] += lab[key] is not None
        if lab["energy"] is not None:
            epa.append(float(lab["energy"]) / n)
        if lab["forces"] is not None:
            f = np.asarray(lab["forces"])
            f_sq += float((f ** 2).sum())
            n_force_atoms += n
            f_max = max(f_max, float(np.linalg.norm(f, axis=1).max()))
        if lab["stress"] is not None:
            s_max = np.nanmax([s_max, float(np.abs(lab["stress"]).max())])
        q, m = int(atoms.info.get("charge", 0)), int(atoms.info.get("spin", 0))
        charges[q] = charges.get(q, 0) + 1
        spins[m] = spins.get(m, 0) + 1
    sizes_arr = np.asarray(sizes)
    e = np.asarray(epa) if epa else np.array([np.nan])
    return Summary(
        structures=len(sizes), atoms=int(sizes_arr.sum()),
        elements={ase.data.chemical_symbols[z]: c for z, c in sorted(elements.items())},
        atoms_histogram=np.histogram(sizes_arr, bins=bins)[::-1] if len(sizes) else
        (np.zeros(0), np.zeros(0)),
        energy_per_atom=(float(e.mean()), float(e.std()), float(e.min()), float(e.max())),
        force_rms=float(np.sqrt(f_sq / (3 * n_force_atoms))) if n_force_atoms else np.nan,
        force_max=f_max if n_force_atoms else np.nan, stress_abs_max=float(s_max),
        labelled=labelled, charges=dict(sorted(charges.items())),
        spins=dict(sorted(spins.items())))


def format_summary(summary: Summary, title: str = "") -> str:
    """Plain-text report of a :class:`Summary`."""
    s = summary
    lines = [f"{title}: {s.structures} structures, {s.atoms} atoms"]
    lines.append("elements: " + ", ".join(f"{k} {v}" for k, v in s.elements.items()))
    lines.append("atoms per structure:")
    edges, counts = s.atoms_histogram
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        lines.append(f"  {lo:7.1f} - {hi:7.1f}  {int(c):8d}")
    lines.append("labelled: " + ", ".join(f"{k} {v}" for k, v in s.labelled.items()))
    mean, std, lo, hi = s.energy_per_atom
    lines.append(f"energy per atom (eV): mean {mean:.4f} std {std:.4f} min {lo:.4f} "
                 f"max {hi:.4f}")
    lines.append(f"forces (eV/Å): rms component {s.force_rms:.4f}, max |F| {s.force_max:.4f}")
    lines.append(f"stress (eV/Å³): max |component| {s.stress_abs_max:.6f}")
    lines.append("charges: " + ", ".join(f"{k:+d}: {v}" for k, v in s.charges.items()))
    lines.append("spin multiplicities: " + ", ".join(
        f"{'unset' if k == 0 else k}: {v}" for k, v in s.spins.items()))
    return "\n".join(lines)


def format_neighbor_statistics(stats: Sequence[NeighborStats]) -> str:
    """Plain-text table of :func:`neighbor_statistics`."""
    lines = ["neighbours per atom:  cutoff Å   mean  median    p95   max  isolated"]
    for s in stats:
        lines.append(f"{'':22s}{s.cutoff:7.2f} {s.mean:6.1f} {s.median:7.1f} {s.p95:6.1f} "
                     f"{s.max:5d}  {s.isolated_fraction:8.3f}")
    return "\n".join(lines)
