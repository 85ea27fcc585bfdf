"""LoRA on the student (`geovr.model.lora`, peft) on a tiny random Qwen3-VL and a real synthetic
batch: adapters exactly on the targeted decoder projections, the LLM's own weights frozen and
given no gradient, every GeoVR part and the vision mergers trained in full, and the merged plain
state dict computing what the adapted model computes."""
import dataclasses

import pytest
import torch

from model_helpers import small_heads, tiny_qwen3vl
from geovr.model.geovr_model import GeoVRModel

peft = pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[lora]'")

from geovr.model.lora import (LORA_TARGETS, LoraSettings, add_lora, adapter_state_dict,  # noqa: E402
                              lora_layers, merged_state_dict)

SETTINGS = LoraSettings(rank=4, alpha=8.0, dropout=0.0)


def _randomise_adapters(base, seed=0):
    """B starts at zero (the adapted model equals the base): give every adapter a non-zero update."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in lora_layers(base).values():
            for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def test_adapters_sit_exactly_on_the_targets(tok):
    base = tiny_qwen3vl(tok, layers=3)
    n = add_lora(base, SETTINGS)
    layers = lora_layers(base)
    want = {f"model.language_model.layers.{i}.{part}.{t}" for i in range(3)
            for part, names in (("self_attn", ("q_proj", "k_proj", "v_proj", "o_proj")),
                                ("mlp", ("gate_proj", "up_proj", "down_proj"))) for t in names}
    assert set(layers) == want and set(LORA_TARGETS) == {k.rsplit(".", 1)[-1] for k in want}
    assert n == sum(SETTINGS.rank * (m.in_features + m.out_features) for m in layers.values())
    trainable = {name for name, p in base.named_parameters() if p.requires_grad}
    adapters = {name for name in trainable if ".lora_" in name}
    assert len(adapters) == 2 * len(want)
    # beside the adapters, only the vision tower's own trainable parts (frozen separately by the trainer)
    assert all(name.startswith("model.visual.") for name in trainable - adapters)
    assert not base.lm_head.weight.requires_grad and not base.model.language_model.embed_tokens.weight.requires_grad


def test_targets_that_name_nothing_are_refused(tok):
    base = tiny_qwen3vl(tok, layers=2)
    with pytest.raises(ValueError, match=r"model.lora_targets: \['qkv'\]"):
        add_lora(base, dataclasses.replace(SETTINGS, targets=("q_proj", "qkv")))


def test_geovr_parts_and_mergers_train_in_full_and_the_llm_gets_no_gradient(tok, batch, synthetic_root):
    """Every loss's gradient reaches the adapters, never the LLM's own weights; every GeoVR part
    and the vision mergers get one (the release's LoRA path freezes them: that must fail here)."""
    from geovr.model.freeze import freeze_vision_tower

    b, _ = batch
    base = tiny_qwen3vl(tok)
    base.train()
    add_lora(base, SETTINGS)
    _randomise_adapters(base)
    model = GeoVRModel(base, small_heads())
    freeze_vision_tower(base.model.visual)
    out = model(b)
    loss = out.loss_text + sum(p.square().mean() for p in out.pose) + sum(d.mean() for d in out.depth) \
        + out.scale.sum() + sum(f.square().mean() for fs in out.features.values() for f in fs)
    loss.backward()
    for name, p in model.named_parameters():
        if name.startswith("base.model.language_model.") and ".lora_" not in name or name == "base.lm_head.weight":
            assert not p.requires_grad and p.grad is None, name
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
    geo = [n for n, _ in model.named_parameters() if not n.startswith("base.")]
    mergers = [n for n, _ in model.named_parameters() if ".merger." in n or "deepstack_merger_list" in n]
    assert geo and mergers
    assert all(dict(model.named_parameters())[n].requires_grad for n in geo + mergers)


def test_merged_state_dict_is_the_adapted_model(tok, batch):
    """A plain Qwen3-VL loaded with `merged_state_dict` gives the adapted model's logits."""
    b, _ = batch
    base = tiny_qwen3vl(tok, layers=3)
    add_lora(base, SETTINGS)
    _randomise_adapters(base)
    base.eval()
    plain = tiny_qwen3vl(tok, layers=3)
    merged = merged_state_dict(base)
    assert set(merged) == set(plain.state_dict())
    plain.load_state_dict(merged)
    kw = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], mm_token_type_ids=b["mm_token_type_ids"],
              pixel_values_videos=b["pixel_values_videos"], video_grid_thw=b["video_grid_thw"])
    with torch.no_grad():
        want, got = base(**kw).logits, plain(**kw).logits
        before = tiny_qwen3vl(tok, layers=3)(**kw).logits
    torch.testing.assert_close(got, want, rtol=0, atol=2e-5)
    assert (want - before).abs().max() > 1e-3  # the adapters changed what the model computes


def test_adapter_folder_is_what_peft_loads(tok, batch, tmp_path):
    """`write_adapter`: peft's own `PeftModel.from_pretrained` on the untouched base model computes
    what the adapted model computes (adapters, and the trained mergers as modules_to_save)."""
    from geovr.model.freeze import freeze_vision_tower
    from geovr.model.lora import fully_trained_modules, settings_of, write_adapter

    b, _ = batch
    base = tiny_qwen3vl(tok, layers=3)
    freeze_vision_tower(base.model.visual)
    add_lora(base, dataclasses.replace(SETTINGS, dropout=0.1))
    _randomise_adapters(base)
    with torch.no_grad():  # the mergers trained too
        for name, p in base.named_parameters():
            if "merger" in name:
                p.add_(0.01 * torch.randn_like(p))
    base.eval()
    assert settings_of(base) == dataclasses.replace(SETTINGS, dropout=0.1)
    assert fully_trained_modules(base) == ["model.visual.merger", "model.visual.deepstack_merger_list.0",
                                           "model.visual.deepstack_merger_list.1"]
    write_adapter(base, tmp_path / "adapter")
    sd = adapter_state_dict(base)
    assert "base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight" in sd
    assert not any(".default." in k or "base_layer" in k or ".blocks." in k for k in sd)
    loaded = peft.PeftModel.from_pretrained(tiny_qwen3vl(tok, layers=3), str(tmp_path / "adapter")).eval()
    kw = dict(input_ids=b["input_ids"], attention_mask=b["attention_mask"], mm_token_type_ids=b["mm_token_type_ids"],
              pixel_values_videos=b["pixel_values_videos"], video_grid_thw=b["video_grid_thw"])
    with torch.no_grad():
        torch.testing.assert_close(loaded(**kw).logits, base(**kw).logits, rtol=0, atol=1e-6)
    plain = tiny_qwen3vl(tok, layers=3)
    with torch.no_grad():
        assert (plain(**kw).logits - base(**kw).logits).abs().max() > 1e-3


def test_merge_equals_peft_merging_in_place(tok):
    """`merge_adapters` on a state dict (as gathered from shards) gives the weights peft's own
    `merge()` writes into each layer, under the plain names."""
    from geovr.model.lora import lora_scaling, merge_adapters

    base = tiny_qwen3vl(tok, layers=2)
    add_lora(base, SETTINGS)
    _randomise_adapters(base, seed=3)
    assert lora_scaling(base) == SETTINGS.alpha / SETTINGS.rank
    ours = merge_adapters({f"base.{k}": v for k, v in base.state_dict().items()}, lora_scaling(base))
    for layer in lora_layers(base).values():
        layer.merge()
    theirs = {k.replace(".base_layer.", "."): v for k, v in base.state_dict().items() if ".lora_" not in k}
    assert set(ours) == {f"base.{k}" for k in theirs}
    for k, v in theirs.items():
        torch.testing.assert_close(ours[f"base.{k}"], v, rtol=0, atol=1e-6, msg=k)
