"""The student's bf16 autocast (`geovr.model.precision`): the weight-cast cache is off (a bf16 copy
of every weight would otherwise live until the end of the forward), and the values are those of
the cached autocast."""
import torch

from geovr.model.precision import bf16_autocast


def test_bf16_autocast_keeps_no_weight_copies_and_computes_the_same():
    torch.manual_seed(0)
    layer = torch.nn.Linear(32, 16)
    x = torch.randn(4, 32)
    with bf16_autocast("cpu"):
        assert torch.is_autocast_enabled("cpu") and not torch.is_autocast_cache_enabled()
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        got = layer(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref = layer(x)
    assert got.dtype == torch.bfloat16 and torch.equal(got, ref)


def test_frozen_vision_blocks_in_bf16_give_the_same_tower_outputs(tok, batch):
    """The vision blocks' Linear weights stored in bf16 (`lower_frozen_vision`): under bf16
    autocast the tower's merged tokens and DeepStack features are bit-identical; the mergers (trained)
    and the patch embedding keep fp32; blocks that still train are refused."""
    import copy

    import pytest

    from model_helpers import tiny_qwen3vl
    from geovr.model.freeze import freeze_vision_tower, lower_frozen_vision

    b = batch[0]
    visual = tiny_qwen3vl(tok).model.visual
    with pytest.raises(ValueError, match="not frozen"):
        lower_frozen_vision(visual)
    freeze_vision_tower(visual)
    low = copy.deepcopy(visual)
    assert lower_frozen_vision(low) == 2 * 2 * len(low.blocks)  # qkv, proj, fc1, fc2 per block
    assert low.blocks[0].attn.qkv.weight.dtype == torch.bfloat16 and low.blocks[0].norm1.weight.dtype == torch.float32
    assert all(p.dtype == torch.float32 and p.requires_grad for p in low.merger.parameters())
    assert low.patch_embed.proj.weight.dtype == torch.float32
    with torch.no_grad(), bf16_autocast("cpu"):
        ref = visual(b["pixel_values_videos"], grid_thw=b["video_grid_thw"])
        got = low(b["pixel_values_videos"], grid_thw=b["video_grid_thw"])
    assert torch.equal(got.pooler_output, ref.pooler_output)
    assert len(got.deepstack_features) == len(ref.deepstack_features) > 0
    for x, y in zip(got.deepstack_features, ref.deepstack_features):
        assert torch.equal(x, y)


def test_the_trainer_lowers_the_frozen_vision_blocks_only_under_bf16_autocast(tok):
    from geovr.train.build import build_model
    from geovr.train.config import tiny

    for dtype, expected in (("bf16", torch.bfloat16), ("auto", torch.float32), ("fp32", torch.float32)):
        cfg = tiny()
        cfg.model.dtype = dtype
        model = build_model(cfg, tok, torch.device("cpu"))
        assert model.base.model.visual.blocks[0].mlp.linear_fc1.weight.dtype == expected, dtype
