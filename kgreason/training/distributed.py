"""Process groups for multi-process training launched with torchrun (DDP).

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a plain ``python -m kgreason.train`` runs as a
single process without a process group. The backend is NCCL on CUDA and gloo on CPU.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessInfo:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> ProcessInfo:
    """Join the torchrun process group when WORLD_SIZE > 1; returns this process's rank and the world size."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return ProcessInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        logger.info("joined process group: rank %d of %d (%s)", rank, world_size, backend)
    return ProcessInfo(rank=rank, local_rank=local_rank, world_size=world_size)


def barrier(info: ProcessInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean(values: torch.Tensor, info: ProcessInfo) -> torch.Tensor:
    """Mean of ``values`` over processes (identity in a single process)."""
    if not info.distributed:
        return values
    reduced = values.detach().clone()
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced / info.world_size


def broadcast_object(value, info: ProcessInfo):
    """``value`` of rank 0 on every process."""
    if not info.distributed:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def shutdown(info: ProcessInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
