"""Activation recompute (gradient checkpointing) of a Qwen3-VL's LLM decoder layers, and what each
checkpointed layer keeps from its forward.

- keep="attention" (the default): a checkpointed layer keeps its attention kernel's outputs (the
  attention output [B, heads, S, head_dim] and its log-sum-exp, ~40 MB a layer at 10k tokens and
  d = 2048 in bf16), so the backward's recompute redoes the projections, norms, RoPE and MLP but
  not the S^2 attention, about 40 % of a 2B layer's forward at 10k tokens. Recomputing those ops
  gives bit-identical values, so the gradients equal the classic checkpoint's.
- keep="nothing": the classic checkpoint: the whole layer is recomputed.
- layers: how many decoder layers are checkpointed (the first ones), None for all; the others keep
  every activation (no recompute). Fewer checkpointed layers trade memory for FLOPs.

Built on `torch.utils.checkpoint` (non-reentrant) with a selective-checkpoint policy
(`create_selective_checkpoint_contexts`), handed to HF's own `activation_checkpointing_enable`.
"""
from __future__ import annotations

import functools

import torch
from torch import nn
from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

from .config import CHECKPOINT_KEEP as KEEP

aten = torch.ops.aten


def attention_ops() -> tuple:
    """The attention kernels SDPA and flash-attn dispatch to (their outputs are what keep="attention" keeps)."""
    ops = [aten._scaled_dot_product_flash_attention.default, aten._scaled_dot_product_efficient_attention.default,
           aten._scaled_dot_product_cudnn_attention.default, aten._scaled_dot_product_flash_attention_for_cpu.default,
           aten._flash_attention_forward.default, aten._efficient_attention_forward.default]
    flash_attn = getattr(torch.ops, "flash_attn", None)  # the flash-attn package's custom ops, when installed
    for name in ("_flash_attn_forward", "_flash_attn_varlen_forward"):
        op = getattr(flash_attn, name, None) if flash_attn is not None else None
        if op is not None:
            ops.append(op.default)
    return tuple(ops)


def _keep_attention(saved: frozenset, ctx, op, *args, **kwargs) -> CheckpointPolicy:
    return CheckpointPolicy.MUST_SAVE if op in saved else CheckpointPolicy.PREFER_RECOMPUTE


def checkpoint_kwargs(keep: str) -> dict:
    """The `torch.utils.checkpoint.checkpoint` keyword arguments for `keep` (see the module)."""
    if keep not in KEEP:
        raise ValueError(f"recompute keep={keep!r}: choose from {list(KEEP)}")
    kwargs = {"use_reentrant": False}
    if keep == "attention":
        policy = functools.partial(_keep_attention, frozenset(attention_ops()))
        kwargs["context_fn"] = functools.partial(create_selective_checkpoint_contexts, policy)
    return kwargs


def decoder_layers(base: nn.Module) -> nn.ModuleList:
    """The LLM's decoder layers of a Qwen3-VL (`model.language_model.layers`)."""
    layers = getattr(getattr(getattr(base, "model", None), "language_model", None), "layers", None)
    if layers is None:
        raise TypeError(f"{type(base).__name__} has no model.language_model.layers (expected a Qwen3-VL)")
    return layers


def enable_recompute(base: nn.Module, keep: str = "attention", layers: int | None = None) -> None:
    """Checkpoint the first `layers` (None: all) decoder layers of `base`, keeping `keep` (see the
    module). The vision tower's blocks are checkpointed too (frozen, they save nothing either way)."""
    blocks = decoder_layers(base)
    if layers is not None and not 0 <= layers <= len(blocks):
        raise ValueError(f"recompute layers={layers}: the LLM has {len(blocks)} decoder layers (0..{len(blocks)}, "
                         "or None for all)")
    base.activation_checkpointing_enable(checkpoint_kwargs(keep))
    for i, block in enumerate(blocks):
        block.gradient_checkpointing = layers is None or i < layers
