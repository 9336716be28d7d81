import pickle

import ase.build
import pytest
import torch

from mlpot import AtomicGraph, load_model, save_model
from mlpot.checkpoint import FORMAT
from mlpot.models import LennardJones


@pytest.fixture
def model():
    m = LennardJones(["Ar", "Kr"], epsilon=0.012, sigma=3.5, cutoff=7.0, onset=5.0)
    m.set_reference_energies({"Ar": -0.5, "Kr": -0.75})
    return m


def test_round_trip_is_bitwise_identical(model, tmp_path):
    atoms = ase.build.bulk("Ar", "fcc", a=5.3).repeat(2)
    atoms.numbers[::2] = 36
    atoms.rattle(0.1, seed=0)
    path = save_model(model, tmp_path / "lj.pt")
    loaded = load_model(path)
    assert type(loaded) is LennardJones
    assert loaded.config == model.config
    assert loaded.species == ["Ar", "Kr"]
    for dtype in (torch.float32, torch.float64):
        graph = AtomicGraph.from_atoms(atoms, dtype=dtype)
        a = model.to(dtype)(graph, compute_stress=True)
        b = loaded.to(dtype)(graph, compute_stress=True)
        assert torch.equal(a.energy, b.energy)
        assert torch.equal(a.forces, b.forces)
        assert torch.equal(a.stress, b.stress)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == FORMAT
    assert payload["e0"] == [-0.5, -0.75]
    assert payload["units"]["energy"] == "eV"
    assert "mlpot_version" in payload


def test_truncated_and_corrupt_files_give_clear_errors(model, tmp_path):
    path = save_model(model, tmp_path / "lj.pt")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt: not a readable mlpot checkpoint"):
        load_model(truncated)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match=r"corrupt\.pt: not a readable mlpot checkpoint"):
        load_model(corrupt)


def test_foreign_files_are_rejected_without_running_code(tmp_path):
    plain = tmp_path / "state_dict.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(ValueError, match="not an mlpot checkpoint"):
        load_model(plain)

    class Exploit:
        def __reduce__(self):
            return (open, (str(tmp_path / "pwned"), "w"))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": FORMAT, "x": Exploit()}))
    with pytest.raises(ValueError, match=r"evil\.pt"):
        load_model(evil)
    assert not (tmp_path / "pwned").exists()


def test_unknown_class_and_missing_file(model, tmp_path):
    path = save_model(model, tmp_path / "lj.pt")
    payload = torch.load(path, weights_only=True)
    payload["model_class"] = "os.system"
    bad = tmp_path / "bad_class.pt"
    torch.save(payload, bad)
    with pytest.raises(ValueError, match=r"unknown model class 'os\.system'"):
        load_model(bad)
    with pytest.raises(FileNotFoundError, match="no checkpoint file or shipped model named"):
        load_model(tmp_path / "does_not_exist.pt")


def test_failed_save_leaves_previous_file_intact(model, tmp_path, monkeypatch):
    path = save_model(model, tmp_path / "lj.pt")
    before = path.read_bytes()

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_model(model, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lj.pt"]


def test_saved_file_permissions_follow_umask(model, tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = save_model(model, tmp_path / "perm.pt")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_training_state_rides_along_and_model_only_files_refuse_resume(model, tmp_path):
    from mlpot.checkpoint import load_training_state

    state = {"progress": {"epoch": 2, "global_step": 17}, "rng": torch.get_rng_state(),
             "optimizer": {"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": []}}
    path = save_model(model, tmp_path / "resumable.pt", training_state=state)
    loaded = load_training_state(path)
    assert loaded["progress"] == {"epoch": 2, "global_step": 17}
    assert torch.equal(loaded["rng"], state["rng"])
    assert torch.equal(loaded["optimizer"]["state"][0]["exp_avg"], torch.ones(3))
    assert load_model(path).config == model.config  # still an ordinary model checkpoint
    plain = save_model(model, tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="model-only checkpoint"):
        load_training_state(plain)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable mlpot checkpoint"):
        load_training_state(tmp_path / "junk.pt")


def test_shipped_table_and_alias():
    from mlpot.checkpoint import ALIASES, SHIPPED_MODELS, shipped_models

    shipped = shipped_models()
    for name, (filename, _) in SHIPPED_MODELS.items():
        if name in shipped:
            assert shipped[name].name == filename
    for alias, target in ALIASES.items():
        assert target in SHIPPED_MODELS
        if target in shipped:
            assert shipped[alias] == shipped[target]
