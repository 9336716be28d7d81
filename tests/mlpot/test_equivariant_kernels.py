"""EquivariantPotential with the Triton kernels (Triton's CPU interpreter) equals the
torch reference: energy, forces, stress, and a force-training step.

Without a GPU the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
by ``tests/conftest.py`` before anything imports Triton); with one, on CUDA tensors.
"""

import pytest
import torch
from equivariant_helpers import cuni_cell, organic, small_model

from mlpot import AtomicGraph, load_model, save_model
from mlpot.kernels.dispatch import KernelUnavailableError

pytest.importorskip("triton")

REL = 1e-5
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _float32_model(kernels):
    return small_model("grid", True, kernels=kernels).float().to(DEVICE)


def _close(a: torch.Tensor, b: torch.Tensor, rel: float = REL) -> None:
    scale = float(b.abs().max())
    assert float((a - b).abs().max()) <= rel * max(scale, 1e-30), (a, b)


def _graph():
    return AtomicGraph.from_atoms([cuni_cell(), organic()[:6]], dtype=torch.float32)


def _count_calls(monkeypatch, module, name, calls):
    """Record in ``calls`` every call of ``module.name`` (dispatch looks it up per call)."""
    original = getattr(module, name)

    def counted(*args):
        calls.append(name)
        return original(*args)

    monkeypatch.setattr(module, name, counted)


def test_energy_forces_stress_match_torch(monkeypatch):
    from mlpot.kernels import triton_grid, triton_spline

    calls = []
    _count_calls(monkeypatch, triton_grid, "grid_node_update", calls)
    _count_calls(monkeypatch, triton_spline, "radial_basis", calls)
    g = _graph()
    ref = _float32_model("torch")(g, compute_stress=True)
    assert not calls
    ours = _float32_model("triton")(g, compute_stress=True)
    assert sorted(set(calls)) == ["grid_node_update", "radial_basis"]  # the kernels ran
    for name in ("energy", "forces"):
        _close(getattr(ours, name), getattr(ref, name))
    _close(ours.stress[0], ref.stress[0])  # the molecule's stress is NaN (no cell)


def test_environment_variable_selects_the_backend(monkeypatch):
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=torch.float32)
    model = _float32_model(None)
    monkeypatch.setenv("MLPOT_KERNELS", "torch")
    ref = model(g).forces
    monkeypatch.setenv("MLPOT_KERNELS", "triton")
    _close(model(g).forces, ref)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelUnavailableError, match="TRITON_INTERPRET"):
        model.cpu()(g)
    monkeypatch.setenv("MLPOT_KERNELS", "cuda-magic")
    with pytest.raises(ValueError, match="MLPOT_KERNELS"):
        model(g)


def test_triton_on_cpu_without_interpreter_is_an_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=torch.float32)
    with pytest.raises(KernelUnavailableError, match="CUDA tensors"):
        _float32_model("triton").cpu()(g)
    with pytest.raises(ValueError, match="kernels"):
        small_model("grid", True, kernels="numba")  # no longer a backend


def _training_gradients(model, g):
    """The gradients a force-and-stress training step applies (double backward through
    the kernels). Compared as gradients, not as parameter differences: a float32
    parameter of size ~1 is only resolved to ~6e-8, coarser than the tolerance on an
    update of lr · grad."""
    out = model(g, compute_stress=True, training=True)
    loss = ((out.energy - 1.0) ** 2).sum() + (out.forces**2).sum() + (out.stress**2).sum()
    loss.backward()
    return [torch.zeros_like(p) if p.grad is None else p.grad for p in model.parameters()]


def test_training_step_gives_the_same_update():
    g = AtomicGraph.from_atoms(cuni_cell(), dtype=torch.float32)
    ref = _training_gradients(_float32_model("torch"), g)
    ours = _training_gradients(_float32_model("triton"), g)
    assert any(float(d.abs().max()) > 0 for d in ref)
    for a, b in zip(ours, ref, strict=True):
        _close(a, b, rel=2e-5)


def test_checkpoint_does_not_store_the_backend(tmp_path):
    model = small_model("grid", True, kernels="torch")
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(tmp_path / "m.pt")
    assert "kernels" not in vars(model.config)
    assert loaded.kernels is None
    loaded.set_kernels("torch")
    assert all(layer.kernels == "torch" for layer in loaded.layers)
