"""`AtomicGraph`: the one batched data type that flows through mlpot.

A batch of ``B`` systems with ``N`` atoms in total is stored as flat per-atom
tensors plus per-system tensors; ``system_index[n]`` says which system atom ``n``
belongs to. Conversion from and to :class:`ase.Atoms` happens here and nowhere
else. Units are ASE's: Å, eV, e; the cell is stored as row vectors.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import ase
import numpy as np
import torch
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.singlepoint import SinglePointCalculator

MAX_ATOMIC_NUMBER = 118


@dataclass(frozen=True)
class AtomicGraph:
    """A batch of atomic systems as flat tensors.

    Attributes:
        positions: ``[N, 3]`` cartesian positions, Å.
        atomic_numbers: ``[N]`` int64 atomic numbers.
        system_index: ``[N]`` int64 index of the system each atom belongs to,
            non-decreasing, values in ``[0, B)``.
        cell: ``[B, 3, 3]`` lattice vectors as rows, Å (zeros for molecules).
        pbc: ``[B, 3]`` bool periodicity per lattice direction.
        charge: ``[B]`` int64 total charge, e.
        spin: ``[B]`` int64 spin multiplicity 2S+1 (1 = singlet).
        velocities: optional ``[N, 3]`` velocities, Å/fs.
        edge_index: optional ``[2, E]`` int64 pairs ``(i, j)``: atom ``j`` is a
            neighbour of centre ``i``; the edge vector is
            ``positions[j] - positions[i] + shifts``.
        shifts: optional ``[E, 3]`` cartesian periodic-image shifts, Å.
        energy: optional ``[B]`` label, total energy, eV.
        forces: optional ``[N, 3]`` label, eV/Å.
        stress: optional ``[B, 3, 3]`` label, ASE sign (positive = tensile), eV/Å³.
    """

    positions: torch.Tensor
    atomic_numbers: torch.Tensor
    system_index: torch.Tensor
    cell: torch.Tensor
    pbc: torch.Tensor
    charge: torch.Tensor
    spin: torch.Tensor
    velocities: torch.Tensor | None = None
    edge_index: torch.Tensor | None = None
    shifts: torch.Tensor | None = None
    energy: torch.Tensor | None = None
    forces: torch.Tensor | None = None
    stress: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _validate(self)

    # ------------------------------------------------------------------ sizes
    @property
    def num_atoms(self) -> int:
        """Total number of atoms ``N`` in the batch."""
        return int(self.positions.shape[0])

    @property
    def num_systems(self) -> int:
        """Number of systems ``B`` in the batch."""
        return int(self.cell.shape[0])

    @functools.cached_property
    def atoms_per_system(self) -> torch.Tensor:
        """``[B]`` int64 number of atoms in each system (computed once per graph; copies
        made by ``with_positions``/``with_edges`` share it)."""
        return torch.bincount(self.system_index, minlength=self.num_systems)

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    # ------------------------------------------------------------- conversion
    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> AtomicGraph:
        """Copy to ``device``; floating tensors are cast to ``dtype`` when given."""
        changes: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if value.is_floating_point() and dtype is not None:
                value = value.to(device=device, dtype=dtype)
            else:
                value = value.to(device=device)
            changes[f.name] = value
        return replace(self, **changes)

    def require_edges(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(edge_index [2, E], shifts [E, 3])``; ``ValueError`` when the graph has no
        neighbour list (build one with :func:`mlpot.with_neighbors`)."""
        if self.edge_index is None or self.shifts is None:
            raise ValueError("AtomicGraph has no neighbour list (edge_index/shifts); "
                             "build one with mlpot.with_neighbors(graph, cutoff)")
        return self.edge_index, self.shifts

    def replace(self, **changes: torch.Tensor | None) -> AtomicGraph:
        """A copy with some fields replaced (validated again)."""
        fields_changed: dict[str, Any] = dict(changes)
        return replace(self, **fields_changed)

    def with_positions(self, positions: torch.Tensor, cell: torch.Tensor | None = None
                       ) -> AtomicGraph:
        """A copy with new ``positions`` (and ``cell``) of the same shapes and dtype.

        The MD hot path: only the shapes are checked, not the whole graph again.
        """
        if positions.shape != self.positions.shape or positions.dtype != self.dtype:
            raise ValueError(f"with_positions needs {tuple(self.positions.shape)} "
                             f"{self.dtype} positions, got {tuple(positions.shape)} "
                             f"{positions.dtype}")
        if cell is not None and cell.shape != self.cell.shape:
            raise ValueError(f"with_positions needs a {tuple(self.cell.shape)} cell, "
                             f"got {tuple(cell.shape)}")
        return self._unchecked_copy(positions=positions, cell=self.cell if cell is None else cell)

    def with_edges(self, edge_index: torch.Tensor, shifts: torch.Tensor) -> AtomicGraph:
        """A copy with a new pair list ``edge_index [2, E]``, ``shifts [E, 3]`` (Å).

        The MD hot path: only the pair list's shapes are checked.
        """
        if (edge_index.ndim != 2 or edge_index.shape[0] != 2
                or shifts.shape != (edge_index.shape[1], 3)):
            raise ValueError(f"with_edges needs edge_index [2, E] and shifts [E, 3], got "
                             f"{tuple(edge_index.shape)} and {tuple(shifts.shape)}")
        return self._unchecked_copy(edge_index=edge_index, shifts=shifts)

    def _unchecked_copy(self, **changes: torch.Tensor) -> AtomicGraph:
        new = object.__new__(AtomicGraph)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new

    def check_finite(self) -> None:
        """Raise ``ValueError`` naming the first atom with a NaN/inf position or cell.

        Not run on every construction (it synchronises a GPU); readers, the ASE
        calculator and MD drivers call it at their boundaries.
        """
        finite = torch.isfinite(self.positions.detach()).all(dim=1)
        if not bool(finite.all()):
            bad = int((~finite).nonzero()[0, 0])
            raise ValueError(f"non-finite position at atom {bad} "
                             f"(system {int(self.system_index[bad])})")
        if not bool(torch.isfinite(self.cell.detach()).all()):
            raise ValueError("cell contains NaN or inf")

    def volume(self) -> torch.Tensor:
        """``[B]`` absolute cell volume, Å³ (0 for molecules without a cell)."""
        return torch.linalg.det(self.cell).abs()

    @classmethod
    def from_atoms(
        cls,
        atoms: ase.Atoms | Sequence[ase.Atoms],
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        read_labels: bool = True,
    ) -> AtomicGraph:
        """Build a batch from one or several :class:`ase.Atoms`.

        Charge and spin come from ``atoms.info["charge"]`` and ``atoms.info["spin"]``
        (defaults 0 and 1). Velocities are taken when any atom has a non-zero
        momentum. With ``read_labels`` the energy/forces/stress of an attached
        calculator (e.g. a ``SinglePointCalculator``) become labels.
        """
        dtype = dtype or torch.get_default_dtype()
        atoms_list = [atoms] if isinstance(atoms, ase.Atoms) else list(atoms)
        if not atoms_list:
            raise ValueError("AtomicGraph.from_atoms: got an empty list of structures")
        parts = [_atoms_arrays(a, k, read_labels) for k, a in enumerate(atoms_list)]
        cat = np.concatenate
        has_vel = any(p["velocities"] is not None for p in parts)
        labels = {}
        for key in ("energy", "forces", "stress"):
            if all(p[key] is not None for p in parts):
                labels[key] = torch.as_tensor(
                    cat([p[key] for p in parts]) if key == "forces" else
                    np.stack([p[key] for p in parts]), dtype=dtype, device=device)
        graph = cls(
            positions=torch.as_tensor(cat([p["positions"] for p in parts]), dtype=dtype,
                                      device=device),
            atomic_numbers=torch.as_tensor(cat([p["numbers"] for p in parts]),
                                           dtype=torch.int64, device=device),
            system_index=torch.as_tensor(
                cat([np.full(len(p["numbers"]), k) for k, p in enumerate(parts)]),
                dtype=torch.int64, device=device),
            cell=torch.as_tensor(np.stack([p["cell"] for p in parts]), dtype=dtype,
                                 device=device),
            pbc=torch.as_tensor(np.stack([p["pbc"] for p in parts]), dtype=torch.bool,
                                device=device),
            charge=torch.as_tensor([p["charge"] for p in parts], dtype=torch.int64,
                                   device=device),
            spin=torch.as_tensor([p["spin"] for p in parts], dtype=torch.int64, device=device),
            velocities=torch.as_tensor(
                cat([p["velocities"] if p["velocities"] is not None
                     else np.zeros((len(p["numbers"]), 3)) for p in parts]),
                dtype=dtype, device=device) if has_vel else None,
            **labels,
        )
        graph.check_finite()
        return graph

    def to_atoms(self) -> list[ase.Atoms]:
        """Split the batch into a list of :class:`ase.Atoms` (labels attached)."""
        out = []
        pos = self.positions.detach().cpu().double().numpy()
        nums = self.atomic_numbers.cpu().numpy()
        sys_idx = self.system_index.cpu().numpy()
        for b in range(self.num_systems):
            mask = sys_idx == b
            atoms = ase.Atoms(
                numbers=nums[mask], positions=pos[mask],
                cell=self.cell[b].detach().cpu().double().numpy(),
                pbc=self.pbc[b].cpu().numpy(),
            )
            atoms.info["charge"] = int(self.charge[b])
            atoms.info["spin"] = int(self.spin[b])
            if self.velocities is not None:
                atoms.set_velocities(
                    self.velocities[mask].detach().cpu().double().numpy() * _ASE_PER_FS)
            results: dict[str, Any] = {}
            if self.energy is not None:
                results["energy"] = float(self.energy[b])
            if self.forces is not None:
                results["forces"] = self.forces[torch.as_tensor(mask)].detach().cpu().double(
                    ).numpy()
            if self.stress is not None:
                s = self.stress[b].detach().cpu().double().numpy()
                results["stress"] = np.array(
                    [s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])
            if results:
                atoms.calc = SinglePointCalculator(atoms, **results)
            out.append(atoms)
        return out


def system_sum(values: torch.Tensor, system_index: torch.Tensor, num_systems: int) -> torch.Tensor:
    """Per-atom ``values [N, ...]`` summed per system, ``[B, ...]`` (``system_index [N]``:
    :attr:`AtomicGraph.system_index`)."""
    out = torch.zeros((num_systems, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add(0, system_index, values)


def collate(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
    """Concatenate several batches into one (edges and labels included when all have them)."""
    if not graphs:
        raise ValueError("collate: got no graphs")
    atom_offsets = np.cumsum([0] + [g.num_atoms for g in graphs])
    sys_offsets = np.cumsum([0] + [g.num_systems for g in graphs])
    values: dict[str, Any] = {}
    for f in fields(AtomicGraph):
        items = [getattr(g, f.name) for g in graphs]
        if any(v is None for v in items):
            values[f.name] = None
            continue
        if f.name == "system_index":
            items = [v + int(o) for v, o in zip(items, sys_offsets, strict=False)]
        elif f.name == "edge_index":
            items = [v + int(o) for v, o in zip(items, atom_offsets, strict=False)]
        values[f.name] = torch.cat(items, dim=1 if f.name == "edge_index" else 0)
    return AtomicGraph(**values)


# ASE velocities are Å per ASE time unit; mlpot uses Å/fs.
_ASE_PER_FS = 1.0 / ase.units.fs


def _atoms_arrays(atoms: ase.Atoms, k: int, read_labels: bool) -> dict:
    """numpy arrays of one structure, with checks that name the structure."""
    numbers = atoms.get_atomic_numbers()
    bad = (numbers < 1) | (numbers > MAX_ATOMIC_NUMBER)
    if bad.any():
        raise ValueError(f"structure {k}: invalid atomic number {numbers[bad][0]} "
                         f"at atom {int(np.flatnonzero(bad)[0])}")
    positions = atoms.get_positions()
    momenta = atoms.get_momenta() if atoms.has("momenta") else None
    velocities = None
    if momenta is not None and np.any(momenta != 0):
        velocities = atoms.get_velocities() / _ASE_PER_FS
    charge = atoms.info.get("charge", 0)
    spin = atoms.info.get("spin", 1)
    if int(spin) < 1:
        raise ValueError(f"structure {k}: spin multiplicity must be >= 1, got {spin}")
    labels = {"energy": None, "forces": None, "stress": None}
    if read_labels and atoms.calc is not None:
        for key in labels:
            try:
                value = atoms.calc.get_property(key, atoms, allow_calculation=False)
            except (PropertyNotImplementedError, KeyError, AttributeError, RuntimeError):
                value = None
            if value is not None and key == "stress":
                value = _voigt_to_matrix(np.asarray(value))
            labels[key] = value
    return {"positions": positions, "numbers": numbers, "cell": np.asarray(atoms.cell[:]),
            "pbc": np.asarray(atoms.pbc, dtype=bool), "charge": int(charge),
            "spin": int(spin), "velocities": velocities, **labels}


def _voigt_to_matrix(stress: np.ndarray) -> np.ndarray:
    """ASE Voigt-6 (xx, yy, zz, yz, xz, xy) or 3x3 stress → 3x3."""
    if stress.shape == (3, 3):
        return stress
    xx, yy, zz, yz, xz, xy = stress
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def _validate(g: AtomicGraph) -> None:
    """Shape, dtype and finiteness checks; errors name the offending field."""
    n = g.positions.shape[0]
    if g.positions.ndim != 2 or g.positions.shape[1] != 3:
        raise ValueError(f"AtomicGraph.positions must be [N, 3], got {tuple(g.positions.shape)}")
    if not g.positions.is_floating_point():
        raise TypeError("AtomicGraph.positions must be a floating-point tensor")
    for name in ("atomic_numbers", "system_index"):
        t = getattr(g, name)
        if t.shape != (n,):
            raise ValueError(f"AtomicGraph.{name} must be [{n}], got {tuple(t.shape)}")
    b = g.cell.shape[0]
    if g.cell.shape != (b, 3, 3):
        raise ValueError(f"AtomicGraph.cell must be [B, 3, 3], got {tuple(g.cell.shape)}")
    shape: tuple[int, ...]
    for name, shape in (("pbc", (b, 3)), ("charge", (b,)), ("spin", (b,))):
        t = getattr(g, name)
        if tuple(t.shape) != shape:
            raise ValueError(f"AtomicGraph.{name} must be {list(shape)}, got {tuple(t.shape)}")
    for name, shape in (("velocities", (n, 3)), ("forces", (n, 3)), ("energy", (b,)),
                        ("stress", (b, 3, 3))):
        t = getattr(g, name)
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"AtomicGraph.{name} must be {list(shape)}, got {tuple(t.shape)}")
    if (g.edge_index is None) != (g.shifts is None):
        raise ValueError("AtomicGraph.edge_index and shifts must be given together")
    if g.edge_index is not None and g.shifts is not None and (
        g.edge_index.ndim != 2 or g.edge_index.shape[0] != 2
        or g.shifts.shape != (g.edge_index.shape[1], 3)
    ):
        raise ValueError(f"AtomicGraph.edge_index must be [2, E] and shifts [E, 3], got "
                         f"{tuple(g.edge_index.shape)} and {tuple(g.shifts.shape)}")
