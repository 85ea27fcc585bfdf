"""The published Qwen3-VL 2B/4B/8B architectures build (meta device, no weights) with the GeoVR
wiring: parameter counts as published, the paper's layer maps, a local-folder loader."""
import pytest
import torch

from geovr.model.geovr_model import GeoVRModel
from geovr.model.qwen_sizes import load_qwen3vl, qwen3vl_config

# published totals of Qwen3-VL-{2B,4B,8B}-Instruct
PARAMS = {"2B": 2_127_532_032, "4B": 4_437_815_808, "8B": 8_767_123_696}
LAYER_MAPS = {"2B": {4: 6, 11: 14, 17: 21, 23: 28}, "4B": {4: 8, 11: 18, 17: 27, 23: 36},
              "8B": {4: 8, 11: 18, 17: 27, 23: 36}}


@pytest.mark.parametrize("size", ["2B", "4B", "8B"])
def test_real_sizes_build_on_meta(size):
    from transformers import Qwen3VLForConditionalGeneration

    with torch.device("meta"):
        base = Qwen3VLForConditionalGeneration(qwen3vl_config(size))
        model = GeoVRModel(base)
    assert sum(p.numel() for p in base.parameters()) == PARAMS[size]
    assert model.layer_map == LAYER_MAPS[size]
    d = base.config.text_config.hidden_size
    assert model.camera_embed.weight.shape == (2, d) and model.scale_embed.weight.shape == (1, d)
    assert sorted(model.projectors) == ["11", "17", "23", "4"]
    assert base.config.vision_config.out_hidden_size == d


def test_bad_size_and_missing_folder(tmp_path):
    with pytest.raises(ValueError, match="choose from"):
        qwen3vl_config("3B")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_qwen3vl(tmp_path)


def test_load_from_local_folder(tmp_path, tok):
    from geovr.model.tiny import tiny_qwen3vl

    base = tiny_qwen3vl(tok, layers=2)
    base.save_pretrained(tmp_path)
    loaded = load_qwen3vl(tmp_path)
    for (k, v), (k2, v2) in zip(base.state_dict().items(), loaded.state_dict().items()):
        assert k == k2
        torch.testing.assert_close(v, v2, rtol=0, atol=0)
