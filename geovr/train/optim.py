"""Parameter groups, AdamW and the learning-rate schedule of the release.

Groups: `llm` (the language model, lm_head, and the vision mergers: `visual.merger` and the
DeepStack mergers) at optim.lr; `lora` (the LoRA adapters, when model.lora_rank > 0: the LLM's own
weights are then frozen and `llm` holds the mergers) at optim.lr_lora, else optim.lr; `new` (every
GeoVR part: camera/scale embeddings, heads, projectors) at optim.lr_new; the rest of the ViT is
frozen (requires_grad False) when model.freeze_vision, else trains in `llm`.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..model.freeze import freeze_vision_tower
from .config import OptimConfig
from .describe import count_label

def freeze_vision(geo_model: nn.Module) -> int:
    """Freeze the ViT except its mergers. Returns the number of frozen parameters."""
    return freeze_vision_tower(geo_model.base.model.visual)


def param_groups(geo_model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """[{name: llm, params, lr}, {name: lora, ...}, {name: new, ...}] over the trainable
    parameters (groups without parameters left out)."""
    llm, lora, new = [], [], []
    for name, p in geo_model.named_parameters():
        if p.requires_grad:
            (new if not name.startswith("base.") else lora if ".lora_" in name else llm).append(p)
    lr_lora = cfg.lr if cfg.lr_lora is None else cfg.lr_lora
    groups = [{"name": "llm", "params": llm, "lr": cfg.lr, "weight_decay": cfg.weight_decay},
              {"name": "lora", "params": lora, "lr": lr_lora, "weight_decay": cfg.weight_decay},
              {"name": "new", "params": new, "lr": cfg.lr_new, "weight_decay": cfg.weight_decay}]
    return [g for g in groups if g["params"]]


def trainable_summary(geo_model: nn.Module, optimizer: torch.optim.Optimizer) -> str:
    """One line: the parameters each optimizer group trains at which base rate, and the frozen ones."""
    trained = {id(p) for g in optimizer.param_groups for p in g["params"]}
    frozen = sum(p.numel() for p in geo_model.parameters() if id(p) not in trained)
    groups = ", ".join(f"{g['name']} {count_label(sum(p.numel() for p in g['params']))} "
                       f"(lr {g.get('initial_lr', g['lr']):g})" for g in optimizer.param_groups)
    return f"{groups}; frozen {count_label(frozen)}"


def build_optimizer(geo_model: nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    groups = param_groups(geo_model, cfg)
    fused = all(p.is_cuda for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps, fused=fused or None)


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Multiplier of the base lr at optimizer step `step` (0-based): linear warmup over
    ceil(warmup_ratio x total) steps, then cosine to min_lr_ratio (or constant)."""
    warmup = math.ceil(cfg.warmup_ratio * total)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, total: int, cfg: OptimConfig):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, total, cfg))
