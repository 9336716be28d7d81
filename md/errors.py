"""Exceptions the MD engine raises to stop a run cleanly."""

from __future__ import annotations


class MDError(RuntimeError):
    """Base class of errors that end a simulation with a clear message."""


class ResourceExhaustedError(MDError):
    """The model ran out of memory while evaluating forces; the state was not advanced."""


class BlowUpError(MDError):
    """The simulation became unphysical (NaN, runaway temperature, overlapping atoms)."""


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/CPU allocator out-of-memory errors raised by torch."""
    if isinstance(err, torch_oom_types()):
        return True
    text = str(err).lower()
    return isinstance(err, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text
        or "not enough memory" in text)


def torch_oom_types() -> tuple[type[BaseException], ...]:
    import torch

    oom = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError",
                                                              None)
    return (MemoryError,) if oom is None else (MemoryError, oom)
