"""Energy+forces time of TransIPPotential vs EquivariantPotential on molecules.

``python -m benchmarks transip``. Both models at their default sizes (similar parameter
counts, printed), same dtype, device and thread count, timed round-robin on the same
structure with the same precomputed neighbour list (the MD situation: the Verlet list is
reused), so each ratio compares the models, not the neighbour search.

Structures: globular C/H/N/O clusters at organic-matter density (0.1 atoms/Å³, no two
atoms closer than 1 Å), neutral, multiplicity set by electron parity; geometry, not
chemistry, sets the cost of both models (pairs within 5 Å, attention over n²).
"""

from __future__ import annotations

from dataclasses import dataclass

import ase
import numpy as np
import torch

from benchmarks.timing import interleaved_times
from mlpot.graph import AtomicGraph
from mlpot.models import EquivariantPotential, Potential, TransIPPotential
from mlpot.neighbors import with_neighbors

SPECIES = ("H", "C", "N", "O")
#: element mix of the clusters (organic-like: H-rich, then C, O, N)
FRACTIONS = {"H": 0.45, "C": 0.35, "O": 0.12, "N": 0.08}


def organic_cluster(
    n: int, seed: int = 0, density: float = 0.1, min_distance: float = 1.0
) -> ase.Atoms:
    """``n`` atoms placed at random in a sphere of volume n/density (Å³), rejecting any
    point closer than ``min_distance`` (Å) to one already placed."""
    rng = np.random.default_rng(seed)
    radius = (3 * n / (4 * np.pi * density)) ** (1 / 3)
    points: list[np.ndarray] = []
    while len(points) < n:
        p = rng.uniform(-radius, radius, size=3)
        if np.linalg.norm(p) > radius:
            continue
        if points and np.min(np.linalg.norm(np.array(points) - p, axis=1)) < min_distance:
            continue
        points.append(p)
    symbols = rng.choice(list(FRACTIONS), size=n, p=list(FRACTIONS.values()))
    atoms = ase.Atoms(symbols=list(symbols), positions=np.array(points))
    atoms.info["charge"] = 0
    atoms.info["spin"] = 1 if int(atoms.numbers.sum()) % 2 == 0 else 2
    return atoms


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class SpeedRow:
    """Median energy+forces time (ms) of each model on one structure."""

    atoms: int
    times_ms: dict[str, float]


def build_models(
    dtype: torch.dtype,
    device: str,
    frame_averaging: bool,
    transip: dict | None = None,
    equivariant: dict | None = None,
) -> dict[str, Potential]:
    """The compared models (seeded random weights): default sizes unless ``transip`` /
    ``equivariant`` give hyper-parameters."""
    torch.manual_seed(0)
    transip, equivariant = transip or {}, equivariant or {}
    models: dict[str, Potential] = {
        "transip": TransIPPotential(list(SPECIES), **transip),
        "equivariant": EquivariantPotential(list(SPECIES), **equivariant),
    }
    if frame_averaging:
        models["transip+fa"] = TransIPPotential(list(SPECIES), frame_averaging=True, **transip)
    return {k: m.to(device=device, dtype=dtype).eval() for k, m in models.items()}


def measure(models: dict[str, Potential], atoms: ase.Atoms, repeats: int, device: str) -> SpeedRow:
    """Median time (ms) of ``model(graph)`` (energy + forces) per model, round-robin."""
    cutoff = max(m.cutoff for m in models.values())
    dtype = next(iter(models.values())).dtype
    graph = with_neighbors(
        AtomicGraph.from_atoms(atoms, dtype=dtype, device=device, read_labels=False), cutoff
    )

    def call(model: Potential):
        def run() -> None:
            model(graph, compute_forces=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()

        return run

    times = interleaved_times({k: call(m) for k, m in models.items()}, repeats=repeats)
    return SpeedRow(len(atoms), {k: 1e3 * float(np.median(t)) for k, t in times.items()})


def run(
    sizes: tuple[int, ...] = (20, 100, 500),
    repeats: int = 5,
    threads: int = 2,
    device: str = "cpu",
    dtype: str = "float32",
    frame_averaging: bool = True,
    transip: dict | None = None,
    equivariant: dict | None = None,
) -> list[SpeedRow]:
    """Print the table (ms and equivariant/transip ratios) and return the rows.

    ``transip`` / ``equivariant``: hyper-parameters of the two models (default sizes
    when None)."""
    torch.set_num_threads(threads)
    models = build_models(getattr(torch, dtype), device, frame_averaging, transip, equivariant)
    params = ", ".join(f"{k} {parameter_count(m) / 1e3:.0f}k" for k, m in models.items())
    print(
        f"energy+forces, {device}, {dtype}, {threads} threads, median of {repeats}; "
        f"parameters: {params}"
    )
    names = list(models)
    print(
        f"{'atoms':>6} "
        + " ".join(f"{k + ' ms':>16}" for k in names)
        + f" {'equivariant/transip':>20}"
    )
    rows = []
    for n in sizes:
        row = measure(models, organic_cluster(n), repeats, device)
        rows.append(row)
        ratio = row.times_ms["equivariant"] / row.times_ms["transip"]
        print(
            f"{n:>6} " + " ".join(f"{row.times_ms[k]:>16.1f}" for k in names) + f" {ratio:>19.2f}x"
        )
    return rows
