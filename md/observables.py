"""Structural and dynamical observables: RDF, MSD/diffusion, VACF and vibrational DOS.

They work on numpy arrays (from a run or a file); :func:`load_frames` reads any
trajectory written by :class:`mlpot.md.reporters.TrajectoryReporter`. Units: Å,
fs; frequencies in THz.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import ase.io
import ase.units
import numpy as np
import torch

from mlpot.md.reporters.trajectory import topology_path, trajectory_format
from mlpot.neighbors import system_neighbors


@dataclass(frozen=True)
class Frames:
    """Frames of one system.

    Attributes:
        positions: ``[T, n, 3]`` Å (unwrapped as written).
        cells: ``[T, 3, 3]`` Å.
        numbers: ``[n]`` atomic numbers.
        times_fs: ``[T]`` fs (frame index when the file has no times).
        velocities: ``[T, n, 3]`` Å/fs, or None (only extxyz stores them).
    """

    positions: np.ndarray
    cells: np.ndarray
    numbers: np.ndarray
    times_fs: np.ndarray
    velocities: np.ndarray | None = None


def load_frames(path: str | Path) -> Frames:
    """Read a DCD/XTC (with the PDB beside it), HDF5 or extxyz trajectory."""
    fmt = trajectory_format(path)
    if fmt == "extxyz":
        # index ":" makes ase return a list of frames
        images = cast("list[ase.Atoms]", ase.io.read(path, index=":", format="extxyz"))
        vel = None
        if all(a.has("momenta") for a in images):
            vel = np.stack([a.get_velocities() * ase.units.fs for a in images])
        times = np.array([a.info.get("time_fs", k) for k, a in enumerate(images)], float)
        return Frames(np.stack([a.positions for a in images]),
                      np.stack([a.cell[:] for a in images]), images[0].numbers, times, vel)
    import mdtraj

    top = str(topology_path(path)) if fmt in ("dcd", "xtc") else None
    traj = mdtraj.load(str(path), top=top) if top else mdtraj.load(str(path))
    numbers = np.array([a.element.atomic_number for a in traj.topology.atoms])
    cells = traj.unitcell_vectors * 10 if traj.unitcell_vectors is not None else np.zeros(
        (traj.n_frames, 3, 3))
    times = traj.time * 1e3 if fmt != "dcd" else np.arange(traj.n_frames, dtype=float)
    return Frames(traj.xyz.astype(np.float64) * 10, cells.astype(np.float64), numbers, times)


def rdf(positions: np.ndarray, cells: np.ndarray, r_max: float, bins: int = 200,
        pbc: tuple[bool, bool, bool] = (True, True, True)) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function averaged over frames (minimum-image-free, any cell).

    g(r) = ⟨n(r)⟩ / (N ρ 4π r² Δr) with ρ = N / V. Args: ``positions [T, n, 3]`` or
    ``[n, 3]`` Å, ``cells [T, 3, 3]`` or ``[3, 3]`` Å. Returns (bin centres Å, g).
    """
    pos = np.asarray(positions, float).reshape(-1, *np.shape(positions)[-2:])
    cel = np.broadcast_to(np.asarray(cells, float), (pos.shape[0], 3, 3))
    edges = np.linspace(0.0, r_max, bins + 1)
    hist = np.zeros(bins)
    density = 0.0
    for p, c in zip(pos, cel, strict=True):
        nl = system_neighbors(torch.from_numpy(p), torch.from_numpy(np.array(c)),
                              torch.tensor(pbc), r_max)
        vec = p[nl.j.numpy()] - p[nl.i.numpy()] + nl.cell_shifts.numpy() @ c
        hist += np.histogram(np.linalg.norm(vec, axis=1), bins=edges)[0]
        density += len(p) / abs(np.linalg.det(c))
    n, T = pos.shape[1], pos.shape[0]
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = hist / (T * n * (density / T) * shell)
    return 0.5 * (edges[1:] + edges[:-1]), g


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    """Σ over atoms/components of ⟨x(t₀)·x(t₀+τ)⟩ averaged over origins, ``x [T, ...]``."""
    T = x.shape[0]
    flat = x.reshape(T, -1)
    f = np.fft.rfft(flat, n=2 * T, axis=0)
    acf = np.fft.irfft(f * np.conj(f), axis=0)[:T].sum(axis=1)
    return acf / (T - np.arange(T))


def msd(positions: np.ndarray) -> np.ndarray:
    """Mean squared displacement ``[T]`` (Å², per atom, averaged over time origins).

    Uses the FFT identity MSD(m) = S₁(m) − 2 S₂(m) (Calandrini et al.,
    Collection SFN 12, 201 (2011)) on *unwrapped* ``positions [T, n, 3]``.
    """
    x = np.asarray(positions, float)
    T, n = x.shape[:2]
    d = (x**2).sum(axis=2).sum(axis=1)
    d = np.append(d, 0.0)
    s2 = _autocorrelation(x)
    q = 2 * d.sum()
    s1 = np.zeros(T)
    for m in range(T):
        q -= d[m - 1] + d[T - m]
        s1[m] = q / (T - m)
    return (s1 - 2 * s2) / n


def diffusion_coefficient(msd_values: np.ndarray, times_fs: np.ndarray,
                          fit_from: float = 0.2, fit_to: float = 0.8) -> float:
    """Einstein relation D = slope(MSD)/6 over a fraction of the lags, Å²/fs (×0.1 → cm²/s)."""
    T = len(msd_values)
    lo, hi = int(fit_from * T), max(int(fit_to * T), int(fit_from * T) + 2)
    slope = np.polyfit(times_fs[lo:hi] - times_fs[0], msd_values[lo:hi], 1)[0]
    return float(slope / 6.0)


def vacf(velocities: np.ndarray, masses: np.ndarray | None = None,
         normalize: bool = True) -> np.ndarray:
    """Velocity autocorrelation ``[T]`` of ``velocities [T, n, 3]`` (mass-weighted if given)."""
    v = np.asarray(velocities, float)
    if masses is not None:
        v = v * np.sqrt(np.asarray(masses, float))[None, :, None]
    c = _autocorrelation(v)
    return c / c[0] if normalize else c / v.shape[1]


def vdos(vacf_values: np.ndarray, dt_fs: float) -> tuple[np.ndarray, np.ndarray]:
    """Vibrational density of states: cosine transform of the (Hann-windowed) VACF.

    Returns (frequencies, THz; spectrum normalised to unit area).
    """
    c = np.asarray(vacf_values, float)
    window = np.hanning(2 * len(c))[len(c):]
    spectrum = np.abs(np.fft.rfft(np.concatenate([c * window, (c * window)[-2:0:-1]])))
    freq = np.fft.rfftfreq(2 * len(c) - 2, d=dt_fs) * 1e3
    trapezoid = getattr(np, "trapezoid", None) or np.trapz  # type: ignore[attr-defined]  # numpy >= 2 | < 2
    area = trapezoid(spectrum, freq)
    return freq, spectrum / area
