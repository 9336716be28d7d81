"""One dispatch layer for every kernel: a closed table ``{operation: {backend: fn}}``.

A caller asks for a backend — ``"auto"``, ``"torch"``, ``"triton"`` or ``"numba"`` — by
argument, or leaves it ``None`` to read ``MLPOT_KERNELS`` (default ``"auto"``) at call
time. :func:`resolve` turns that into the backend that runs:

- ``"auto"``: the operation's fast backend for the tensors' device (Triton for CUDA
  tensors, numba for CPU tensors where the operation has one), otherwise ``"torch"``;
- a named backend runs only if the operation has it and it can run on that device;
  otherwise :class:`KernelUnavailableError` — never a silent fallback that changes
  numbers.

Triton runs on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` is set
(Triton's interpreter: correct, thousands of times slower, for tests). ``"auto"`` never
picks the interpreter. numba runs on CPU tensors.

Implementations are imported lazily, so ``import mlpot.kernels.dispatch`` needs neither
triton nor numba installed.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import Literal, get_args

import torch

Backend = Literal["torch", "triton", "numba"]
Requested = Literal["auto", "torch", "triton", "numba"]
BACKENDS: tuple[str, ...] = get_args(Backend)
REQUESTS: tuple[str, ...] = get_args(Requested)
ENV_VAR = "MLPOT_KERNELS"

#: The closed registry: operation → backend → "module:function" inside mlpot.kernels.
#: Adding a backend or an operation is one entry here.
REGISTRY: dict[str, dict[str, str]] = {
    "spline_basis": {"torch": "spline:radial_basis", "triton": "triton_spline:radial_basis"},
    "spline_radial": {"torch": "spline:spline_radial", "triton": "triton_spline:spline_radial"},
    "grid_node_update": {
        "torch": "grid_product:grid_node_update",
        "triton": "triton_grid:grid_node_update",
    },
}


class KernelUnavailableError(RuntimeError):
    """A backend was asked for that cannot run here (missing package, wrong device)."""


def requested_backend(requested: str | None = None) -> str:
    """``requested``, or ``MLPOT_KERNELS`` when None (default ``"auto"``), validated."""
    if requested is None:
        requested = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
        where = f"{ENV_VAR}={requested!r}"
    else:
        where = f"kernels={requested!r}"
    if requested not in REQUESTS:
        raise ValueError(f"unknown kernel backend in {where}; use one of {REQUESTS}")
    return requested


def triton_interpreted() -> bool:
    """True when ``TRITON_INTERPRET`` asks Triton to interpret kernels on the CPU."""
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "yes", "on")


def unavailable_reason(backend: str, device: torch.device) -> str | None:
    """Why ``backend`` cannot run on ``device`` tensors, or None if it can."""
    if backend == "torch":
        return None
    if importlib.util.find_spec(backend) is None:
        return f"the {backend!r} package is not installed"
    if backend == "numba":
        return None if device.type == "cpu" else f"numba kernels need CPU tensors, got {device}"
    if backend == "triton":
        if device.type == "cuda" or (device.type == "cpu" and triton_interpreted()):
            return None
        if device.type == "cpu":
            return (
                "Triton kernels need CUDA tensors; got CPU tensors (set TRITON_INTERPRET=1 "
                "before importing mlpot to run them in Triton's slow CPU interpreter)"
            )
        return f"Triton kernels need CUDA tensors, got {device}"
    raise ValueError(f"unknown kernel backend {backend!r}; use one of {BACKENDS}")


def resolve(operation: str, requested: str | None, device: torch.device) -> str:
    """The backend that runs ``operation`` for tensors on ``device``.

    Args:
        operation: a key of :data:`REGISTRY`.
        requested: ``"auto" | "torch" | "triton" | "numba"``, or None for ``MLPOT_KERNELS``.
        device: where the operation's tensors live.

    Raises:
        KernelUnavailableError: a named backend the operation lacks or that cannot run.
    """
    table = _table(operation)
    requested = requested_backend(requested)
    if requested == "auto":
        fast = {"cuda": "triton", "cpu": "numba"}.get(device.type)
        if fast in table and unavailable_reason(fast, device) is None:
            return fast
        return "torch"
    if requested not in table:
        raise KernelUnavailableError(
            f"{operation}: no {requested!r} kernel (available: {sorted(table)})"
        )
    reason = unavailable_reason(requested, device)
    if reason is not None:
        raise KernelUnavailableError(f"{operation}: {reason}")
    return requested


def implementation(operation: str, backend: str) -> Callable:
    """The function registered for ``operation`` under ``backend`` (imported on demand)."""
    target = _table(operation).get(backend)
    if target is None:
        raise KernelUnavailableError(f"{operation}: no {backend!r} kernel")
    module, name = target.split(":")
    return getattr(importlib.import_module(f"mlpot.kernels.{module}"), name)


def dispatch(operation: str, requested: str | None, device: torch.device) -> Callable:
    """``implementation(operation, resolve(operation, requested, device))``."""
    return implementation(operation, resolve(operation, requested, device))


def _table(operation: str) -> dict[str, str]:
    if operation not in REGISTRY:
        raise ValueError(f"unknown kernel operation {operation!r}; known: {sorted(REGISTRY)}")
    return REGISTRY[operation]
