"""Training samples for TrajCast forecasters: (frame, next frame) pairs of a packed store.

A store written by :mod:`mlpot.datasets.reference.trajectory` holds trajectories as
runs of consecutive rows with the same ``group``; every pair of neighbouring rows
of one trajectory is a sample: the input is frame k (positions, velocities, cell,
species) and the targets are Δx = x_{k+1} − x_k (unwrapped positions, Å) and
v_{k+1} (Å/fs). All pairs must share one interval (``data_id`` ``forecast_fs=<Δt>``).
With ``steps`` = K > 1 a sample is a window of K + 1 frames of one trajectory: the pair
of its first two frames plus the later frames' targets, for a loss unrolled over K
forecast steps (``loss.unroll_steps``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlpot.datasets.errors import DataFormatError
from mlpot.datasets.reference.trajectory import DATA_ID_PREFIX
from mlpot.datasets.store import PackedStore
from mlpot.graph import AtomicGraph, collate


@dataclass(frozen=True)
class ForecastSample:
    """One or more training pairs, batched.

    Attributes:
        graph: frame k, with ``velocities`` (Å/fs), no edges.
        displacement: ``[N, 3]`` target Δx, Å.
        velocities: ``[N, 3]`` target v(t + Δt), Å/fs.
        later_displacements: ``[N, K − 1, 3]`` x(t + jΔt) − x(t) for j = 2..K, Å, or
            None (one-step samples).
        later_velocities: ``[N, K − 1, 3]`` v(t + jΔt) for j = 2..K, Å/fs, or None.
    """

    graph: AtomicGraph
    displacement: torch.Tensor
    velocities: torch.Tensor
    later_displacements: torch.Tensor | None = None
    later_velocities: torch.Tensor | None = None

    @property
    def steps(self) -> int:
        """K, the forecast steps the sample has targets for."""
        return 1 if self.later_displacements is None else 1 + self.later_displacements.shape[1]


class ForecastPairs(torch.utils.data.Dataset):
    """(frame, next frame) pairs, or windows of ``steps`` + 1 frames, of the
    trajectories in a packed store.

    Args:
        path: the store.
        dtype: float dtype of the samples.
        steps: K, forecast steps per sample (≥ 1).

    Attributes:
        forecast_fs: the interval between the frames of a pair, fs.
        pairs: ``[P]`` index of the first frame of each sample.
    """

    def __init__(
        self, path: str | Path, dtype: torch.dtype = torch.float64, steps: int = 1
    ) -> None:
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        self.store, self.dtype, self.steps = PackedStore(path), dtype, int(steps)
        if "velocities" not in self.store.optional:
            raise DataFormatError(self.store.path, None, "no velocities: not a trajectory store")
        groups = self.store.read_array("group")
        data_ids = self.store.read_array("data_id")
        same = (groups[1:] == groups[:-1]) & (groups[1:] != "")
        window = same.copy()  # window[k]: frames k..k+steps are one trajectory
        for j in range(1, self.steps):
            window[: len(window) - j] &= same[j:]
            window[len(window) - j :] = False
        self.pairs = np.nonzero(window)[0]
        if len(self.pairs) == 0:
            raise DataFormatError(
                self.store.path,
                None,
                f"no {self.steps + 1} consecutive frames of one trajectory",
            )
        intervals = {str(d) for d in data_ids[self.pairs]}
        if len(intervals) != 1 or not next(iter(intervals)).startswith(DATA_ID_PREFIX):
            raise DataFormatError(
                self.store.path,
                None,
                f"frames must share one '{DATA_ID_PREFIX}<fs>' data_id, found {sorted(intervals)}",
            )
        self.forecast_fs = float(next(iter(intervals)).removeprefix(DATA_ID_PREFIX))

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> ForecastSample:
        k = int(self.pairs[index])
        now, nxt = self.store.record(k), self.store.record(k + 1)
        graph = AtomicGraph.from_atoms(self.store[k], dtype=self.dtype, read_labels=False)
        graph = graph.replace(velocities=torch.as_tensor(now.velocities, dtype=self.dtype))
        dx = torch.as_tensor(nxt.positions - now.positions, dtype=self.dtype)
        v = torch.as_tensor(nxt.velocities, dtype=self.dtype)
        if self.steps == 1:
            return ForecastSample(graph=graph, displacement=dx, velocities=v)
        later = [self.store.record(k + j) for j in range(2, self.steps + 1)]
        return ForecastSample(
            graph=graph,
            displacement=dx,
            velocities=v,
            later_displacements=torch.as_tensor(
                np.stack([f.positions - now.positions for f in later], axis=1), dtype=self.dtype
            ),
            later_velocities=torch.as_tensor(
                np.stack([np.asarray(f.velocities) for f in later], axis=1), dtype=self.dtype
            ),
        )

    def groups(self) -> np.ndarray:
        """``[P]`` trajectory (``group``) of every pair, as str."""
        return self.store.read_array("group")[self.pairs].astype(str)

    def atoms_per_pair(self) -> np.ndarray:
        """``[P]`` atom count of every pair."""
        return np.asarray(self.store.atoms_per_structure, dtype=np.int64)[self.pairs]

    def rms(self, residual: bool = False, indices: np.ndarray | None = None) -> tuple[float, float]:
        """(RMS of the target Δx components, Å; RMS of the target v components, Å/fs);
        with ``residual`` of their departures from free flight, Δx − v·Δt and v' − v
        (the output scales of a ``residual`` forecaster). ``indices``: only these pairs
        (e.g. the training split; default all)."""
        offsets = self.store.offsets
        positions = self.store.read_array("positions")
        velocities = self.store.read_array("velocities")
        dx2 = v2 = count = 0.0
        chosen = self.pairs if indices is None else self.pairs[np.asarray(indices, dtype=np.int64)]
        if len(chosen) == 0:
            raise ValueError("rms over no pairs")
        for k in chosen:
            a, b, c = offsets[k], offsets[k + 1], offsets[k + 2]
            dx, v_new = positions[b:c] - positions[a:b], velocities[b:c]
            if residual:
                dx, v_new = dx - velocities[a:b] * self.forecast_fs, v_new - velocities[a:b]
            dx2 += float((dx**2).sum())
            v2 += float((v_new**2).sum())
            count += 3 * (b - a)
        return float(np.sqrt(dx2 / count)), float(np.sqrt(v2 / count))


def collate_samples(samples: list[ForecastSample]) -> ForecastSample:
    """One batched sample (a DataLoader ``collate_fn``)."""
    later = samples[0].later_displacements is not None
    return ForecastSample(
        graph=collate([s.graph for s in samples]),
        displacement=torch.cat([s.displacement for s in samples]),
        velocities=torch.cat([s.velocities for s in samples]),
        later_displacements=torch.cat([s.later_displacements for s in samples])  # type: ignore[misc]
        if later
        else None,
        later_velocities=torch.cat([s.later_velocities for s in samples])  # type: ignore[misc]
        if later
        else None,
    )
