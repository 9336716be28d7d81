"""The shipped physics assertions catch what they claim to catch."""

import dataclasses

import ase.build
import pytest

from mlpot.models import LennardJones
from mlpot.testing import assert_batched_equals_single


class StressOffInBatches:
    """LJ whose stress is 1e-6 off (relative) whenever it sees more than one system."""

    def __init__(self) -> None:
        self.model = LennardJones(["Ar"], cutoff=7.0).double()
        self.dtype = self.model.dtype

    def __call__(self, graph, compute_forces=True, compute_stress=False):
        out = self.model(graph, compute_forces=compute_forces, compute_stress=compute_stress)
        if compute_stress and graph.num_systems > 1:
            out = dataclasses.replace(out, stress=out.stress * (1 + 1e-6))
        return out


def test_batched_equals_single_compares_stress():
    structures = [
        ase.build.bulk("Ar", "fcc", a=5.3, cubic=True),
        ase.build.bulk("Ar", "fcc", a=5.4).repeat(2),
    ]
    assert (
        assert_batched_equals_single(LennardJones(["Ar"], cutoff=7.0).double(), structures) < 1e-10
    )
    with pytest.raises(AssertionError, match=r"stress rel\. err 1\.0"):
        assert_batched_equals_single(StressOffInBatches(), structures)
