"""The dispatch layer: closed registry, MLPOT_KERNELS, no silent fallback."""

import importlib.util

import pytest
import torch

from mlpot.kernels import dispatch
from mlpot.kernels.dispatch import KernelUnavailableError, implementation, resolve

CPU = torch.device("cpu")
CUDA = torch.device("cuda")
HAVE_TRITON = importlib.util.find_spec("triton") is not None


def test_every_registered_implementation_imports(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    for operation, table in dispatch.REGISTRY.items():
        assert "torch" in table, operation
        for backend in table:
            if backend == "torch" or importlib.util.find_spec(backend) is not None:
                assert callable(implementation(operation, backend))


def test_auto_never_picks_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    monkeypatch.delenv("MLPOT_KERNELS", raising=False)
    assert resolve("spline_basis", None, CPU) == "torch"
    assert resolve("spline_basis", "auto", CPU) == "torch"
    if HAVE_TRITON:
        assert resolve("spline_basis", "auto", CUDA) == "triton"
        assert resolve("grid_node_update", "triton", CPU) == "triton"


def test_environment_variable_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("MLPOT_KERNELS", "torch")
    assert resolve("grid_node_update", None, CUDA) == "torch"
    monkeypatch.setenv("MLPOT_KERNELS", "Triton ")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelUnavailableError, match="TRITON_INTERPRET"):
        resolve("grid_node_update", None, CPU)
    monkeypatch.setenv("MLPOT_KERNELS", "fast")
    with pytest.raises(ValueError, match="MLPOT_KERNELS='fast'"):
        resolve("grid_node_update", None, CPU)
    # an explicit argument wins over the environment
    assert resolve("grid_node_update", "torch", CPU) == "torch"


def test_named_backend_that_cannot_run_is_an_error(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(KernelUnavailableError, match="CUDA tensors"):
        resolve("spline_basis", "triton", CPU)
    monkeypatch.setitem(dispatch.REGISTRY, "torch_only", {"torch": "spline:radial_basis"})
    with pytest.raises(KernelUnavailableError, match="no 'triton' kernel"):
        resolve("torch_only", "triton", CUDA)
    with pytest.raises(ValueError, match="kernels='numba'"):
        resolve("spline_basis", "numba", CPU)  # numba is no longer a backend
    with pytest.raises(ValueError, match="unknown kernel operation"):
        resolve("fft", "torch", CPU)
    with pytest.raises(ValueError, match="kernels='gpu'"):
        resolve("spline_basis", "gpu", CPU)


def test_environment_backend_applies_to_the_operations_that_have_it(monkeypatch):
    """MLPOT_KERNELS=triton is global: an operation without a Triton kernel runs as auto;
    one with it gets Triton (an error on CPU without the interpreter). By argument, a
    missing backend is an error."""
    monkeypatch.setenv("MLPOT_KERNELS", "triton")
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setitem(dispatch.REGISTRY, "torch_only", {"torch": "spline:radial_basis"})
    assert resolve("torch_only", None, CPU) == "torch"
    assert resolve("torch_only", None, CUDA) == "torch"
    with pytest.raises(KernelUnavailableError, match="CUDA tensors"):
        resolve("spline_basis", None, CPU)
    with pytest.raises(KernelUnavailableError, match="no 'triton' kernel"):
        resolve("torch_only", "triton", CPU)


def test_missing_package_is_named(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "triton" else real(name, *a)
    )
    with pytest.raises(KernelUnavailableError, match="'triton' package is not installed"):
        resolve("spline_basis", "triton", CUDA)
    assert resolve("spline_basis", "auto", CUDA) == "torch"
