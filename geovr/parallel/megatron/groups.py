"""megatron-core's process groups for TP x PP x DP over an initialised torch.distributed world."""
from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class ParallelDims:
    """tp x pp x dp = world size; megatron-core's rank order (TP fastest, then DP, then PP)."""

    tp: int = 1
    pp: int = 1
    dp: int = 1

    @staticmethod
    def for_world(world_size: int, tp: int = 1, pp: int = 1) -> "ParallelDims":
        if tp < 1 or pp < 1:
            raise ValueError(f"parallel.tp={tp}, parallel.pp={pp}: both must be >= 1")
        if world_size % (tp * pp):
            raise ValueError(f"{world_size} processes cannot hold tp={tp} x pp={pp}: the world size must be a "
                             "multiple of tp*pp (torchrun --nproc_per_node)")
        return ParallelDims(tp, pp, world_size // (tp * pp))


def init_model_parallel(tp: int = 1, pp: int = 1, seed: int = 0) -> ParallelDims:
    """Create the TP/PP/DP groups (the default process group must exist) and seed the
    tensor-parallel RNG tracker (distinct per TP rank for dropout, equal across DP)."""
    from megatron.core import parallel_state
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    if not dist.is_initialized():
        raise RuntimeError("torch.distributed is not initialised: launch with torchrun (or init_process_group)")
    dims = ParallelDims.for_world(dist.get_world_size(), tp, pp)
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp)
    model_parallel_cuda_manual_seed(seed)
    return dims


def destroy_model_parallel() -> None:
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
