"""A tiny random Qwen3-VL (6 text layers, DeepStack on the first) and real batches built from
synthetic videos through the data pipeline."""
import dataclasses

import pytest
import torch

from geovr.data.dataset import VideoQADataset
from geovr.data.datasets import read_vsi590k
from geovr.data.qwen_inputs import QwenTransform, collate
from geovr.data.synthetic import WorldConfig, generate
from geovr.data.tiny_tokenizer import build_tiny_tokenizer
from geovr.model.config import GeoVRConfig


@pytest.fixture(scope="session")
def tok():
    return build_tiny_tokenizer()


def tiny_qwen3vl(tok, layers: int = 6):
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|image_pad|>", "<|video_pad|>", "<|vision_start|>", "<|vision_end|>")}
    cfg = Qwen3VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=32768,
                         rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True}),
        vision_config=dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                           patch_size=16, temporal_patch_size=2, spatial_merge_size=2, deepstack_visual_indexes=[0],
                           num_position_embeddings=256),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    return Qwen3VLForConditionalGeneration(cfg).eval()


def small_heads(cfg: GeoVRConfig = GeoVRConfig.paper()) -> GeoVRConfig:
    return dataclasses.replace(cfg, teacher_dim=32, camera_hidden=32, scale_hidden=16, dpt_channels=(8, 16, 16, 16),
                               dpt_features=8, projector_hidden=32)


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_syn")
    generate(out, scenes=2, seed=4, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=2.0), progress=False)
    return out


@pytest.fixture(scope="session")
def batch(synthetic_root, tok):
    """Two video samples (4 frames each) from two scenes."""
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    last = max(i for i, r in enumerate(recs) if r.extra["scene"] != recs[0].extra["scene"])
    return collate([ds[0], ds[last]], tok.pad_token_id), [recs[0], recs[last]]
