"""The data-throughput benchmark runs end to end on a tiny input (no timing asserted)."""

from __future__ import annotations

from benchmarks.data_throughput import run


def test_data_throughput_tiny(tmp_path):
    result = run(json_mb=0.3, n_random=20, repeats=1, workdir=str(tmp_path))
    assert result["frames"] > 20
    assert result["json_mb"] >= 0.3
    assert set(result["random_access"]) >= {"h5", "aselmdb", "extxyz (indexed)"}
    assert list(tmp_path.iterdir()) == []  # everything generated is deleted
