"""Optimiser pieces: AdamW, the learning-rate schedule, EMA of the weights."""

from __future__ import annotations

import math

import torch

from mlpot.train.config import OptimizerConfig


def make_optimizer(params: list[torch.nn.Parameter], cfg: OptimizerConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters."""
    return torch.optim.AdamW(
        params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad
    )


def scheduled_lr(cfg: OptimizerConfig, step: int, total_steps: int, plateau_scale: float) -> float:
    """Learning rate of optimiser step ``step`` (0-based).

    Linear warm-up over ``warmup_steps``; then ``cosine``: lr·(r + (1−r)·½(1+cos πt)),
    t = progress after warm-up in [0, 1], r = ``min_lr_ratio``; ``plateau``: lr times
    the plateau factor accumulated so far; ``constant``: lr.
    """
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule == "cosine":
        span = max(total_steps - cfg.warmup_steps, 1)
        t = min(max(step - cfg.warmup_steps, 0) / span, 1.0)
        r = cfg.min_lr_ratio
        factor = r + (1 - r) * 0.5 * (1 + math.cos(math.pi * t))
    elif cfg.schedule == "plateau":
        factor = plateau_scale
    else:
        factor = 1.0
    return cfg.lr * warm * factor


class Plateau:
    """Reduce-on-plateau bookkeeping (state is three numbers, saved in checkpoints)."""

    def __init__(self, patience: int, factor: float) -> None:
        self.patience, self.factor = patience, factor
        self.best, self.bad_epochs, self.scale = math.inf, 0, 1.0

    def update(self, valid_loss: float) -> None:
        """Record an epoch's validation loss; shrink the scale after ``patience`` bad epochs."""
        if valid_loss < self.best * (1 - 1e-4):
            self.best, self.bad_epochs = valid_loss, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale *= self.factor
            self.bad_epochs = 0

    def state_dict(self) -> dict[str, float]:
        return {"best": self.best, "bad_epochs": self.bad_epochs, "scale": self.scale}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])
        self.scale = float(state["scale"])


class EMA:
    """Exponential moving average of a model's floating-point parameters.

    After each optimiser step: θ̄ ← d·θ̄ + (1−d)·θ with d = min(decay, (1+n)/(10+n))
    (n = updates so far), the usual warm-up so early averages are not dominated by
    the initial weights.
    """

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.decay = decay
        self.updates = 0
        self.shadow = {k: p.detach().clone() for k, p in model.named_parameters()}

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, p in model.named_parameters():
            self.shadow[k].mul_(d).add_(p.detach(), alpha=1 - d)
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: torch.nn.Module) -> None:
        """Write the averaged weights into ``model`` (same architecture)."""
        for k, p in model.named_parameters():
            p.copy_(self.shadow[k])

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        for k, v in state["shadow"].items():
            self.shadow[k].copy_(v)
