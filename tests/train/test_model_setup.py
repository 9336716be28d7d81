"""Rebuilding a trained model on a finer grid keeps its weights and its predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from train_helpers import TINY_MODEL

from mlpot import AtomicGraph
from mlpot.datasets import read
from mlpot.models import EquivariantPotential
from mlpot.train.evaluate import equivariance_error
from mlpot.train.model_setup import rebuild_model


def test_rebuild_keeps_parameters_and_lowers_aliasing(cu_store):
    torch.manual_seed(0)
    model = EquivariantPotential(["Cu"], **{**TINY_MODEL, "grid_oversample": 0}).double()
    with torch.no_grad():  # large MLP weights alias the way trained ones do
        for layer in model.layers:
            layer.mlp_w1.mul_(8.0)
            layer.mlp_w2.mul_(8.0)
    model.e0.fill_(-3.0)
    fine = rebuild_model(model, grid_oversample=16)
    assert fine.config.grid_oversample == 16
    for (name, a), b in zip(model.named_parameters(), fine.parameters(), strict=True):
        assert torch.equal(a, b), name
    assert torch.equal(fine.e0, model.e0)
    assert fine.layers[0].to_grid.shape[1] > model.layers[0].to_grid.shape[1]
    structures = list(read(cu_store))[:4]
    coarse = equivariance_error(model, structures, 2, np.random.default_rng(0))
    fine_err = equivariance_error(fine, structures, 2, np.random.default_rng(0))
    assert fine_err.forces_mean < 0.1 * coarse.forces_mean
    g = AtomicGraph.from_atoms(structures[0], dtype=torch.float64)
    e_coarse, e_fine = model(g).energy, fine(g).energy
    assert torch.allclose(e_coarse, e_fine, rtol=0, atol=1e-3 * len(structures[0]))


def test_rebuild_refuses_shape_changes():
    model = EquivariantPotential(["Cu"], **TINY_MODEL)
    with pytest.raises(ValueError, match=r"only \['grid_oversample'\] may change"):
        rebuild_model(model, channels=8)
