"""Model checkpoints: one file with class, config, weights, species, E0, units, version.

The file is written with ``torch.save`` and read with ``torch.load(weights_only=True)``,
so loading never runs code from the file. Writes go to a temporary file that is
renamed into place, so an interrupted save never leaves a half-written checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from importlib import resources
from pathlib import Path

import torch

from mlpot.atomic_io import atomic_torch_save
from mlpot.models import MODEL_CLASSES, Potential, TrajCastForecaster

FORMAT = "mlpot-checkpoint"
FORMAT_VERSION = 1
UNITS = {"energy": "eV", "length": "Angstrom", "stress": "eV/Angstrom^3"}


def _version() -> str:
    from mlpot import __version__

    return __version__


#: Models shipped inside the package: name → (file in ``mlpot/pretrained``, what it is).
SHIPPED_MODELS: dict[str, tuple[str, str]] = {
    "mlpot-metals-small": ("mlpot-metals-small.pt",
                           "EMT labels; Al Ni Cu Pd Ag Pt Au bulk, defects, surfaces, MD, alloys"),
    "mlpot-organic-small": ("mlpot-organic-small.pt",
                            "GFN2-xTB labels; H C N O F P S Cl molecules, charged, open-shell"),
    "mlpot-ar-trajcast": ("mlpot-ar-trajcast.pt",
                          "TrajCast forecaster, liquid Ar (Lennard-Jones reference), 20 fs"),
    "mlpot-cu-trajcast": ("mlpot-cu-trajcast.pt",
                          "TrajCast forecaster, fcc Cu 300-600 K (EMT reference), 10 fs"),
    "mlpot-ethanol-trajcast": ("mlpot-ethanol-trajcast.pt",
                               "TrajCast forecaster, ethanol in vacuum 250-600 K (GFN2-xTB), 5 fs"),
}
#: Old names that still load: ``emt-cuni-small`` (Cu/Ni only) is superseded by the
#: seven-metal model, which covers Cu and Ni with the same EMT reference.
ALIASES: dict[str, str] = {"emt-cuni-small": "mlpot-metals-small"}


def shipped_models() -> dict[str, Path]:
    """Names of the models shipped inside the package (and aliases) → their files."""
    folder = resources.files("mlpot") / "pretrained"
    out = {}
    for name, (filename, _) in SHIPPED_MODELS.items():
        entry = folder / filename
        if entry.is_file():
            out[name] = Path(str(entry))
    for alias, target in ALIASES.items():
        if target in out:
            out[alias] = out[target]
    return dict(sorted(out.items()))


def save_model(model: Potential | TrajCastForecaster, path: str | os.PathLike,
               training_state: dict | None = None) -> Path:
    """Write ``model`` to ``path`` atomically; returns the path.

    ``training_state`` (optimiser, scheduler, EMA, RNG states, data position; tensors,
    numbers, strings, lists and dicts only) makes the file a resumable training
    checkpoint; :func:`load_model` ignores it and :func:`load_training_state` reads it.
    """
    name = type(model).__name__
    if MODEL_CLASSES.get(name) is not type(model):
        raise TypeError(f"cannot save {name}: not one of mlpot's model classes "
                        f"{sorted(MODEL_CLASSES)}")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "mlpot_version": _version(),
        "model_class": name,
        "config": dataclasses.asdict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "species": model.species,
        "e0": model.e0.detach().cpu().tolist() if isinstance(model, Potential) else [],
        "dtype": str(model.dtype).removeprefix("torch."),
        "units": dict(UNITS),
    }
    if training_state is not None:
        payload["training_state"] = training_state
    return atomic_torch_save(payload, path)


def load_training_state(path: str | os.PathLike) -> dict:
    """The ``training_state`` of a resumable checkpoint (``weights_only`` loading).

    Raises:
        ValueError: unreadable file, or a model-only checkpoint.
    """
    payload = _read_payload(Path(path))
    state = payload.get("training_state")
    if not isinstance(state, dict):
        raise ValueError(f"{path}: a model-only checkpoint, not a resumable training "
                         f"checkpoint (no training state)")
    return state


def _read_payload(path: Path) -> dict:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for damaged files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable mlpot checkpoint "
                         f"(corrupt, truncated or foreign file: {first[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mlpot checkpoint (no '{FORMAT}' marker)")
    return payload


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """A checkpoint path, or the file of a shipped model name."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_models()
    if str(name_or_path) in shipped:
        return shipped[str(name_or_path)]
    if path.exists():
        raise ValueError(f"{path}: is not a file")
    raise FileNotFoundError(
        f"no checkpoint file or shipped model named {str(name_or_path)!r} "
        f"(shipped models: {', '.join(shipped) or 'none'})")


def load_model(
    name_or_path: str | os.PathLike,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> Potential | TrajCastForecaster:
    """Rebuild a model (or a forecaster) from a checkpoint file or a shipped model name.

    Raises:
        FileNotFoundError: no such file or shipped name.
        ValueError: the file is corrupt, truncated, or not an mlpot checkpoint.
    """
    path = resolve_model_path(name_or_path)
    payload = _read_payload(path)
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path}: checkpoint format {payload['format_version']} is newer "
                         f"than this mlpot understands ({FORMAT_VERSION}); upgrade mlpot")
    cls = MODEL_CLASSES.get(payload.get("model_class", ""))
    if cls is None:
        raise ValueError(f"{path}: unknown model class {payload.get('model_class')!r}; "
                         f"known: {sorted(MODEL_CLASSES)}")
    try:
        # keys added since the checkpoint was written take their pre-addition value
        model = cls(**{**getattr(cls, "legacy_config", {}), **payload["config"]})
        saved_dtype = getattr(torch, payload.get("dtype", "float32"))
        model = model.to(saved_dtype)
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as err:
        raise ValueError(f"{path}: checkpoint does not match {cls.__name__}: {err}") from None
    model.eval()
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model
