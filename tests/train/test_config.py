"""Config validation: unknown keys, wrong types, missing files and overrides give clear errors."""

from __future__ import annotations

import pytest
import yaml
from train_helpers import tiny_config
from typer.testing import CliRunner

from mlpot.cli.main import app
from mlpot.train import ConfigError, fit, load_config, parse_config


def test_valid_config_parses(tmp_path, cu_store):
    cfg = parse_config(tiny_config(tmp_path / "run", cu_store))
    assert cfg.data.train == [cu_store]
    assert cfg.train.dtype == "float64"
    assert cfg.model.params["channels"] == 4


def test_unknown_key_is_named(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["optimizer"]["learning_rate"] = 1e-3
    with pytest.raises(ConfigError, match=r"optimizer\.learning_rate: unknown key"):
        parse_config(raw)


def test_wrong_type_names_key_and_value(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["data"]["batch_size"] = "many"
    with pytest.raises(ConfigError, match=r"data\.batch_size: .*integer.*'many'"):
        parse_config(raw)


def test_missing_file_is_named(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["data"]["train"] = [str(tmp_path / "nope.h5")]
    with pytest.raises(ConfigError, match=r"data\.train: no such file or directory: .*nope"):
        parse_config(raw)


def test_every_problem_is_listed(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["loss"]["kind"] = "l1"
    raw["train"]["epochs"] = 0
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert "loss.kind" in str(err.value) and "train.epochs" in str(err.value)


def test_unknown_model_and_param(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["model"]["kind"] = "Transformer9000"
    with pytest.raises(ConfigError, match=r"model\.kind: unknown model 'Transformer9000'"):
        parse_config(raw)
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["model"]["params"]["chanels"] = 8
    with pytest.raises(ConfigError, match=r"model.params: unknown key\(s\) \['chanels'\]"):
        parse_config(raw)


def test_forecaster_loss_settings_in_a_potential_run_are_named(tmp_path, cu_store):
    """A potential's training never reads ``loss.unroll_steps`` and the like: a config that
    sets them (say, copied from a forecaster recipe) fails before anything is written."""
    raw = tiny_config(tmp_path / "run", cu_store, loss={"unroll_steps": 4, "mass_exponent": 0.5})
    with pytest.raises(ConfigError, match=r"loss\.unroll_steps: 4 is for TrajCast") as err:
        fit(parse_config(raw))
    assert "loss.mass_exponent: 0.5" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_set_overrides_and_bad_override(tmp_path, cu_store):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path / "run", cu_store)))
    cfg = load_config(path, ["optimizer.lr=1e-4", "model.params.channels=6", "data.e0={Cu: -1.5}"])
    assert cfg.optimizer.lr == pytest.approx(1e-4)
    assert cfg.model.params["channels"] == 6
    assert cfg.data.e0 == {"Cu": -1.5}
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(path, ["optimizer.lr"])
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")


def test_cli_reports_config_error_and_exit_code(tmp_path, cu_store):
    raw = tiny_config(tmp_path / "run", cu_store)
    raw["loss"]["forcez"] = 1.0
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    assert "loss.forcez: unknown key" in result.output
    assert not (tmp_path / "run").exists()
