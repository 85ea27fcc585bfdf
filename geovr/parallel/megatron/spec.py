"""The transformer-layer spec of the Megatron text model: megatron-core's local GPT layer (no
Transformer Engine), with an RMSNorm that also works under sequence parallelism.

megatron-core's local spec normalises with `WrappedTorchNorm` when apex is absent, and that
refuses `sequence_parallel=True`. `SPRMSNorm` is torch's RMSNorm with megatron-core's constructor
signature; under sequence parallelism each TP rank normalises only its slice of the sequence, so
its weight carries the `sequence_parallel` attribute that makes `finalize_model_grads` sum the
partial gradients over the TP group (what apex/TE norms do in megatron-core's other specs).
"""
from __future__ import annotations

from dataclasses import replace

import torch


class SPRMSNorm(torch.nn.RMSNorm):
    """RMSNorm over the last dimension (hidden_size); weight [hidden_size]."""

    def __init__(self, config, hidden_size: int, eps: float = 1e-5, **_unused):
        super().__init__(hidden_size, eps=eps)
        if config.sequence_parallel:
            self.weight.sequence_parallel = True


def layer_spec():
    """megatron-core's local GPT layer (GQA, q/k RMSNorm, SwiGLU MLP) with `SPRMSNorm` everywhere."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    spec = get_gpt_layer_local_spec(qk_layernorm=True, normalization="RMSNorm")
    attention = spec.submodules.self_attention
    attention = replace(attention, submodules=replace(attention.submodules, q_layernorm=SPRMSNorm,
                                                      k_layernorm=SPRMSNorm))
    return replace(spec, submodules=replace(spec.submodules, input_layernorm=SPRMSNorm, self_attention=attention,
                                            pre_mlp_layernorm=SPRMSNorm))


def block_spec(config, layer=None, pp_rank: int | None = None):
    """This stage's `TransformerBlockSubmodules`: its share of `layer` (default `layer_spec()`) and
    the final norm (used on the last stage)."""
    from megatron.core.transformer.transformer_block import TransformerBlockSubmodules, get_num_layers_to_build

    n = get_num_layers_to_build(config, pp_rank=pp_rank)
    return TransformerBlockSubmodules(layer_specs=[layer or layer_spec()] * n, layer_norm=SPRMSNorm)
