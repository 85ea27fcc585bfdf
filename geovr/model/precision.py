"""Mixed precision: when the student runs bf16 autocast (`uses_bf16_autocast`); the autocast
itself, without autocast's weight-cast cache; frozen networks' matmul weights stored in the
autocast dtype (`lower_matmul_weights`).

Autocast caches the bf16 copy of every fp32 weight it casts until the autocast region ends, so a
forward under one region holds a bf16 copy of the whole LLM at its end (2.8 GB at 2B, 16 GB at 8B),
next to every activation. Each weight is used once per forward (a checkpointed layer's recompute
casts again in the backward either way), so the cache saves no work here: without it each copy
lives only as long as an op (or autograd) needs it. The values are identical (the same casts).
"""
from __future__ import annotations

import torch
from torch import nn


def uses_bf16_autocast(dtype: str, device: torch.device) -> bool:
    """model.dtype "bf16", or "auto" on a GPU (fp32 on a CPU)."""
    return dtype == "bf16" or (dtype == "auto" and device.type == "cuda")


def bf16_autocast(device_type: str) -> torch.autocast:
    """bf16 autocast on `device_type` ("cuda" or "cpu"), weight-cast cache off (see the module)."""
    return torch.autocast(device_type, dtype=torch.bfloat16, cache_enabled=False)


def lower_matmul_weights(module: nn.Module, dtype: torch.dtype) -> int:
    """Store the weights and biases of `module`'s Linear and Conv2d layers in `dtype` (what
    autocast casts them to at every call): a frozen network run under autocast gives bit-identical
    outputs with half the weight memory. Norms, embeddings and other parameters stay as they are
    (autocast runs norms in fp32). Only for modules that run every Linear/Conv2d under autocast.
    Returns the number of layers cast."""
    n = 0
    for m in module.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            for name in ("weight", "bias"):
                p = getattr(m, name)
                if p is not None:  # new Parameters (Module.to cannot swap fake tensors' storage)
                    setattr(m, name, nn.Parameter(p.detach().to(dtype), requires_grad=p.requires_grad))
            n += 1
    return n
