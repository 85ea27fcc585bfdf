"""Sharded data parallelism with FSDP2 (`torch.distributed.fsdp.fully_shard`).

`shard_geovr` shards a GeoVRModel over the world's ranks: one FSDP unit per LLM decoder layer
(its parameters all-gathered just before it runs, freed after, its gradients reduce-scattered as
its backward ends), and one on the root for the rest (embeddings, final norm, LM head, the vision
mergers, the GeoVR heads and tokens). The frozen vision tower is not sharded (each rank keeps it,
as under DDP: no gradients or optimizer state, and its bf16 copy is ~0.8 GB at 8B); the teachers
are not part of the model.

Each rank holds 1/N of every sharded parameter, its gradient and its AdamW state (16 bytes a
parameter / N in fp32 master weights), plus one or two all-gathered layers at a time.

Mixed precision (bf16 compute on GPUs): parameters are all-gathered in bf16, gradients
reduce-scattered in fp32, the sharded master weights and AdamW state stay fp32. On a CPU
(the tests) everything is fp32.
"""
from __future__ import annotations

import torch
from torch import nn

from .data_parallel import World


def _policies(bf16: bool, offload: bool, root: bool, pin: bool) -> dict:
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy

    # the root keeps its inputs' dtypes: the loss normaliser (a float tensor of token counts)
    # must not round to bf16; the decoder layers' inputs are cast (hidden states, RoPE tables)
    mp = (MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32, cast_forward_inputs=not root)
          if bf16 else MixedPrecisionPolicy())
    return {"mp_policy": mp, "offload_policy": CPUOffloadPolicy(pin_memory=pin) if offload else OffloadPolicy()}


def unsharded_parameters(geo: nn.Module) -> set[nn.Parameter]:
    """The frozen vision tower's parameters (kept whole on every rank; the trained mergers are sharded)."""
    visual = geo.base.model.visual
    return {p for p in visual.parameters() if not p.requires_grad}


def shard_geovr(geo: nn.Module, world: World, bf16: bool = False, offload: bool = False) -> nn.Module:
    """Apply `fully_shard` to `geo` (a GeoVRModel on world.device) in place and return it: one unit
    per decoder layer, then the root (see the module). bf16: bf16 all-gathers, fp32 reductions;
    offload: sharded parameters, gradients and optimizer state live in pinned CPU memory (the
    optimizer step runs on the CPU)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from ..model.recompute import decoder_layers

    pin = world.device.type == "cuda"  # pinned host memory for the copies to and from the GPU
    mesh = init_device_mesh(world.device.type, (world.world_size,), mesh_dim_names=("dp",))
    layers = decoder_layers(geo.base)
    for i, layer in enumerate(layers):
        # the last layer's parameters are gathered again at once by the backward: keep them
        fully_shard(layer, mesh=mesh, reshard_after_forward=i < len(layers) - 1, **_policies(bf16, offload, False, pin))
    fully_shard(geo, mesh=mesh, ignored_params=unsharded_parameters(geo), **_policies(bf16, offload, True, pin))
    return geo


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def local_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """The bytes this rank holds of the model's parameters, their gradients and the optimizer
    state (a sharded tensor counts its local shard): {"parameters", "gradients", "optimizer"}."""
    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if hasattr(t, "to_local") else t

    out = {"parameters": 0, "gradients": 0, "optimizer": 0}
    for p in model.parameters():
        out["parameters"] += local(p).numel() * p.element_size()
        if p.grad is not None:
            out["gradients"] += local(p.grad).numel() * p.grad.element_size()
    if optimizer is not None:
        for state in optimizer.state.values():
            for v in state.values():
                if isinstance(v, torch.Tensor) and v.dim() > 0:
                    out["optimizer"] += local(v).numel() * v.element_size()
    return out


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's state dict, gathered onto the CPU of rank 0 (collective: every rank
    calls it; the other ranks get an empty dict)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
