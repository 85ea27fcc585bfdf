"""megatron-core's DDP wrapper and optimizer for a `MegatronGeoVR` stage.

The wrapper keeps fp32 main gradients in buckets and reduces them over the data-parallel group
(averaged, as torch DDP does); `finalize_model_grads` also sums the tied embedding's two copies
(first and last pipeline stage). The optimizer is megatron-core's (Adam with decoupled weight decay,
global-norm clipping over every TP x PP rank, optionally the distributed optimizer that shards its
state over the data-parallel ranks). Two learning rates: the LLM/mergers at `lr`, the GeoVR parts
(`HEADS`) at `lr_new`; `set_lr` applies the schedule's factor to both each step.
"""
from __future__ import annotations

import torch
from torch import nn

from .geovr_stage import HEADS


def _is_new(name: str) -> bool:
    return name.removeprefix("module.").startswith(HEADS)


def wrap_ddp(module: nn.Module, distributed_optimizer: bool = False) -> nn.Module:
    """megatron-core's DistributedDataParallel around one stage; wires the schedule's grad sync."""
    from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig, finalize_model_grads

    ddp = DistributedDataParallel(
        config=module.config,
        ddp_config=DistributedDataParallelConfig(grad_reduce_in_fp32=True, overlap_grad_reduce=False,
                                                 use_distributed_optimizer=distributed_optimizer),
        module=module)
    module.config.no_sync_func = ddp.no_sync
    module.config.finalize_model_grads_func = finalize_model_grads
    return ddp


def build_optimizer(model: nn.Module, lr: float, lr_new: float, weight_decay: float = 0.0,
                    betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, clip: float = 1.0,
                    distributed: bool = False, bf16: bool = False):
    """megatron-core's optimizer over the DDP-wrapped stage (`wrap_ddp`). clip 0 = no clipping."""
    from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
    from megatron.core.optimizer.optimizer_config import ParamKey, ParamWithNamePredicate

    config = OptimizerConfig(optimizer="adam", lr=lr, min_lr=0.0, weight_decay=weight_decay, adam_beta1=betas[0],
                             adam_beta2=betas[1], adam_eps=eps, clip_grad=clip, bf16=bf16,
                             params_dtype=torch.bfloat16 if bf16 else torch.float32,
                             use_distributed_optimizer=distributed)
    new = ParamKey(with_name_predicate=ParamWithNamePredicate(name="geovr_parts", fn=lambda p, n: _is_new(n)))
    # An explicit (non-None) override map: weight decay applies to every parameter, as in the HF path.
    # is_decoupled_lr marks the GeoVR group: megatron-core tells param groups apart by it (and by the
    # weight-decay/lr multipliers) when loading a checkpoint; without it the two groups merge.
    return get_megatron_optimizer(config, [model],
                                  config_overrides={new: {"max_lr": lr_new, "is_decoupled_lr": True}})


def set_lr(optimizer, factor: float) -> dict[str, float]:
    """Each group's lr = its base (max_lr) x factor. Returns {"lr/llm": .., "lr/new": ..}."""
    out = {}
    for group in optimizer.param_groups:
        group["lr"] = group["max_lr"] * factor
        out["lr/new" if group.get("is_decoupled_lr") else "lr/llm"] = group["lr"]
    return out
