"""Rotation/translation/permutation/reflection behaviour of EquivariantPotential.

Measured grid-MLP aliasing at initialisation (float64, test model: channels 6, lmax 2,
hidden_lmax 1, correlation 3; 6 random rotations/reflections): with the default
grid_oversample = 4, energy ≤ 3e-6 and forces ≤ 7e-5 relative (molecule; ≤ 1e-6 for
the Cu–Ni cell); with grid_oversample = 0 (the exact-product grid), energy ≤ 7e-5 and
forces ≤ 2.5e-3. The bound asserted is GRID_MLP_BOUND. The polynomial (product) path
is exact: 1e-10.
"""

import numpy as np
import pytest
import torch
from equivariant_helpers import chiral, cuni_cell, organic, small_model

from mlpot import AtomicGraph
from mlpot.testing import assert_equivariant

GRID_MLP_BOUND = 1e-3


@pytest.mark.parametrize("backend", ["cg", "grid"])
@pytest.mark.parametrize("self_mlp", [False, True])
@pytest.mark.parametrize("reflect", [False, True])
def test_equivariance(backend, self_mlp, reflect):
    model = small_model(backend, self_mlp)
    exact = backend == "cg" or not self_mlp
    rtol = 1e-10 if exact else GRID_MLP_BOUND
    for atoms in (cuni_cell(), organic()):
        e_err, f_err = assert_equivariant(model, atoms, seed=3, rtol=rtol, reflect=reflect)
        if not exact:
            assert max(e_err, f_err) > 1e-12  # the bound is a real (aliasing) error


def test_grid_mlp_aliasing_shrinks_with_oversampling():
    errs = []
    for extra in (0, 8):
        model = small_model("grid", True, grid_oversample=extra)
        errs.append(max(assert_equivariant(model, organic(), seed=5, rtol=1.0)))
    assert errs[1] < errs[0]


@pytest.mark.parametrize("backend", ["cg", "grid"])
def test_mirror_images_have_equal_energy(backend):
    """Natural-parity features only: the model cannot tell enantiomers apart."""
    model = small_model(backend, True)
    atoms = chiral()
    mirror = atoms.copy()
    mirror.positions[:, 0] *= -1
    e = [float(model(AtomicGraph.from_atoms(a, dtype=torch.float64)).energy[0])
         for a in (atoms, mirror)]
    rtol = 1e-12 if backend == "cg" else GRID_MLP_BOUND
    assert abs(e[0] - e[1]) <= rtol * abs(e[0])


def test_grid_polynomial_path_equals_cg_backend():
    grid = small_model("grid", False)
    cg = small_model("cg", False)
    cg.load_state_dict(grid.state_dict())
    for atoms in (cuni_cell(), organic()):
        g = AtomicGraph.from_atoms(atoms, dtype=torch.float64)
        a, b = grid(g, compute_stress=bool(atoms.pbc.all())), cg(g)
        np.testing.assert_allclose(a.energy.numpy(), b.energy.numpy(), rtol=1e-12)
        np.testing.assert_allclose(a.forces.numpy(), b.forces.numpy(), atol=1e-12)


@pytest.mark.parametrize("kwargs", [
    {"lmax": 0, "hidden_lmax": 0, "correlation": 2},
    {"lmax": 1, "hidden_lmax": 1, "correlation": 1, "num_layers": 1},
    {"lmax": 3, "hidden_lmax": 3, "correlation": 2, "num_layers": 3},
    {"lmax": 2, "hidden_lmax": 0, "correlation": 4},
])
def test_other_shapes_are_exact_without_mlp(kwargs):
    grid, cg = small_model("grid", False, **kwargs), small_model("cg", False, **kwargs)
    cg.load_state_dict(grid.state_dict())
    atoms = organic()
    assert_equivariant(grid, atoms, seed=1, rtol=1e-10, reflect=True)
    g = AtomicGraph.from_atoms(atoms, dtype=torch.float64)
    np.testing.assert_allclose(grid(g).forces.numpy(), cg(g).forces.numpy(), atol=1e-11)
