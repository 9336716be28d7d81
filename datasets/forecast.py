"""Training samples for TrajCast forecasters: (frame, next frame) pairs of a packed store.

A store written by :mod:`mlpot.datasets.reference.trajectory` holds trajectories as
runs of consecutive rows with the same ``group``; every pair of neighbouring rows
of one trajectory is a sample: the input is frame k (positions, velocities, cell,
species) and the targets are Δx = x_{k+1} − x_k (unwrapped positions, Å) and
v_{k+1} (Å/fs). All pairs must share one interval (``data_id`` ``forecast_fs=<Δt>``).
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
    """

    graph: AtomicGraph
    displacement: torch.Tensor
    velocities: torch.Tensor


class ForecastPairs(torch.utils.data.Dataset):
    """(frame, next frame) pairs of the trajectories in a packed store.

    Args:
        path: the store.
        dtype: float dtype of the samples.

    Attributes:
        forecast_fs: the interval between the frames of a pair, fs.
        pairs: ``[P]`` index of the first frame of each pair.
    """

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.float64) -> None:
        self.store, self.dtype = PackedStore(path), dtype
        if "velocities" not in self.store.optional:
            raise DataFormatError(self.store.path, None, "no velocities: not a trajectory store")
        groups = self.store.read_array("group")
        data_ids = self.store.read_array("data_id")
        same = (groups[1:] == groups[:-1]) & (groups[1:] != "")
        self.pairs = np.nonzero(same)[0]
        if len(self.pairs) == 0:
            raise DataFormatError(
                self.store.path, None, "no two consecutive frames of one trajectory"
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
        return ForecastSample(graph=graph, displacement=dx, velocities=v)

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
    return ForecastSample(
        graph=collate([s.graph for s in samples]),
        displacement=torch.cat([s.displacement for s in samples]),
        velocities=torch.cat([s.velocities for s in samples]),
    )
