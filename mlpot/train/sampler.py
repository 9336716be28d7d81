"""Batches by atom count, seeded per epoch, and their split across DDP ranks.

An epoch's global batches depend only on (seed, epoch, the training indices and
their atom counts), so every rank builds the same list without communication and a
resumed run skips exactly the batches it had done. Each global batch is then split
between ranks by atom count (largest structure first onto the least-loaded rank), so
one rank's share does not wait on a much larger other.
"""

from __future__ import annotations

import numpy as np


def epoch_batches(
    indices: np.ndarray,
    num_atoms: np.ndarray,
    seed: int,
    epoch: int,
    batch_size: int = 8,
    max_atoms: int | None = None,
    shuffle: bool = True,
) -> list[np.ndarray]:
    """Global batches of one epoch.

    Args:
        indices: ``[B]`` structure indices of the split.
        num_atoms: atom count of every structure, indexed by structure index.
        seed, epoch: the shuffle is ``default_rng([seed, epoch]).permutation``.
        batch_size: structures per batch (used when ``max_atoms`` is None).
        max_atoms: pack structures in shuffled order until the next would exceed
            this many atoms (a structure larger than ``max_atoms`` gets its own batch).
        shuffle: False keeps the given order (validation).

    Returns:
        A list of index arrays; every index appears exactly once.
    """
    order = np.asarray(indices, dtype=np.int64)
    if shuffle:
        order = order[np.random.default_rng([seed, epoch]).permutation(len(order))]
    if max_atoms is None:
        return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    batches: list[np.ndarray] = []
    current: list[int] = []
    atoms = 0
    for index in order:
        n = int(num_atoms[index])
        if current and atoms + n > max_atoms:
            batches.append(np.array(current, dtype=np.int64))
            current, atoms = [], 0
        current.append(int(index))
        atoms += n
    if current:
        batches.append(np.array(current, dtype=np.int64))
    return batches


def shard_batch(batch: np.ndarray, num_atoms: np.ndarray, world_size: int, rank: int) -> np.ndarray:
    """This rank's part of a global batch, balanced by atom count (greedy LPT).

    Deterministic: ties are broken by structure index and rank number. A rank may
    get nothing when the batch has fewer structures than ranks.
    """
    if world_size == 1:
        return batch
    sizes = num_atoms[batch]
    order = np.lexsort((batch, -sizes))  # largest first, then by index
    load = np.zeros(world_size, dtype=np.int64)
    owner = np.empty(len(batch), dtype=np.int64)
    for k in order:
        r = int(np.argmin(load))
        owner[k] = r
        load[r] += sizes[k]
    return np.sort(batch[owner == rank])
