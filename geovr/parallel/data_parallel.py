"""Data-parallel set-up: the process group from torchrun's environment (NCCL on GPUs, gloo on
CPUs), the device of this rank, DDP wrapping, and sum-reductions that are no-ops in one process.

This is the seam where the model is parallelised: `wrap_data_parallel` takes the built model;
tensor/pipeline parallel back-ends replace it (and the model builder) without touching the loop.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class World:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_world(device: str = "auto", timeout_s: float = 1800.0) -> World:
    """Join torchrun's process group when WORLD_SIZE > 1. device: auto (a GPU when present) | cpu | cuda."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("train.device=cuda but no CUDA GPU is visible; use train.device=cpu or auto")
        torch.cuda.set_device(local_rank)
        dev = torch.device("cuda", local_rank)
    else:
        dev = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        timeout = timedelta(seconds=timeout_s)
        store = attempt_store(timeout)
        if store is None:
            dist.init_process_group(backend=backend, timeout=timeout, device_id=dev if dev.type == "cuda" else None)
        else:
            dist.init_process_group(backend=backend, timeout=timeout, device_id=dev if dev.type == "cuda" else None,
                                    store=store, rank=rank, world_size=world_size)
    return World(rank, world_size, local_rank, dev)


def attempt_store(timeout: timedelta) -> dist.Store | None:
    """The store of this attempt of a torchrun group that may be restarted, or None for the default.

    torchrun (torch >= 2.5, unless TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1) lends the workers its own
    TCPStore and keeps it across restarts, so the keys of a group killed by a fault stay there: a
    restarted rank can read a dead rank's address and fail to connect (gloo: "connectFullMesh ...
    Connection refused"; NCCL an old unique id), restart after restart. On one node every worker of
    an attempt sees the same TORCHELASTIC_RESTART_COUNT, so the group's keys go under that attempt's
    prefix. Across nodes the counts can differ (an agent counts only its own workers' failures):
    a warning then names the launch setting that gives each attempt a fresh store."""
    env = os.environ
    if env.get("TORCHELASTIC_USE_AGENT_STORE") != "True" or int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")) == 0:
        return None
    if int(env.get("GROUP_WORLD_SIZE", "1")) > 1:
        if env.get("RANK") == "0":
            import logging

            logging.getLogger("geovr.parallel").warning(
                "torchrun --max-restarts over several nodes shares one TCPStore across restarts: a restarted group "
                "can read the failed group's addresses and fail to connect. Launch torchrun with "
                "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 in its environment (each attempt then gets a fresh store)")
        return None
    client = dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), int(env["WORLD_SIZE"]), is_master=False,
                           timeout=timeout)
    return dist.PrefixStore(f"geovr/attempt_{env.get('TORCHELASTIC_RESTART_COUNT', '0')}", client)


def init_single_process_group(device: torch.device) -> None:
    """A process group of this one process (FSDP and megatron-core need one even then), on a free
    local port unless MASTER_PORT is set."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(s.getsockname()[1])
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0, world_size=1,
                            device_id=device if device.type == "cuda" else None)


def wrap_data_parallel(model: nn.Module, world: World, find_unused_parameters: bool = True) -> nn.Module:
    """DDP over the world (the model itself in one process)."""
    if not world.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[world.local_rank] if world.device.type == "cuda" else None,
               find_unused_parameters=find_unused_parameters)


def all_reduce_sum(x: torch.Tensor, world: World) -> torch.Tensor:
    """Sum of `x` over the ranks (a copy; `x` itself in one process)."""
    if not world.distributed:
        return x
    y = x.clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def all_gather_object(obj, world: World) -> list:
    """[obj of rank 0, obj of rank 1, ...] (a picklable object; [obj] in one process)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
