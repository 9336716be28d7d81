"""Typed training configuration: YAML → pydantic objects with errors that name the key.

A config has one section per concern (``data``, ``model``, ``loss``, ``optimizer``,
``train``, ``checkpoint``, ``log``, ``equivariance``). Unknown keys, wrong types and
missing files are reported together, one line each, as ``section.key: problem``. ``--set key=value``
overrides (dotted keys, YAML values) are applied before validation.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from mlpot.models import MODEL_CLASSES
from mlpot.models.transip_equivariance import ContrastiveLevel, EquivarianceMode


class ConfigError(ValueError):
    """A training configuration is invalid; the message lists every problem."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DataConfig(_Section):
    """Where the structures come from and how they are batched.

    Attributes:
        train: training files (packed ``.h5`` store, OMol25 ``.aselmdb`` file or
            directory, MPTrj ``.json``, extxyz).
        valid: validation files; empty: split ``valid_fraction`` off ``train`` by group.
        format: input format override (default: detected per file).
        energy_key: MPTrj energy label (default ``uncorrected_total_energy``).
        valid_fraction: fraction of training structures (by group) held out.
        split_seed: seed of the group split.
        batch_size: structures per global batch (when ``max_atoms`` is not set).
        max_atoms: atoms per global batch (batches built by atom count).
        num_workers: DataLoader worker processes.
        e0: ``fit`` (least squares on the training set), ``keep`` (a fine-tuned
            model's E0; new elements fitted) or ``{symbol: eV}``; default ``fit``
            for a new model, ``keep`` when fine-tuning. A model with charge/spin
            references (``system_references``) fits them with E0, keeps them with
            ``keep``, and fits them alone when E0 is given.
        max_valid: use at most this many validation structures (first of the split).
        cache_dir: where streamed formats (MPTrj JSON) are packed into a store;
            default ``<run_dir>/cache``.
    """

    train: list[Path]
    valid: list[Path] = Field(default_factory=list)
    format: str | None = None
    energy_key: str | None = None
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    split_seed: int = 0
    batch_size: int = Field(8, ge=1)
    max_atoms: int | None = Field(None, ge=1)
    num_workers: int = Field(0, ge=0)
    e0: Literal["fit", "keep"] | dict[str, float] | None = None
    max_valid: int | None = Field(None, ge=1)
    cache_dir: Path | None = None

    @field_validator("train", "valid", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return [value] if isinstance(value, str | Path) else value

    @field_validator("train", "valid")
    @classmethod
    def _exists(cls, paths: list[Path]) -> list[Path]:
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise ValueError(f"no such file or directory: {', '.join(missing)}")
        return paths


class ModelConfig(_Section):
    """Which model to train.

    Attributes:
        kind: a class from mlpot's closed model table (``EquivariantPotential``, ...).
        from_: fine-tune: a checkpoint path or shipped model name (YAML key ``from``).
        species: element symbols; default: the elements of the training data
            (fine-tuning: the base model's plus any new ones in the data).
        params: the model's hyper-parameters (its config dataclass fields);
            ``avg_num_neighbors: auto`` measures it on the training data.
        freeze: parameter-name prefixes kept fixed (e.g. ``layers.0``).
        scale: ``auto`` (RMS force of the training set) or a number (eV).
    """

    kind: str = "EquivariantPotential"
    from_: str | None = Field(None, alias="from")
    species: list[str] | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    freeze: list[str] = Field(default_factory=list)
    scale: Literal["auto"] | float = "auto"

    @field_validator("kind")
    @classmethod
    def _known(cls, kind: str) -> str:
        if kind not in MODEL_CLASSES:
            raise ValueError(f"unknown model {kind!r}; known: {sorted(MODEL_CLASSES)}")
        return kind


class LossConfig(_Section):
    """Weighted loss: energy per atom (eV²), force components ((eV/Å)²), stress ((eV/Å³)²);
    for a ``TrajCastForecaster`` the MSEs of Δx and v(t+Δt) normalised by their training RMS.

    Attributes:
        energy: weight of the per-atom energy term.
        forces: weight of the force term.
        stress: weight of the stress term (0: stress is not computed).
        kind: ``mse`` or ``huber`` (per component, threshold ``huber_delta`` in the
            term's unit).
        huber_delta: Huber threshold.
        displacement: forecaster only: weight of the normalised Δx term.
        velocity: forecaster only: weight of the normalised v(t+Δt) term.
        position_noise: forecaster only: σ of Gaussian noise added to the input
            positions, Å; the target Δx is corrected so that the prediction still
            lands on the reference next frame (0: off; :mod:`mlpot.train.forecast_noise`).
        velocity_noise: forecaster only: σ of Gaussian noise added to the input
            velocities, Å/fs; the target v(t+Δt) stays the reference one (0: off).
        noise_scale: forecaster only: ``absolute`` (the two σ above, the same for
            every atom) or ``thermal`` (dimensionless fractions of each atom's thermal
            velocity sqrt(k_B·T/m) and of the distance it covers in one forecast
            interval, T from the sample's own kinetic energy; the noise then shrinks
            every atom's velocity alike instead of freezing heavy atoms and stiff bonds).
        unroll_steps: forecaster only: K, forecast steps the loss is unrolled over
            (the network's own predictions fed back, gradients through all K; the
            loss is the mean over the K steps of the normalised MSEs of the positions
            relative to the first frame and of the velocities; 1: one-step loss).
        mass_exponent: forecaster only: α of the per-atom loss weights
            w_i = m_i^α / ⟨m^α⟩ (mean over atom i's system, so a system's weights sum
            to its atom count; validation uses the same weights). 0: every atom's
            squared errors count alike, so in an organic molecule the hydrogens, whose
            thermal velocities are √12 a carbon's, dominate; 1: the kinetic-energy
            metric, where an error that is a given fraction of an atom's thermal
            velocity costs the same on every atom (measured on ethanol: α = 0 leaves
            the heavy-atom stretches too cold in a rollout, α = 1 the X-H stretches).
    """

    energy: float = Field(1.0, ge=0.0)
    forces: float = Field(10.0, ge=0.0)
    stress: float = Field(0.0, ge=0.0)
    kind: Literal["mse", "huber"] = "mse"
    huber_delta: float = Field(0.01, gt=0.0)
    displacement: float = Field(1.0, ge=0.0)
    velocity: float = Field(1.0, ge=0.0)
    position_noise: float = Field(0.0, ge=0.0)
    velocity_noise: float = Field(0.0, ge=0.0)
    noise_scale: Literal["absolute", "thermal"] = "absolute"
    unroll_steps: int = Field(1, ge=1)
    mass_exponent: float = Field(0.0, ge=0.0, le=1.0)


class OptimizerConfig(_Section):
    """AdamW with warm-up then cosine decay or reduce-on-plateau.

    Attributes:
        lr: peak learning rate.
        weight_decay: AdamW decoupled weight decay.
        betas: Adam β₁, β₂.
        amsgrad: AMSGrad variant.
        schedule: ``cosine`` (to ``lr·min_lr_ratio`` at the last step), ``plateau``
            (×``plateau_factor`` after ``plateau_patience`` epochs without a better
            validation loss) or ``constant``.
        warmup_steps: linear warm-up from 0.
        min_lr_ratio: floor of the cosine schedule.
        grad_clip: clip the global gradient norm to this (None: off).
        ema_decay: exponential moving average of the weights (None: off); the EMA
            weights are validated and saved.
    """

    lr: float = Field(5e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    betas: tuple[float, float] = (0.9, 0.999)
    amsgrad: bool = True
    schedule: Literal["cosine", "plateau", "constant"] = "cosine"
    warmup_steps: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.02, ge=0.0, le=1.0)
    plateau_patience: int = Field(5, ge=0)
    plateau_factor: float = Field(0.5, gt=0.0, lt=1.0)
    grad_clip: float | None = Field(10.0, gt=0.0)
    ema_decay: float | None = Field(0.99, gt=0.0, lt=1.0)


class TrainConfig(_Section):
    """Length and numerics of the run.

    Attributes:
        epochs: passes over the training set.
        max_steps: stop after this many optimiser steps (None: run all epochs).
        dtype: ``float32`` or ``float64``.
        device: ``cpu``, ``cuda`` or ``auto``.
        tf32: allow TF32 matmuls on CUDA (float32 runs only).
        seed: seeds model initialisation and the batch order.
        threads: torch intra-op threads (None: torch's default).
        valid_every: validate after every n-th epoch (and after the last).
    """

    epochs: int = Field(10, ge=1)
    max_steps: int | None = Field(None, ge=1)
    dtype: Literal["float32", "float64"] = "float32"
    device: Literal["cpu", "cuda", "auto"] = "auto"
    tf32: bool = False
    seed: int = 0
    threads: int | None = Field(None, ge=1)
    valid_every: int = Field(1, ge=1)


class CheckpointConfig(_Section):
    """Checkpoints under ``<run_dir>/checkpoints`` (all written by ``mlpot.save_model``).

    Attributes:
        every_epochs: resumable checkpoint after every n-th epoch.
        every_steps: also every n optimiser steps (None: off).
        keep_last: resumable checkpoints kept (older ones are deleted).
    """

    every_epochs: int = Field(1, ge=1)
    every_steps: int | None = Field(None, ge=1)
    keep_last: int = Field(3, ge=1)


class LogConfig(_Section):
    """Progress output. CSV metrics are always written to ``<run_dir>/metrics.csv``.

    Attributes:
        progress: show a rich progress bar (``auto``: when the output is a terminal).
        tensorboard: ``auto`` (when installed), ``true`` (error when missing) or ``false``.
    """

    progress: Literal["auto"] | bool = "auto"
    tensorboard: Literal["auto"] | bool = "auto"


class EquivarianceConfig(_Section):
    """How a non-equivariant model (TransIP) is taught rotational symmetry
    (see :mod:`mlpot.models.transip_equivariance`).

    Attributes:
        mode: ``none`` (batches as given), ``augment`` (every structure of every batch
            turned by a uniformly random rotation, labels included) or ``contrastive``
            (``augment`` plus ``weight`` × the contrastive embedding loss; needs a
            model with ``embed``, i.e. ``TransIPPotential``). Rotations are drawn from
            a generator seeded by (``train.seed``, step), so resume is exact.
        weight: λ, weight of the contrastive term (nats) added to the loss.
        temperature: τ of the InfoNCE softmax.
        rotation_negatives: wrong-rotation candidates per structure (collapse guard).
        variance_floor: per-dimension embedding spread the variance hinge keeps.
        variance_weight: weight of the variance hinge inside the contrastive term.
        hidden: hidden width of the rotation-conditioned transform (default 2·dim).
        level: ``system`` (InfoNCE on pooled embeddings, other structures as
            negatives) or ``atoms`` (on atom tokens, other atoms as negatives).
        max_anchors: ``atoms`` level: atoms per batch used as anchors (random subset).
        augment: ``contrastive`` only: the energy/force loss sees the rotated batch
            (True, the default) or the batch as given (False: symmetry is taught by the
            contrastive term alone, to measure what the term does by itself).
    """

    mode: EquivarianceMode = "none"
    weight: float = Field(0.1, ge=0.0)
    temperature: float = Field(0.1, gt=0.0)
    rotation_negatives: int = Field(2, ge=0)
    variance_floor: float = Field(0.1, ge=0.0)
    variance_weight: float = Field(1.0, ge=0.0)
    hidden: int | None = Field(None, ge=1)
    level: ContrastiveLevel = "system"
    max_anchors: int = Field(512, ge=2)
    augment: bool = True


class TrainingConfig(_Section):
    """A whole training run (the YAML file's top level)."""

    run_dir: Path
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    equivariance: EquivarianceConfig = Field(default_factory=EquivarianceConfig)

    def model_params_check(self) -> None:
        """Unknown model hyper-parameters raise (the model's config dataclass is the list)."""
        cls = MODEL_CLASSES[self.model.kind]
        config_cls = model_config_class(cls)
        known = {f.name for f in dataclasses.fields(config_cls)} - {"species"}
        unknown = sorted(set(self.model.params) - known)
        if unknown:
            raise ConfigError(
                f"model.params: unknown key(s) {unknown} for {self.model.kind}; "
                f"known: {sorted(known)}"
            )


    def equivariance_check(self) -> None:
        """``contrastive`` needs embeddings (``embed``); a fine-tuned model is checked
        when it is loaded (:func:`require_embed`)."""
        if self.equivariance.mode == "contrastive" and self.model.from_ is None:
            require_embed(MODEL_CLASSES[self.model.kind], self.model.kind)
        if not self.equivariance.augment and self.equivariance.mode != "contrastive":
            raise ConfigError(
                "equivariance.augment: false is only for mode contrastive (the "
                "contrastive term without rotated batches); mode is "
                f"{self.equivariance.mode}, use none instead"
            )


def require_embed(model: Any, name: str) -> None:
    """Raise :class:`ConfigError` unless ``model`` (class or instance) has ``embed``."""
    if not callable(getattr(model, "embed", None)):
        raise ConfigError(
            f"equivariance.mode: contrastive needs a model with embeddings (embed), "
            f"e.g. TransIPPotential; {name} has none (use augment or none)"
        )


def model_config_class(cls: type) -> type:
    """The hyper-parameter dataclass of a model class (``<Name>Config`` beside it)."""
    import inspect

    module = inspect.getmodule(cls)
    return getattr(module, f"{cls.__name__}Config")


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a raw config dict."""
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value (e.g. optimizer.lr=1e-3)")
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def parse_config(raw: dict[str, Any], source: str = "config") -> TrainingConfig:
    """Validate a raw dict; every problem becomes one ``key: message`` line."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping, got {type(raw).__name__}")
    try:
        config = TrainingConfig.model_validate(raw)
    except ValidationError as err:
        lines = []
        for e in err.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(top level)"
            message = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                message = "unknown key"
            elif (
                e["type"] not in ("missing",) and "input" in e and not isinstance(e["input"], dict)
            ):
                message += f" (got {e['input']!r})"
            lines.append(f"  {where}: {message}")
        raise ConfigError(f"{source}: invalid training config\n" + "\n".join(lines)) from None
    config.model_params_check()
    config.equivariance_check()
    return config


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainingConfig:
    """Read a YAML config, apply ``--set`` overrides, validate.

    Relative data paths are taken relative to the current directory (as a user
    typing the command expects).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({err})") from None
    return parse_config(apply_overrides(raw, list(overrides or [])), str(path))
