"""``mlpot data convert`` / ``inspect``."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from mlpot.cli.main import app
from mlpot.datasets import PackedStore, read


def test_convert_and_inspect(tmp_path, mptrj_file):
    path, data = mptrj_file
    out = tmp_path / "out.h5"
    runner = CliRunner()
    result = runner.invoke(app, ["data", "convert", str(path), str(out),
                                 "--energy-key", "corrected_total_energy"])
    assert result.exit_code == 0, result.output
    n_frames = sum(len(f) for f in data.values())
    assert f"wrote {n_frames} structures" in result.output
    store = PackedStore(out)
    assert len(store) == n_frames
    first = next(iter(next(iter(data.values())).values()))
    assert store[0].get_potential_energy() == first["corrected_total_energy"]
    result = runner.invoke(app, ["data", "inspect", str(out), "--cutoffs", "3,5"])
    assert result.exit_code == 0, result.output
    assert f"{n_frames} structures" in result.output
    assert "atoms per structure" in result.output
    assert "neighbours per atom" in result.output
    out2 = tmp_path / "default.h5"
    assert runner.invoke(app, ["data", "convert", str(path), str(out2)]).exit_code == 0
    stored = runner.invoke(app, ["data", "inspect", str(out2)])
    direct = runner.invoke(app, ["data", "inspect", str(path)])
    assert direct.output.split("\n", 1)[1] == stored.output.split("\n", 1)[1]
    assert "Li" in direct.output


def test_bad_input_one_line_nonzero_exit_no_output_file(tmp_path, mptrj_file):
    _, data = mptrj_file
    mp_id = next(iter(data))
    frame_id = next(iter(data[mp_id]))
    del data[mp_id][frame_id]["force"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    out = tmp_path / "out.h5"
    result = CliRunner().invoke(app, ["data", "convert", str(bad), str(out)])
    assert result.exit_code == 1
    assert "bad.json" in result.output
    assert f"{mp_id}/{frame_id}" in result.output
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".h5" or "tmp" in p.name] == []
    result = CliRunner().invoke(app, ["data", "convert", str(bad), str(out), "--skip-invalid"])
    assert result.exit_code == 0
    assert "skipped 1 invalid" in result.output
    assert len(list(read(out))) == sum(len(f) for f in data.values()) - 1
