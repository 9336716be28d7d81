"""Trajectory files: DCD, XTC and HDF5 through mdtraj; extxyz through ase.

Positions are written unwrapped (as the state holds them), so MSD can be read
back from any format; RDFs use the minimum image anyway. DCD and XTC carry no
topology, so a PDB with the first frame is written beside them (``traj.pdb`` for
``traj.dcd``): ``mdtraj.load("traj.dcd", top="traj.pdb")``. Every frame is
flushed, so the file stays readable if the run stops abruptly.
"""

from __future__ import annotations

import os
from itertools import pairwise
from pathlib import Path
from types import MappingProxyType
from typing import Any

import ase
import ase.geometry
import ase.io
import ase.units
import numpy as np
from ase.data import chemical_symbols

from mlpot.md.state import MDState

TRAJECTORY_FORMATS = MappingProxyType({".dcd": "dcd", ".xtc": "xtc", ".h5": "h5",
                                       ".hdf5": "h5", ".extxyz": "extxyz", ".xyz": "extxyz"})
_NM = 0.1  # Å → nm
_PS = 1e-3  # fs → ps


def trajectory_format(path: str | Path) -> str:
    """The format name of ``path`` from its extension (ValueError when unknown)."""
    fmt = TRAJECTORY_FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown trajectory format; use one of "
                         f"{', '.join(sorted(TRAJECTORY_FORMATS))}")
    return fmt


def _mdtraj():
    """mdtraj, imported on first use (it is slow to import)."""
    import mdtraj

    return mdtraj


def topology(numbers: np.ndarray):
    """An mdtraj topology with one residue per atom (no bonds)."""
    mdtraj = _mdtraj()
    top = mdtraj.Topology()
    chain = top.add_chain()
    for z in numbers:
        symbol = chemical_symbols[int(z)]
        res = top.add_residue(symbol.upper(), chain)
        top.add_atom(symbol, mdtraj.element.Element.getByAtomicNumber(int(z)), res)
    return top


def topology_path(path: str | Path) -> Path:
    """The PDB written beside a DCD/XTC trajectory."""
    return Path(path).with_suffix(".pdb")


def system_paths(path: str | Path, num_systems: int, first_index: int = 0,
                 total_systems: int | None = None) -> list[Path]:
    """One file per system: ``path`` itself for a single system, else ``stem_<b><suffix>``
    with ``b`` the system's index among ``total_systems`` (batches run in parts)."""
    path = Path(path)
    if (total_systems or num_systems) == 1:
        return [path]
    return [path.with_name(f"{path.stem}_{first_index + b}{path.suffix}")
            for b in range(num_systems)]


class _SystemWriter:
    """Writes frames of one system in one format."""

    def __init__(self, path: Path, numbers: np.ndarray, append: bool,
                 keep_frames: int | None = None) -> None:
        self.path, self.numbers, self.fmt = path, numbers, trajectory_format(path)
        self.keep_frames = keep_frames
        self.handle: Any = None  # an mdtraj file object (untyped library)
        self._cellpar: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.append = append and path.exists()
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.append and path.exists():
            path.unlink()

    def write(self, pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray, time_fs: float,
              step: int, velocities: np.ndarray | None) -> None:
        """Append one frame (``velocities`` Å/fs are needed by extxyz only)."""
        if self.fmt == "extxyz":
            atoms = ase.Atoms(numbers=self.numbers, positions=pos, cell=cell, pbc=pbc)
            if velocities is not None:
                atoms.set_velocities(velocities / ase.units.fs)
            atoms.info.update(step=int(step), time_fs=float(time_fs))
            ase.io.write(self.path, atoms, format="extxyz", append=True)
            return
        if self._cellpar is None or not np.array_equal(cell, self._cellpar[0]):
            self._cellpar = (cell.copy(), *_lengths_angles(cell))
        _, lengths, angles = self._cellpar
        if self.handle is None:
            self._open(pos, lengths, angles)
        if self.fmt == "dcd":
            self.handle.write(pos[None].astype(np.float32), lengths[None], angles[None])
        elif self.fmt == "xtc":
            self.handle.write((pos * _NM)[None].astype(np.float32),
                              time=np.array([time_fs * _PS], dtype=np.float32),
                              step=np.array([step], dtype=np.int32),
                              box=(cell * _NM)[None].astype(np.float32))
        else:
            self.handle.write(pos[None] * _NM, time=np.array([time_fs * _PS]),
                              cell_lengths=lengths[None] * _NM, cell_angles=angles[None])
        flush = getattr(self.handle, "flush", None)  # DCD flushes on close only
        if flush is not None:
            flush()

    def _open(self, pos: np.ndarray, lengths: np.ndarray, angles: np.ndarray) -> None:
        mdtraj = _mdtraj()
        top = topology(self.numbers)
        if self.fmt == "h5":
            mode = "a" if self.append else "w"
            self.handle = mdtraj.formats.HDF5TrajectoryFile(str(self.path), mode)
            if not self.append:
                self.handle.topology = top
            return
        if not self.append:
            traj = mdtraj.Trajectory(pos[None] * _NM, top, unitcell_lengths=lengths[None] * _NM,
                                     unitcell_angles=angles[None])
            traj.save_pdb(str(topology_path(self.path)))
        cls = (mdtraj.formats.DCDTrajectoryFile if self.fmt == "dcd"
               else mdtraj.formats.XTCTrajectoryFile)
        if not self.append:
            self.handle = cls(str(self.path), "w")
            return
        # DCD/XTC cannot be appended to: copy the kept frames into a new file that
        # replaces the old one once complete (the open handle follows the rename).
        with cls(str(self.path), "r") as old:
            frames = [None if x is None else x[:self.keep_frames] for x in old.read()]
        tmp = self.path.with_name(f".tmp_{self.path.name}")
        self.handle = cls(str(tmp), "w")
        if frames[0] is not None and len(frames[0]):
            if self.fmt == "dcd":
                self.handle.write(*frames)
            else:
                xyz, time_ps, step, box = frames
                self.handle.write(xyz, time=time_ps, step=step, box=box)
        os.replace(tmp, self.path)

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def _lengths_angles(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell lengths (Å) and angles (degrees); a zero cell gives zeros and 90°."""
    if not np.any(cell):
        return np.zeros(3), np.full(3, 90.0)
    par = ase.geometry.cell_to_cellpar(cell)
    return par[:3], par[3:]


def count_frames(path: str | Path) -> int:
    """Number of frames in a trajectory file written by :class:`TrajectoryReporter`."""
    fmt = trajectory_format(path)
    if fmt == "extxyz":
        return len(ase.io.read(path, index=":", format="extxyz"))
    top = str(topology_path(path)) if fmt in ("dcd", "xtc") else None
    mdtraj = _mdtraj()
    return mdtraj.load(str(path), top=top).n_frames if top else mdtraj.load(str(path)).n_frames


def truncate_frames(path: str | Path, frames: int) -> None:
    """Keep the first ``frames`` frames of ``path`` (rewritten atomically)."""
    path = Path(path)
    if not path.exists() or count_frames(path) <= frames:
        return
    fmt = trajectory_format(path)
    tmp = path.with_name(f".tmp_{path.name}")
    if fmt == "extxyz":
        ase.io.write(tmp, ase.io.read(path, index=f":{frames}", format="extxyz"),
                     format="extxyz")
    else:
        top = str(topology_path(path)) if fmt in ("dcd", "xtc") else None
        mdtraj = _mdtraj()
        traj = mdtraj.load(str(path), top=top) if top else mdtraj.load(str(path))
        traj[:frames].save(str(tmp))
    os.replace(tmp, path)


class TrajectoryReporter:
    """Writes a frame of every system every ``every`` steps.

    Attributes ``interval`` and ``needs_stress`` (False) make it a
    :class:`~mlpot.md.simulate.Reporter`.

    Args:
        path: file name; its extension picks the format (.dcd .xtc .h5 .extxyz).
            Batches write one file per system (see :func:`system_paths`).
        state: the state to be written (gives species and the number of systems).
        every: write every this many steps.
        resume_frames: when resuming, the number of frames the restart had seen
            (later frames are dropped, new frames appended); None starts new files.
        first_index, total_systems: name files by global system index when a large
            batch runs in parts.
    """

    def __init__(self, path: str | Path, state: MDState, every: int = 10,
                 resume_frames: int | None = None, first_index: int = 0,
                 total_systems: int | None = None) -> None:
        if every < 1:
            raise ValueError(f"trajectory interval must be >= 1, got {every}")
        trajectory_format(path)
        self.interval, self.frames, self.needs_stress = int(every), 0, False
        self.paths = system_paths(path, state.num_systems, first_index, total_systems)
        numbers = state.graph.atomic_numbers.cpu().numpy()
        bounds = np.cumsum([0, *state.graph.atoms_per_system.tolist()])
        self._slices = [slice(int(a), int(b)) for a, b in pairwise(bounds)]
        if resume_frames is not None:
            for p in self.paths:
                if trajectory_format(p) in ("extxyz", "h5"):  # DCD/XTC: cut when reopened
                    truncate_frames(p, resume_frames)
            self.frames = resume_frames
        self._writers = [_SystemWriter(p, numbers[s], resume_frames is not None, resume_frames)
                         for p, s in zip(self.paths, self._slices, strict=True)]
        self._needs_velocities = any(w.fmt == "extxyz" for w in self._writers)

    def report(self, state: MDState, integrator: object = None) -> None:
        """Write a frame of every system."""
        pos = state.positions.detach().cpu().numpy()  # each writer converts it
        vel = (state.velocities.detach().cpu().double().numpy() if self._needs_velocities
               else None)
        cell = state.cell.detach().cpu().double().numpy()
        pbc = state.graph.pbc.cpu().numpy()
        for b, (w, s) in enumerate(zip(self._writers, self._slices, strict=True)):
            w.write(pos[s], cell[b], pbc[b], state.time, state.step,
                    None if vel is None else vel[s])
        self.frames += 1

    def close(self) -> None:
        for w in self._writers:
            w.close()
