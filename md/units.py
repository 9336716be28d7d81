"""Unit conversions of the MD engine, defined once, from :mod:`ase.units`.

mlpot's MD units: positions Å, time fs, masses amu, momenta amu·Å/fs, energies eV,
temperature K, stress eV/Å³ (ASE sign). Kinetic quantities m·v² come out in
amu·Å²/fs²; multiplying by :data:`MVV2E` turns them into eV.
"""

from __future__ import annotations

import ase.units

#: 1 amu·Å²/fs² expressed in eV (≈ 103.6427).
MVV2E: float = 1.0 / ase.units.fs**2

#: Boltzmann constant, eV/K.
KB: float = ase.units.kB

#: 1 GPa in eV/Å³ (≈ 6.2415e-3).
GPA: float = ase.units.GPa

#: 1 bar in eV/Å³.
BAR: float = ase.units.bar

#: femtoseconds per nanosecond.
FS_PER_NS: float = 1.0e6


def gpa_to_ev_per_a3(pressure_gpa: float) -> float:
    """User-facing GPa → internal eV/Å³ (the one conversion the CLI uses)."""
    return pressure_gpa * GPA
