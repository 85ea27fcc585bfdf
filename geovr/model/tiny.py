"""A tiny randomly initialised Qwen3-VL wired to a tokenizer's special tokens: the embedded
default model of the demo and the tests (real runs load weights from a local path)."""
from __future__ import annotations

import torch


def tiny_qwen3vl(tokenizer, layers: int = 6, hidden: int = 64, seed: int = 0, random_norms: bool = True):
    """Qwen3VLForConditionalGeneration with `layers` text layers of width `hidden`, a 2-block
    vision tower (patch 16, temporal patch 2, merge 2, DeepStack on blocks 0 and 1: two mergers, so a
    swap of the two shows), interleaved M-RoPE.
    random_norms: every norm's weight drawn from 1 + U(-0.5, 0.5) and every norm bias from
    U(-0.1, 0.1) (HF starts them at exactly 1 and 0, under which a weight conversion that mixes
    two norms up, q_norm for k_norm, say, would still give the same outputs)."""
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {t: tokenizer.convert_tokens_to_ids(t)
           for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    heads = max(2, hidden // 16)
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=max(1, heads // 2),
                         head_dim=16, max_position_embeddings=32768,
                         rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           patch_size=16, temporal_patch_size=2, spatial_merge_size=2, deepstack_visual_indexes=[0, 1],
                           num_position_embeddings=256),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg)
    if random_norms:
        randomize_norms(model, seed)
    return model


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> int:
    """Draw every norm's weight from 1 + U(-0.5, 0.5) and bias from U(-0.1, 0.1) (modules whose
    class name ends in "Norm": LayerNorm, RMSNorm), in module order from `seed`. Returns how many."""
    g = torch.Generator().manual_seed(seed + 1)
    n = 0
    with torch.no_grad():
        for module in model.modules():
            if not type(module).__name__.endswith("Norm"):
                continue
            weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
            if isinstance(weight, torch.nn.Parameter):
                weight.copy_(1 + torch.rand(weight.shape, generator=g) - 0.5)
                n += 1
            if isinstance(bias, torch.nn.Parameter):
                bias.copy_(0.2 * torch.rand(bias.shape, generator=g) - 0.1)
    return n
