"""The Qwen3-VL text model's HF config -> megatron-core `TransformerConfig`, and the padded vocabulary.

Qwen3-VL's language model is a dense GQA decoder: RMSNorm (pre-norm), q/k RMSNorm per head,
SwiGLU MLP without biases, interleaved M-RoPE (`rope.py`), DeepStack on the first layers.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TextDims:
    """The text model's shapes, read once from the HF config (`from_hf`)."""

    layers: int
    hidden: int
    ffn: int
    heads: int
    groups: int  # key/value heads
    head_dim: int
    vocab: int
    tied: bool
    eps: float
    rope_theta: float
    mrope_section: tuple[int, int, int]

    @staticmethod
    def from_hf(config) -> "TextDims":
        """config: a `Qwen3VLConfig` (or its `text_config`)."""
        text = getattr(config, "text_config", config)
        if getattr(text, "attention_bias", False):
            raise ValueError("text_config.attention_bias=True: the Megatron text model supports Qwen3-VL's "
                             "bias-free attention only")
        if text.hidden_act != "silu":
            raise ValueError(f"text_config.hidden_act={text.hidden_act!r}: only SwiGLU (silu) is supported")
        rope = text.rope_parameters
        if not rope.get("mrope_interleaved", False):
            raise ValueError("text_config.rope_parameters: Qwen3-VL's interleaved M-RoPE is expected "
                             "(mrope_interleaved=True)")
        tied = bool(getattr(config, "tie_word_embeddings", getattr(text, "tie_word_embeddings", False)))
        return TextDims(layers=text.num_hidden_layers, hidden=text.hidden_size, ffn=text.intermediate_size,
                        heads=text.num_attention_heads, groups=text.num_key_value_heads,
                        head_dim=text.head_dim or text.hidden_size // text.num_attention_heads,
                        vocab=text.vocab_size, tied=tied, eps=text.rms_norm_eps,
                        rope_theta=float(rope["rope_theta"]), mrope_section=tuple(rope["mrope_section"]))

    @property
    def heads_per_group(self) -> int:
        return self.heads // self.groups


def padded_vocab(vocab: int, tp: int, multiple: int = 128) -> int:
    """Vocabulary rounded up so each of `tp` ranks holds an equal slice that is a multiple of
    `multiple` rows (Megatron's convention); the extra rows are zeros and their logits are cut off."""
    step = multiple * tp
    return -(-vocab // step) * step


def check_parallel(dims: TextDims, tp: int, pp: int) -> None:
    """Clear errors for shapes a TP x PP split cannot hold."""
    for name, n in (("num_attention_heads", dims.heads), ("num_key_value_heads", dims.groups),
                    ("intermediate_size", dims.ffn)):
        if n % tp:
            raise ValueError(f"text_config.{name}={n} is not divisible by tensor parallel size {tp}; "
                             "choose a --tp that divides it")
    if dims.layers % pp:
        raise ValueError(f"text_config.num_hidden_layers={dims.layers} is not divisible by pipeline parallel "
                         f"size {pp}; choose a --pp that divides it")


RECOMPUTE = ("none", "selective", "full")


def recompute_fields(recompute: str) -> dict:
    """TransformerConfig fields of an activation-recompute choice: "selective" recomputes core
    attention (the [S, S] scores) in backward, "full" every transformer layer (only its input kept)."""
    if recompute not in RECOMPUTE:
        raise ValueError(f"recompute={recompute!r}: choose one of {', '.join(RECOMPUTE)}")
    if recompute == "selective":
        return dict(recompute_granularity="selective", recompute_modules=["core_attn"])
    if recompute == "full":
        return dict(recompute_granularity="full", recompute_method="uniform", recompute_num_layers=1)
    return {}


def transformer_config(dims: TextDims, tp: int = 1, pp: int = 1, dtype: torch.dtype = torch.float32,
                       sequence_parallel: bool = False, recompute: str = "none", cpu_init: bool = True,
                       **overrides):
    """A `TransformerConfig` for the Qwen3-VL text decoder at TP x PP. dtype: parameters and the
    pipeline's activations (fp32 or bf16). sequence_parallel: split the activations between layers
    over the TP ranks (ignored at tp=1). recompute: none | selective | full (`recompute_fields`).
    overrides: any other TransformerConfig field."""
    from megatron.core.transformer.transformer_config import TransformerConfig

    check_parallel(dims, tp, pp)
    kwargs = dict(
        num_layers=dims.layers, hidden_size=dims.hidden, ffn_hidden_size=dims.ffn,
        num_attention_heads=dims.heads, num_query_groups=dims.groups, kv_channels=dims.head_dim,
        normalization="RMSNorm", layernorm_epsilon=dims.eps, qk_layernorm=True,
        gated_linear_unit=True, activation_func=F.silu, add_bias_linear=False, add_qkv_bias=False,
        hidden_dropout=0.0, attention_dropout=0.0, bias_activation_fusion=False, masked_softmax_fusion=False,
        apply_rope_fusion=False, persist_layer_norm=False, gradient_accumulation_fusion=False,
        attention_softmax_in_fp32=True, tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
        sequence_parallel=sequence_parallel and tp > 1, params_dtype=dtype, pipeline_dtype=dtype,
        bf16=dtype == torch.bfloat16, use_cpu_initialization=cpu_init,
        # batches differ in length (videos of different sizes): pipeline stages exchange shapes first;
        # megatron-core rejects that beside its default MoE dispatcher, unused by this dense model
        variable_seq_lengths=True, moe_token_dispatcher_type="alltoall",
    )
    kwargs.update(recompute_fields(recompute))
    kwargs.update(overrides)
    return TransformerConfig(**kwargs)
