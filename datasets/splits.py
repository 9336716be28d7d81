"""Group-wise train/validation/test splits: all structures of a group land in one split."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def group_split(groups: Sequence[str] | np.ndarray, fractions: Sequence[float] = (0.9, 0.1),
                seed: int = 0) -> list[np.ndarray]:
    """Split structure indices by group (e.g. ``mp_id``) with a seeded shuffle.

    Groups are shuffled with ``numpy.random.default_rng(seed)`` and assigned in
    that order to the splits, each split taking groups until it holds its
    fraction of the structures, so no group straddles two splits.

    Args:
        groups: ``[B]`` group label per structure (structures with an empty label
            form singleton groups).
        fractions: target fraction of structures per split (normalised to sum 1).
        seed: RNG seed; the same seed and groups give the same split.

    Returns:
        One sorted int64 index array per split.
    """
    weights = np.asarray(fractions, dtype=float)
    if weights.ndim != 1 or len(weights) == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {fractions}")
    labels = np.asarray([str(g) if str(g) else f"\0{k}" for k, g in enumerate(groups)],
                        dtype=object)
    uniques, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(uniques))
    targets = np.cumsum(weights / weights.sum()) * len(labels)
    assignment = np.empty(len(uniques), dtype=np.int64)
    filled, split = 0, 0
    for g in order:
        while split < len(targets) - 1 and filled >= targets[split] - 1e-9:
            split += 1
        assignment[g] = split
        filled += counts[g]
    per_structure = assignment[inverse]
    return [np.flatnonzero(per_structure == s) for s in range(len(fractions))]
