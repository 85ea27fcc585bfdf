"""The published Qwen3-VL-Instruct architectures (2B, 4B, 8B) as transformers configs, so the
GeoVR wiring for a real size can be built and checked without weights (e.g. on the meta device).
Real training loads the weights and config from a local folder instead (`load_qwen3vl`)."""
from __future__ import annotations

import os
from pathlib import Path

# text: hidden, intermediate, layers, heads, kv heads, tied embeddings;
# vision: depth, hidden, intermediate, DeepStack blocks
_SIZES = {
    "2B": dict(text=(2048, 6144, 28, 16, 8, True), vision=(24, 1024, 4096, (5, 11, 17))),
    "4B": dict(text=(2560, 9728, 36, 32, 8, True), vision=(24, 1024, 4096, (5, 11, 17))),
    "8B": dict(text=(4096, 12288, 36, 32, 8, False), vision=(27, 1152, 4304, (8, 16, 24))),
}
SIZES = tuple(_SIZES)


def qwen3vl_config(size: str):
    """`Qwen3VLConfig` of Qwen3-VL-{size}-Instruct (vocabulary 151936, patch 16, merge 2,
    interleaved M-RoPE sections [24, 20, 20], rope theta 5e6)."""
    from transformers import Qwen3VLConfig

    if size not in _SIZES:
        raise ValueError(f"size {size!r}: choose from {list(_SIZES)}")
    hidden, inter, layers, heads, kv, tied = _SIZES[size]["text"]
    vdepth, vhidden, vinter, deepstack = _SIZES[size]["vision"]
    return Qwen3VLConfig(
        text_config=dict(vocab_size=151936, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=kv, head_dim=128, hidden_act="silu",
                         max_position_embeddings=262144, rms_norm_eps=1e-6, rope_theta=5_000_000.0,
                         rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True},
                         tie_word_embeddings=tied),
        vision_config=dict(depth=vdepth, hidden_size=vhidden, intermediate_size=vinter, num_heads=16,
                           out_hidden_size=hidden, patch_size=16, temporal_patch_size=2, spatial_merge_size=2,
                           deepstack_visual_indexes=list(deepstack), num_position_embeddings=2304,
                           hidden_act="gelu_pytorch_tanh"),
        image_token_id=151655, video_token_id=151656, vision_start_token_id=151652, vision_end_token_id=151653,
        tie_word_embeddings=tied)


def _model_folder(path: str | os.PathLike) -> Path:
    """The local model folder; a clear FileNotFoundError when it or its config.json is missing
    (there is no hub access)."""
    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model path {folder}: no config.json there; pass the local folder of a "
                                "Qwen3-VL checkpoint (e.g. a downloaded Qwen3-VL-2B-Instruct)")
    return folder


def load_qwen3vl(path: str | os.PathLike, dtype=None):
    """`Qwen3VLForConditionalGeneration` from a local folder (config.json + safetensors)."""
    from transformers import Qwen3VLForConditionalGeneration

    from ..progress import hf_bars_on_terminal

    with hf_bars_on_terminal():
        return Qwen3VLForConditionalGeneration.from_pretrained(str(_model_folder(path)), dtype=dtype,
                                                               local_files_only=True)


def meta_qwen3vl(path: str | os.PathLike):
    """The `Qwen3VLForConditionalGeneration` of a local folder's config.json with every weight on the
    meta device (shapes only, no memory, nothing read from the safetensors files)."""
    import torch
    from transformers import AutoConfig, Qwen3VLForConditionalGeneration

    config = AutoConfig.from_pretrained(str(_model_folder(path)), local_files_only=True)
    with torch.device("meta"):
        return Qwen3VLForConditionalGeneration._from_config(config)
