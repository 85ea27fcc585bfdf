"""The parts of a counted step, built at a spec's size (inside ShapeMode their weights are fake):
the student (Qwen3-VL + the GeoVR wiring), the teacher network, the cache's targets."""
from __future__ import annotations

import dataclasses

import torch
from torch import nn

from .spec import StepSpec


def plan_tokenizer():
    """The tiny tokenizer (its ids stand in for Qwen's: the cost does not depend on them)."""
    from ..data.tiny_tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


def base_model(spec: StepSpec, tokenizer) -> nn.Module:
    """Qwen3-VL at the spec's size, with the tokenizer's special-token ids (weights are fake)."""
    if spec.model == "tiny":
        from ..model.tiny import tiny_qwen3vl

        return tiny_qwen3vl(tokenizer, layers=spec.layers or 6)
    from transformers import Qwen3VLForConditionalGeneration

    from ..model.qwen_sizes import qwen3vl_config

    cfg = qwen3vl_config(spec.model.upper())
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    for k, v in ids.items():
        setattr(cfg, k, v)
    if spec.layers is not None:
        cfg.text_config.num_hidden_layers = spec.layers
    return Qwen3VLForConditionalGeneration(cfg)


def student_model(spec: StepSpec, tokenizer) -> nn.Module:
    from ..model.geovr_model import GeoVRModel
    from ..model.freeze import lower_frozen_vision
    from ..model.recompute import enable_recompute
    from ..train.build import geovr_config
    from ..train.config import paper, tiny
    from ..train.optim import freeze_vision

    cfg = tiny() if spec.model == "tiny" else paper()
    cfg.model.text_logits = "all" if spec.recipe == "release" else "supervised"
    if spec.model == "tiny":
        cfg.teacher.feature_dim = 64
    base = base_model(spec, tokenizer)
    if spec.gradient_checkpointing:
        enable_recompute(base, spec.checkpoint_keep, spec.checkpoint_layers)
    geo_cfg = geovr_config(cfg)
    if spec.layers is not None and spec.layers < 24:  # a shallow LLM for the validation runs
        geo_cfg = dataclasses.replace(geo_cfg, teacher_layers=geo_cfg.teacher_layers[:spec.layers])
    model = GeoVRModel(base, geo_cfg)
    if spec.lora_rank:  # as the trainer: adapters with its defaults (model.lora_*), the LLM's weights frozen
        cfg.model.lora_rank = spec.lora_rank
        _add_lora_in_shape_mode(model, cfg)
    freeze_vision(model)
    if spec.autocast and spec.recipe == "geovr":  # as the trainer on a GPU
        lower_frozen_vision(model.base.model.visual)
    return model.train()


def _add_lora_in_shape_mode(model: nn.Module, cfg) -> None:
    """`geovr.model.lora.add_lora` on fake weights: peft moves each new adapter to its base layer's
    device and dtype with `Module.to`, which cannot swap a fake tensor in place; here every tensor
    is on the one (fake) device in fp32 already, so a move to where a module's tensors are is skipped."""
    from unittest import mock

    from ..model.lora import add_lora
    from ..train.build import lora_settings

    real_to = nn.Module.to

    def to(module: nn.Module, *args, **kwargs):
        device = kwargs.get("device", args[0] if args else None)
        dtype = kwargs.get("dtype", args[1] if len(args) > 1 else None)
        tensors = list(module.parameters()) + list(module.buffers())
        if isinstance(device, (str, torch.device)) and all(
                t.device == torch.device(device) and dtype in (None, t.dtype) for t in tensors):
            return module
        return real_to(module, *args, **kwargs)

    with mock.patch.object(nn.Module, "to", to):
        add_lora(model.base, lora_settings(cfg))


def teacher_network(spec: StepSpec) -> nn.Module:
    """VGGT-1B at its size (`geovr.teachers.shapes`; a small TinyVGGT for the tiny model)."""
    from ..teachers.shapes import vggt_1b_shape
    from ..teachers.tiny_vggt import TinyVGGT

    # (the tiny one's fields of view kept positive, as a trained VGGT's are: the scale target runs)
    return TinyVGGT(dim=64, depth=24, fov_offset=100.0) if spec.model == "tiny" else vggt_1b_shape()


def metric_network(spec: StepSpec) -> nn.Module:
    """DA3METRIC-LARGE at its size (`geovr.teachers.shapes`; a narrow one for the tiny model)."""
    from ..teachers.shapes import DA3MetricShape

    return DA3MetricShape(dim=32, heads=2, features=32, out_channels=(16, 32, 64, 64)) if spec.model == "tiny" else DA3MetricShape()


def cached_targets(batch: dict, feature_dim: int, layers: tuple[int, ...], patch: int = 14,
                   device: torch.device | str = "cpu") -> list:
    """What the target cache (its default, pooled features) hands the loss per sample: depth and
    confidence upcast to fp32, features 2x2 pooled at the patch grid, in fp32 (the loader's tensors,
    on `device`)."""
    from ..teachers.base import TeacherTargets

    out = []
    for frames in batch["teacher_frames"]:
        t, _, h, w = frames.shape
        grid = (h // (2 * patch), w // (2 * patch))
        out.append(TeacherTargets(pose_enc=torch.zeros(t, 9, device=device), depth=torch.ones(t, h, w, device=device),
                                  depth_conf=torch.ones(t, h, w, device=device),
                                  features={l: torch.zeros(t, *grid, feature_dim, device=device) for l in layers},
                                  scale=torch.ones((), device=device), features_pooled=True))
    return out


def param_counts(student: nn.Module, teacher: nn.Module | None) -> dict[str, int]:
    """Parameters by part; "adapters": the LoRA adapters', counted in "llm" too."""
    llm = sum(p.numel() for n, p in student.named_parameters() if n.startswith("base.") and "visual" not in n)
    vision = sum(p.numel() for n, p in student.named_parameters() if "visual" in n)
    vision_trainable = sum(p.numel() for n, p in student.named_parameters() if "visual" in n and p.requires_grad)
    new = sum(p.numel() for n, p in student.named_parameters() if not n.startswith("base."))
    layers = sum(p.numel() for n, p in student.named_parameters() if ".language_model.layers." in n)
    adapters = sum(p.numel() for n, p in student.named_parameters() if ".lora_" in n)
    return {"llm": llm, "llm_layers": layers, "vision": vision, "vision_trainable": vision_trainable, "geovr_parts": new,
            "adapters": adapters,
            "teacher": sum(p.numel() for p in teacher.parameters()) if teacher is not None else 0,
            "trainable": sum(p.numel() for p in student.parameters() if p.requires_grad)}
