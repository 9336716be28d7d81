"""One dispatch layer for every kernel: a closed table ``{operation: {backend: fn}}``.

A caller asks for a backend — ``"auto"``, ``"torch"`` or ``"triton"`` — by
argument, or leaves it ``None`` to read ``MLPOT_KERNELS`` (default ``"auto"``) at call
time. :func:`resolve` turns that into the backend that runs:

- ``"auto"``: Triton for CUDA tensors where the operation has a Triton kernel,
  otherwise ``"torch"``;
- a named backend runs only if it can run on that device, otherwise
  :class:`KernelUnavailableError` — never a silent fallback that changes numbers. An
  operation without that backend at all is an error when the name came by argument;
  when it came from ``MLPOT_KERNELS`` it runs as ``"auto"`` (the variable is global,
  and no operation is ever run by a backend other than the named one where it has it).

Triton runs on CUDA tensors, or on CPU tensors when ``TRITON_INTERPRET=1`` is set
(Triton's interpreter: correct, thousands of times slower, for tests). ``"auto"`` never
picks the interpreter.

Implementations are imported lazily, so ``import mlpot.kernels.dispatch`` does not need
triton installed. (The MD engine's numba kernels were removed with numba itself: they
saved a few percent of a step; see ``kernels/kinetic.py``.)
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Callable
from typing import Literal, get_args

import torch

Backend = Literal["torch", "triton"]
Requested = Literal["auto", "torch", "triton"]
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


def check_triton_launch(device: torch.device, interpreted: bool, module: str) -> None:
    """Raise unless a Triton kernel of ``module`` can launch on ``device`` tensors.

    ``interpreted`` is whether Triton interpreted that module's kernels when it was
    imported (Triton decides once, at decoration time).
    """
    if device.type == "cuda" or (device.type == "cpu" and interpreted):
        return  # (interpreted kernels run on CUDA tensors too, through the host)
    if device.type == "cpu":
        raise KernelUnavailableError(
            f"{module}: Triton kernels need CUDA tensors; got CPU tensors and the module was "
            "imported without TRITON_INTERPRET=1 (set it before importing mlpot)"
        )
    raise KernelUnavailableError(f"{module}: Triton kernels need CUDA tensors, got {device}")


def resolve(operation: str, requested: str | None, device: torch.device) -> str:
    """The backend that runs ``operation`` for tensors on ``device``.

    Args:
        operation: a key of :data:`REGISTRY`.
        requested: ``"auto" | "torch" | "triton"``, or None for ``MLPOT_KERNELS``.
            A backend named by ``MLPOT_KERNELS`` applies to the operations that have it;
            the others run as ``"auto"`` (``MLPOT_KERNELS=triton`` forces the model's
            kernels without breaking, say, the MD pair selection, which has none). A
            backend named by argument must exist for ``operation``.
        device: where the operation's tensors live.

    Raises:
        KernelUnavailableError: a backend that cannot run here, or one named by argument
            that the operation lacks.
    """
    table = _table(operation)
    from_env = requested is None
    requested = requested_backend(requested)
    if requested not in table and requested != "auto":
        if not from_env:
            raise KernelUnavailableError(
                f"{operation}: no {requested!r} kernel (available: {sorted(table)})"
            )
        requested = "auto"
    if requested == "auto":
        triton_ok = "triton" in table and unavailable_reason("triton", device) is None
        return "triton" if device.type == "cuda" and triton_ok else "torch"
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
