"""Reference trajectories for forecasters: frames every forecast interval in the packed
store, read back as (frame, next frame) pairs whose targets are the reference dynamics.

Mutants checked: pairs allowed across trajectory boundaries (``same`` without the group
comparison) → pair-count test; stored frames every ``stride - 1`` steps → the
re-integration test.
"""

from __future__ import annotations

import ase
import ase.build
import numpy as np
import pytest
import torch
from ase import units
from ase.calculators.emt import EMT
from ase.md.verlet import VelocityVerlet

from mlpot.datasets.errors import DataFormatError
from mlpot.datasets.forecast import ForecastPairs, collate_samples
from mlpot.datasets.reference.trajectory import copper_emt_reference, reference_trajectories
from mlpot.datasets.store import PackedStore, write_store


@pytest.fixture(scope="module")
def cu_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("traj") / "cu.h5"
    result = copper_emt_reference(
        path,
        size=2,
        temperatures=(300.0, 600.0),
        forecast_fs=5.0,
        frames=4,
        trajectories_per_temperature=2,
        equilibration_fs=20.0,
    )
    assert result.structures == 16
    return path


def test_pairs_stay_inside_trajectories(cu_store):
    pairs = ForecastPairs(cu_store)
    assert pairs.forecast_fs == 5.0
    assert len(pairs) == 4 * 3  # 4 trajectories of 4 frames
    store = PackedStore(cu_store)
    groups = store.read_array("group")
    assert all(groups[k] == groups[k + 1] for k in pairs.pairs)
    sample = pairs[1]
    a, b = store.record(int(pairs.pairs[1])), store.record(int(pairs.pairs[1]) + 1)
    np.testing.assert_array_equal(sample.displacement.numpy(), b.positions - a.positions)
    np.testing.assert_array_equal(sample.velocities.numpy(), b.velocities)
    np.testing.assert_array_equal(sample.graph.velocities.numpy(), a.velocities)
    batch = collate_samples([pairs[0], pairs[5]])
    assert batch.graph.num_systems == 2 and batch.displacement.shape == (64, 3)
    dx_rms, v_rms = pairs.rms()
    assert 0.001 < v_rms < 0.005  # Cu, ~150-600 K (half the start T goes into E_pot)
    assert dx_rms == pytest.approx(5.0 * v_rms, rel=0.2)  # nearly ballistic over 5 fs


def test_targets_are_the_reference_dynamics(cu_store):
    """Re-integrating frame k with EMT for Δt reproduces frame k + 1."""
    pairs = ForecastPairs(cu_store)
    store = PackedStore(cu_store)
    k = int(pairs.pairs[2])
    atoms = store[k]
    atoms.calc = EMT()
    VelocityVerlet(atoms, 1.0 * units.fs).run(5)
    sample = pairs[2]
    np.testing.assert_allclose(
        atoms.positions - store.record(k).positions, sample.displacement.numpy(), atol=1e-10
    )
    np.testing.assert_allclose(
        atoms.get_velocities() * units.fs, sample.velocities.numpy(), atol=1e-10
    )


def test_bad_input(tmp_path):
    cu = ase.build.bulk("Cu", "fcc", a=3.61, cubic=True)
    with pytest.raises(ValueError, match="not a multiple"):
        reference_trajectories(tmp_path / "x.h5", cu, EMT, "cu", [300.0], 2.0, 5.0, 3)
    with pytest.raises(ValueError, match="at least 2 frames"):
        reference_trajectories(tmp_path / "x.h5", cu, EMT, "cu", [300.0], 1.0, 5.0, 1)
    plain = tmp_path / "plain.h5"
    write_store(plain, [cu, cu])
    with pytest.raises(DataFormatError, match="no velocities"):
        ForecastPairs(plain)
    assert not (tmp_path / "x.h5").exists()
    torch.manual_seed(0)
