"""A tiny randomly initialised Qwen3-VL wired to a tokenizer's special tokens: the embedded
default model of the demo and the tests (real runs load weights from a local path)."""
from __future__ import annotations

import torch


def tiny_qwen3vl(tokenizer, layers: int = 6, hidden: int = 64, seed: int = 0):
    """Qwen3VLForConditionalGeneration with `layers` text layers of width `hidden`, a 2-block
    vision tower (patch 16, temporal patch 2, merge 2, DeepStack on block 0), interleaved M-RoPE."""
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
                           patch_size=16, temporal_patch_size=2, spatial_merge_size=2, deepstack_visual_indexes=[0],
                           num_position_embeddings=256),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    return Qwen3VLForConditionalGeneration(cfg)
