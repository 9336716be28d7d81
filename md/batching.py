"""Splitting many systems into batches that fit in memory."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mlpot.md.forces import ForceField
from mlpot.md.state import MDState


def plan_batches(atoms_per_system: Sequence[int], max_atoms: int | None) -> list[list[int]]:
    """Consecutive groups of system indices with at most ``max_atoms`` atoms each
    (a system larger than the limit runs alone); one group when ``max_atoms`` is None."""
    indices = list(range(len(atoms_per_system)))
    if max_atoms is None:
        return [indices]
    groups: list[list[int]] = []
    current: list[int] = []
    total = 0
    for i, n in zip(indices, atoms_per_system, strict=True):
        if current and total + n > max_atoms:
            groups.append(current)
            current, total = [], 0
        current.append(i)
        total += n
    if current:
        groups.append(current)
    return groups


def max_batch_atoms(force_field: ForceField, probe: MDState, safety: float = 0.7) -> int | None:
    """Atoms per batch that fit in free GPU memory, from the peak memory of one force
    evaluation on ``probe`` (one system); None on CPU (no reliable per-process limit)."""
    device = probe.positions.device
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    force_field.evaluate(probe)
    torch.cuda.synchronize(device)
    per_atom = max(torch.cuda.max_memory_allocated(device) - before, 1) / probe.num_atoms
    free, _ = torch.cuda.mem_get_info(device)
    force_field.verlet = None
    return max(int(safety * free / per_atom), probe.num_atoms)
