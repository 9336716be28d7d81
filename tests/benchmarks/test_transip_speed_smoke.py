"""The TransIP speed benchmark runs end to end on a tiny molecule (no timing asserted)."""

import numpy as np

from benchmarks.transip_speed import organic_cluster, run


def test_organic_cluster_density_and_spacing():
    atoms = organic_cluster(60, seed=1)
    assert len(atoms) == 60
    d = atoms.get_all_distances()[np.triu_indices(60, 1)]
    assert d.min() >= 1.0
    assert (int(atoms.numbers.sum()) + atoms.info["spin"] - 1) % 2 == 0  # parity


def test_speed_benchmark_smoke(capsys):
    rows = run(sizes=(8,), repeats=1, threads=1, frame_averaging=True)
    assert rows[0].atoms == 8
    assert set(rows[0].times_ms) == {"transip", "equivariant", "transip+fa"}
    assert all(t > 0 for t in rows[0].times_ms.values())
    assert "equivariant/transip" in capsys.readouterr().out
