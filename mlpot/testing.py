"""Physics checks every potential must pass; the test-suite runs each model through them.

All checks run in the model's dtype; use float64 models for tight tolerances.
Each returns the measured error so tests can report it, and raises
``AssertionError`` with the numbers when the bound is exceeded.
"""

from __future__ import annotations

import ase
import numpy as np

from mlpot.graph import AtomicGraph
from mlpot.models.base import Potential


def _energy(model: Potential, atoms: ase.Atoms) -> float:
    graph = AtomicGraph.from_atoms(atoms, dtype=model.dtype, read_labels=False)
    return float(model(graph, compute_forces=False).energy[0])


def _predict(model: Potential, atoms: ase.Atoms, stress: bool = False):
    graph = AtomicGraph.from_atoms(atoms, dtype=model.dtype, read_labels=False)
    return model(graph, compute_forces=True, compute_stress=stress)


def assert_forces_match_finite_differences(
    model: Potential, atoms: ase.Atoms, step: float = 1e-5, rtol: float = 1e-6
) -> float:
    """Central differences of the energy vs autograd forces.

    Error = max |F_fd − F| / max |F|. Returns the error.
    """
    forces = _predict(model, atoms).forces.detach().double().numpy()
    fd = np.zeros_like(forces)
    for n in range(len(atoms)):
        for a in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[n, a] += step
            minus.positions[n, a] -= step
            fd[n, a] = -(_energy(model, plus) - _energy(model, minus)) / (2 * step)
    err = float(np.abs(fd - forces).max() / max(np.abs(forces).max(), 1e-12))
    assert err < rtol, f"forces differ from finite differences: rel. err {err:.2e} >= {rtol}"
    return err


def _strained(atoms: ase.Atoms, deformation: np.ndarray) -> ase.Atoms:
    out = atoms.copy()
    out.set_cell(atoms.cell[:] @ deformation, scale_atoms=False)
    out.positions = atoms.positions @ deformation
    return out


def assert_stress_matches_finite_differences(
    model: Potential, atoms: ase.Atoms, step: float = 1e-5, rtol: float = 1e-6
) -> float:
    """σ_ab = (1/V) ∂E/∂ε_ab by central differences of symmetric strains vs autograd.

    Error = max |σ_fd − σ| / max |σ|. Returns the error.
    """
    stress = _predict(model, atoms, stress=True).stress[0].detach().double().numpy()
    fd = np.zeros((3, 3))
    volume = atoms.get_volume()
    for a in range(3):
        for b in range(3):
            e = np.zeros((3, 3))
            e[a, b] += 0.5 * step
            e[b, a] += 0.5 * step
            ep = _energy(model, _strained(atoms, np.eye(3) + e))
            em = _energy(model, _strained(atoms, np.eye(3) - e))
            fd[a, b] = (ep - em) / (2 * step) / volume
    err = float(np.abs(fd - stress).max() / max(np.abs(stress).max(), 1e-12))
    assert err < rtol, f"stress differs from finite differences: rel. err {err:.2e} >= {rtol}"
    return err


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    """A uniformly random 3×3 rotation (times −1 when ``reflect``)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return -q if reflect else q


def assert_equivariant(
    model: Potential, atoms: ase.Atoms, seed: int = 0, rtol: float = 1e-10,
    reflect: bool = False,
) -> tuple[float, float]:
    """Energy invariant and forces/stress equivariant under rotation, translation, permutation.

    Rotates positions and cell by a random R (row vectors: r → r Rᵀ), translates by a
    random vector and permutes atoms. Returns (energy rel. err, force rel. err).
    """
    rng = np.random.default_rng(seed)
    R = random_rotation(rng, reflect)
    perm = rng.permutation(len(atoms))
    moved = atoms.copy()
    moved.set_cell(atoms.cell[:] @ R.T, scale_atoms=False)
    moved.positions = atoms.positions @ R.T + rng.normal(size=3)
    moved = moved[perm]
    stress = bool(atoms.pbc.all())
    ref, out = _predict(model, atoms, stress), _predict(model, moved, stress)
    e_ref, e_out = float(ref.energy[0]), float(out.energy[0])
    e_err = abs(e_out - e_ref) / max(abs(e_ref), 1e-12)
    f_ref = ref.forces.detach().double().numpy()
    f_out = out.forces.detach().double().numpy()
    f_err = float(np.abs(f_out - (f_ref @ R.T)[perm]).max() / max(np.abs(f_ref).max(), 1e-12))
    assert e_err < rtol, f"energy not invariant: rel. err {e_err:.2e} >= {rtol}"
    assert f_err < rtol, f"forces not equivariant: rel. err {f_err:.2e} >= {rtol}"
    if stress:
        s_ref = ref.stress[0].detach().double().numpy()
        s_out = out.stress[0].detach().double().numpy()
        s_err = float(np.abs(s_out - R @ s_ref @ R.T).max() / max(np.abs(s_ref).max(), 1e-12))
        assert s_err < rtol, f"stress not equivariant: rel. err {s_err:.2e} >= {rtol}"
    return e_err, f_err


def assert_extensive(
    model: Potential, atoms: ase.Atoms, repeat: tuple[int, int, int] = (2, 2, 2),
    rtol: float = 1e-10,
) -> float:
    """A supercell's energy is the cell's energy times the number of copies."""
    copies = int(np.prod(repeat))
    e1, eN = _energy(model, atoms), _energy(model, atoms.repeat(repeat))
    err = abs(eN - copies * e1) / max(abs(copies * e1), 1e-12)
    assert err < rtol, f"energy not extensive: E(super)={eN}, {copies}·E={copies * e1}"
    return err


def assert_batched_equals_single(
    model: Potential, structures: list[ase.Atoms], rtol: float = 1e-10
) -> float:
    """Predicting a batch gives the same energies, forces and stress (of every system with
    a cell periodic in 3-D; others have none) as one system at a time. Returns the
    largest relative error."""
    graph = AtomicGraph.from_atoms(structures, dtype=model.dtype, read_labels=False)
    batch = model(graph, compute_stress=True)
    errors = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    start = 0
    for k, atoms in enumerate(structures):
        periodic = bool(np.all(atoms.pbc))
        single = _predict(model, atoms, stress=periodic)
        n = len(atoms)
        errors["energy"] = max(errors["energy"], abs(float(batch.energy[k] - single.energy[0]))
                               / max(abs(float(single.energy[0])), 1e-12))
        scale = max(float(single.forces.abs().max()), 1e-12)
        errors["forces"] = max(errors["forces"], float(
            (batch.forces[start:start + n] - single.forces).abs().max()) / scale)
        if periodic:
            scale = max(float(single.stress.abs().max()), 1e-12)
            errors["stress"] = max(errors["stress"], float(
                (batch.stress[k] - single.stress[0]).abs().max()) / scale)
        start += n
    err = max(errors.values())
    assert err < rtol, "batched != single: " + ", ".join(
        f"{name} rel. err {value:.2e}" for name, value in errors.items())
    return err


def assert_smooth_at_cutoff(
    model: Potential, numbers: tuple[int, int], points: int = 201, width: float = 0.05,
    atol: float = 1e-6,
) -> float:
    """Dimer energy and force reach zero continuously at the cutoff.

    Scans r over [r_c − width, r_c + width] plus r_c ∓ 1e-7 Å. Asserts that F and
    E − E(separated) vanish beyond r_c, that their left limits at r_c are below ``atol`` (no jump),
    and that E changes between scan points no faster than the force allows
    (|ΔE| ≤ 1.5·Δr·max|F|, which a step in E would break). Returns |F(r_c − 1e-7)|.
    """
    rc = model.cutoff
    rs = np.concatenate([np.linspace(rc - width, rc + width, points), [rc - 1e-7, rc + 1e-7]])
    structures = [ase.Atoms(numbers=list(numbers), positions=[[0, 0, 0], [r, 0, 0]])
                  for r in rs]
    out = model(AtomicGraph.from_atoms(structures, dtype=model.dtype, read_labels=False))
    e = out.energy.detach().double().numpy()
    e = e - e[points - 1]  # energy of the separated pair
    f = out.forces.detach().double().numpy()[1::2, 0]
    beyond = rs > rc
    assert np.abs(e[beyond]).max() < atol, "energy does not vanish beyond the cutoff"
    assert np.abs(f[beyond]).max() < atol, "force does not vanish beyond the cutoff"
    left_e, left_f = abs(e[-2]), abs(f[-2])
    assert left_e < atol and left_f < atol, \
        f"jump at the cutoff: E(r_c-) = {left_e:.2e} eV, F(r_c-) = {left_f:.2e} eV/Å"
    de = np.abs(np.diff(e[:points]))
    bound = 1.5 * (rs[1] - rs[0]) * np.abs(f[:points]).max() + 1e-12
    assert de.max() <= bound, f"energy jumps by {de.max():.2e} between scan points"
    return float(left_f)
