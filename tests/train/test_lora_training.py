"""LoRA training in the trainer (`model.lora_rank`): the tiny job trains with every loss part
falling, the LLM's own weights never move, the adapters, the mergers and every GeoVR part do, the
optimizer's groups and rates are as configured; a resume is bit-exact; the final model and the
export are a plain Qwen3-VL with the adapters merged, or a peft adapter folder. (Recompute, the
teacher cache, packed sequences and FSDP with LoRA are tested beside their full-model tests.)"""
import pytest
import torch

from geovr.train.config import ConfigError, tiny, validate
from geovr.train.loop import Trainer
from train_helpers import losses, small_config

pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[lora]'")


def _lora(cfg, rank=4):
    cfg.model.lora_rank, cfg.model.lora_alpha, cfg.model.lora_dropout = rank, 2.0 * rank, 0.0
    return cfg


def test_lora_run_trains_adapters_mergers_and_geovr_parts_only(synthetic_root, tmp_path):
    cfg = _lora(small_config(synthetic_root, tmp_path / "run", steps=36), rank=8)
    cfg.optim.lr_lora = 1e-2  # adapters take a larger rate than full fine-tuning (the tiny preset's lr: 1e-3)
    cfg.checkpoint.export = True
    trainer = Trainer(cfg)
    before = {n: p.detach().clone() for n, p in trainer.geo.named_parameters()}
    summary = trainer.train()
    for part in ("text", "pose", "depth", "align", "scale"):
        assert summary[f"loss/{part} last"] < 0.9 * summary[f"loss/{part} first"], part
    groups = {g["name"]: g for g in trainer.optimizer.param_groups}
    assert set(groups) == {"llm", "lora", "new"}
    assert losses(tmp_path / "run")[36]["lr/lora"] > 0
    after = dict(trainer.geo.named_parameters())
    for name, old in before.items():
        moved = not torch.equal(after[name].detach(), old)
        llm_own = name.startswith(("base.model.language_model.", "base.lm_head.")) and ".lora_" not in name
        frozen_vit = name.startswith("base.model.visual.") and not any(
            m in name for m in (".merger.", "deepstack_merger_list"))
        if llm_own or frozen_vit:
            assert not moved and not after[name].requires_grad, name
        else:
            assert moved, name  # adapters (A too, once B left zero), mergers, every GeoVR part
    assert all(p.requires_grad for p in groups["lora"]["params"])
    assert {id(p) for p in groups["lora"]["params"]} == {id(p) for n, p in after.items() if ".lora_" in n}
    # the final model is a plain Qwen3-VL: the adapters merged into the weights
    from transformers import Qwen3VLForConditionalGeneration

    from geovr.model.lora import merged_state_dict

    plain = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path / "run" / "final" / "base")
    want = merged_state_dict(trainer.geo.base)
    got = plain.state_dict()
    assert set(got) == set(want)
    for k, v in want.items():
        torch.testing.assert_close(got[k], v.cpu(), rtol=0, atol=0, msg=k)


def test_lora_settings_are_checked():
    cfg = tiny()
    cfg.optim.lr_lora = 1e-4
    with pytest.raises(ConfigError, match="optim.lr_lora: is the LoRA adapters' rate"):
        validate(cfg)
    for field, value, message in [("lora_rank", -1, "model.lora_rank: must be >= 0"),
                                  ("lora_dropout", 1.0, "model.lora_dropout: must be in"),
                                  ("lora_targets", " , ", "model.lora_targets: names no layer")]:
        cfg = _lora(tiny())
        setattr(cfg.model, field, value)
        with pytest.raises(ConfigError, match=message):
            validate(cfg)
    cfg = _lora(tiny())
    cfg.parallel.backend = "megatron"
    with pytest.raises(ConfigError, match="LoRA runs on the ddp and fsdp backends"):
        validate(cfg)


def test_resume_continues_a_lora_run_bit_exactly(synthetic_root, tmp_path):
    """Resumed from its step-3 checkpoint (adapters, mergers, GeoVR parts, optimizer, RNG: the
    adapters' dropout draws included), a LoRA run's steps 4..6 and final weights equal the
    uninterrupted run's exactly."""
    import shutil

    def config(out):
        cfg = _lora(small_config(synthetic_root, out, steps=6))
        cfg.model.lora_dropout = 0.1
        cfg.checkpoint.every = 3
        return cfg

    full = Trainer(config(tmp_path / "full"))
    full.train()
    part = tmp_path / "part" / "checkpoints"
    part.mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step_00000003", part / "step_00000003")
    cfg = config(tmp_path / "part")
    cfg.checkpoint.resume = "auto"
    resumed = Trainer(cfg)
    assert resumed.step == 3
    resumed.train()
    a, b = losses(tmp_path / "full"), losses(tmp_path / "part")
    assert sorted(b) == [4, 5, 6]
    for step in (4, 5, 6):
        for key in ("loss", "loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale", "grad_norm"):
            assert b[step][key] == a[step][key], (step, key)
    want = dict(full.geo.named_parameters())
    for name, p in resumed.geo.named_parameters():
        assert torch.equal(p, want[name]), name


def test_export_merges_the_adapters_or_keeps_them(synthetic_root, tmp_path, batch, tok, capsys):
    """`python -m geovr.export` of a LoRA run (its training checkpoint, and its final model): a plain
    Qwen3-VL whose logits equal the adapted model's with the geometric parts off; with
    --keep-adapter, a peft folder that peft's `PeftModel` puts on the untouched base model to the
    same logits."""
    import dataclasses

    from transformers import Qwen3VLForConditionalGeneration

    from geovr.export import main as export_main
    from geovr.model.config import GeoVRConfig
    from geovr.model.geovr_model import GeoVRModel

    cfg = _lora(small_config(synthetic_root, tmp_path / "run", steps=4), rank=8)
    cfg.optim.lr_lora = 1e-2
    cfg.checkpoint.every, cfg.checkpoint.export = 4, True
    trainer = Trainer(cfg)
    trainer.train()
    b, _ = batch
    off = GeoVRModel(trainer.geo.base, dataclasses.replace(GeoVRConfig.off(), text_logits="all")).eval()
    with torch.no_grad():
        want = off(b).logits
    for name, src in [("from_checkpoint", tmp_path / "run" / "checkpoints" / "step_00000004"),
                      ("from_final", tmp_path / "run" / "final")]:
        assert export_main(["--ckpt", str(src), "--out", str(tmp_path / name)]) == 0
        plain = Qwen3VLForConditionalGeneration.from_pretrained(tmp_path / name).eval()
        assert not any("lora" in k or "base_layer" in k for k in plain.state_dict())
        with torch.no_grad():
            got = plain(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                        mm_token_type_ids=b["mm_token_type_ids"], pixel_values_videos=b["pixel_values_videos"],
                        video_grid_thw=b["video_grid_thw"]).logits
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=name)

    import peft

    from geovr.model.tiny import tiny_qwen3vl

    for name, src in [("adapter_from_checkpoint", tmp_path / "run" / "checkpoints" / "step_00000004"),
                      ("adapter_from_final", tmp_path / "run" / "final")]:
        assert export_main(["--ckpt", str(src), "--out", str(tmp_path / name), "--keep-adapter"]) == 0
        untouched = tiny_qwen3vl(tok, layers=cfg.model.tiny_layers, hidden=cfg.model.tiny_hidden, seed=cfg.train.seed)
        served = peft.PeftModel.from_pretrained(untouched, str(tmp_path / name)).eval()
        with torch.no_grad():
            got = served(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                         mm_token_type_ids=b["mm_token_type_ids"], pixel_values_videos=b["pixel_values_videos"],
                         video_grid_thw=b["video_grid_thw"]).logits
        torch.testing.assert_close(got, want, rtol=0, atol=1e-5, msg=name)
        assert (tmp_path / name / "tokenizer_config.json").is_file()
    # a run without adapters has none to keep
    plain = small_config(synthetic_root, tmp_path / "plain", steps=1)
    plain.checkpoint.export = True
    Trainer(plain).train()
    capsys.readouterr()
    assert export_main(["--ckpt", str(tmp_path / "plain" / "final"), "--out", str(tmp_path / "x"),
                        "--keep-adapter"]) == 2
    assert "was not trained with LoRA" in capsys.readouterr().err
