"""Data parallelism under ``torchrun``: process group, gradient and metric sums.

Each rank computes the loss of its share of a global batch, normalised by the
global label counts (:mod:`mlpot.train.loss`); the gradients are then summed over
ranks in one flat all-reduce, which equals the single-process gradient of the
same global batch. This is what ``DistributedDataParallel`` does, written out so
the normalisation is explicit and the double-backward force loss needs no hooks.
NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_world(device: torch.device) -> World:
    """Join the process group that ``torchrun`` describes in the environment."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return World(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def close_world(world: World) -> None:
    if world.enabled and dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(tensor: torch.Tensor, world: World) -> torch.Tensor:
    """Sum ``tensor`` over ranks (in place); identity for one process."""
    if world.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def sum_gradients(params: list[torch.nn.Parameter], world: World) -> None:
    """Replace every parameter's gradient by its sum over ranks (missing grads = 0)."""
    if not world.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def broadcast_parameters(model: torch.nn.Module, world: World) -> None:
    """Give every rank rank 0's weights and buffers."""
    if not world.enabled:
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)


def barrier(world: World) -> None:
    if world.enabled:
        dist.barrier()
