"""LoRA adapters on the student's LLM (peft: the optional extra `pip install -e ".[lora]"`).

- `add_lora(base, settings)`: adapters on the targeted linear layers of the LLM's decoder layers
  (`model.language_model`), whose own weights (embeddings, norms, projections) and the LM head are
  then frozen. Nothing else is touched: the vision mergers and every GeoVR part (camera and scale
  tokens, heads, projectors) keep training in full. The release's LoRA path freezes them too.
- `merge_adapters(state, scaling)` / `merged_state_dict(base)`: the plain Qwen3-VL state dict
  (each adapter's delta added to its layer's weight, under the layer's own name), for a final
  model or an export, from a module or a gathered state dict.
- `adapter_state_dict(base)` and `adapter_config(settings)`: a peft adapter folder's content, for
  users who serve adapters.

The adapted model's module names: `<layer>.base_layer.weight` (the frozen weight) and
`<layer>.lora_A.default.weight` [r, in], `<layer>.lora_B.default.weight` [out, r]; the update is
W + (alpha / r) B A.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# the release's targets (peft's names for Qwen3-VL's decoder projections)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj", "gate_proj")
ADAPTER = "default"  # peft's adapter name
# the parts a LoRA run trains in full beside the adapters, as peft's modules_to_save names them
FULLY_TRAINED = ("merger", "deepstack_merger_list")


@dataclass(frozen=True)
class LoraSettings:
    """rank: r (> 0); alpha: the update is scaled by alpha / r; dropout: on the adapter's input;
    targets: linear layers of the LLM's decoder layers, by their last name."""

    rank: int = 64
    alpha: float = 128.0
    dropout: float = 0.05
    targets: tuple[str, ...] = LORA_TARGETS


def require_peft():
    """The peft module, or ImportError saying how to install it."""
    try:
        import peft
    except ImportError as exc:
        raise ImportError("model.lora_rank > 0 needs peft: pip install -e '.[lora]' (or pip install peft)") from exc
    return peft


def adapter_config(settings: LoraSettings):
    """peft's LoraConfig of `settings`."""
    peft = require_peft()
    return peft.LoraConfig(r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                           target_modules=list(settings.targets), bias="none")


def lora_layers(module: nn.Module) -> dict[str, nn.Module]:
    """The adapted layers under `module`, by name."""
    from peft.tuners.lora import LoraLayer

    return {name: m for name, m in module.named_modules() if isinstance(m, LoraLayer)}


def add_lora(base: nn.Module, settings: LoraSettings) -> int:
    """Put adapters on `base.model.language_model` (a Qwen3-VL's LLM) and freeze the LLM's weights
    and the LM head. Returns the number of adapter parameters. ValueError when a target names no
    layer of the LLM."""
    peft = require_peft()
    llm = base.model.language_model
    present = {name.rsplit(".", 1)[-1] for name, m in llm.named_modules() if isinstance(m, nn.Linear)}
    missing = [t for t in settings.targets if t not in present]
    if missing:
        raise ValueError(f"model.lora_targets: {missing} name no linear layer of the LLM (it has {sorted(present)})")
    for p in llm.parameters():
        p.requires_grad_(False)
    base.lm_head.weight.requires_grad_(False)
    peft.inject_adapter_in_model(adapter_config(settings), llm, adapter_name=ADAPTER)
    return sum(p.numel() for n, p in llm.named_parameters() if ".lora_" in n)


def lora_scaling(base: nn.Module) -> float:
    """alpha / r of `base`'s adapters (one value: `add_lora` gives every layer the same)."""
    values = {float(m.scaling[ADAPTER]) for m in lora_layers(base).values()}
    if len(values) != 1:
        raise ValueError(f"expected one adapter scaling, found {sorted(values)}")
    return values.pop()


@torch.no_grad()
def merge_adapters(state: dict[str, torch.Tensor], scaling: float) -> dict[str, torch.Tensor]:
    """A state dict with adapters (any prefix: a base's, a GeoVRModel's `base.`, a gathered
    one) as the plain model's: each `<layer>.base_layer.weight` W becomes `<layer>.weight`
    W + scaling B A (computed in fp32, stored in W's dtype), the `lora_` entries dropped. A state
    dict without adapters is returned as it is."""
    out = {}
    for name, tensor in state.items():
        if ".lora_" in name:
            continue
        if name.endswith(".base_layer.weight"):
            layer = name[:-len(".base_layer.weight")]
            a = state[f"{layer}.lora_A.{ADAPTER}.weight"].float()
            b = state[f"{layer}.lora_B.{ADAPTER}.weight"].float()
            tensor = (tensor.float() + scaling * (b @ a)).to(tensor.dtype)
        out[name.replace(".base_layer.", ".")] = tensor
    return out


def merged_state_dict(base: nn.Module) -> dict[str, torch.Tensor]:
    """`base.state_dict()` as the plain model's (`merge_adapters`); a base without adapters
    gives its own state dict."""
    state = base.state_dict()
    return merge_adapters(state, lora_scaling(base)) if lora_layers(base) else state


def has_lora(module: nn.Module) -> bool:
    """Whether `module` holds adapters (without importing peft when none can exist)."""
    return any(".lora_" in name for name, _ in module.named_parameters())


def settings_of(base: nn.Module) -> LoraSettings:
    """The LoRA settings `base`'s adapters were made with (read from its layers)."""
    layers = lora_layers(base.model.language_model)
    if not layers:
        raise ValueError("the model holds no LoRA adapters")
    first = next(iter(layers.values()))
    dropout = first.lora_dropout[ADAPTER]
    names = {n.rsplit(".", 1)[-1] for n in layers}
    targets = tuple(t for t in LORA_TARGETS if t in names) + tuple(sorted(names - set(LORA_TARGETS)))
    return LoraSettings(int(first.r[ADAPTER]), float(first.lora_alpha[ADAPTER]),
                        float(dropout.p) if isinstance(dropout, nn.Dropout) else 0.0, targets)


def fully_trained_modules(base: nn.Module) -> list[str]:
    """The outermost modules of `base` outside the LLM whose every parameter trains (the vision
    mergers, or the whole vision tower when it is not frozen): peft's `modules_to_save`."""
    chosen: list[str] = []
    for name, m in base.named_modules():
        if not name or name.startswith(("model.language_model", "lm_head")) or isinstance(m, (nn.ModuleList,
                                                                                             nn.ModuleDict)):
            continue
        if any(name.startswith(c + ".") for c in chosen):
            continue
        params = list(m.parameters())
        if params and all(p.requires_grad for p in params):
            chosen.append(name)
    return chosen


def adapter_state_dict(base: nn.Module, state: dict | None = None) -> dict[str, torch.Tensor]:
    """The adapters and the fully trained modules (`fully_trained_modules`), named as a peft
    adapter folder of the whole Qwen3-VL names them (`base_model.model.<name>`, the adapter name
    dropped). state: `base`'s weights to take instead of its own (e.g. gathered from shards)."""
    keep = tuple(m + "." for m in fully_trained_modules(base))
    out = {}
    for name, tensor in (base.state_dict() if state is None else state).items():
        if ".lora_" in name:
            out["base_model.model." + name.replace(f".{ADAPTER}.", ".")] = tensor.detach().cpu().contiguous()
        elif name.startswith(keep):
            out["base_model.model." + name] = tensor.detach().cpu().contiguous()
    return out


def write_adapter(base: nn.Module, folder, base_model: str | None = None, state: dict | None = None) -> None:
    """A peft adapter folder (adapter_config.json, adapter_model.safetensors) of `base`'s adapters
    and fully trained modules: `PeftModel.from_pretrained(<the base model>, folder)` computes what
    `base` computes. base_model: the path recorded as the adapter's base; state: as for
    `adapter_state_dict`."""
    from safetensors.torch import save_file

    peft = require_peft()
    s = settings_of(base)
    config = peft.LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=list(s.targets),
                             bias="none", modules_to_save=fully_trained_modules(base) or None,
                             base_model_name_or_path=base_model)
    config.save_pretrained(str(folder))
    save_file(adapter_state_dict(base, state), str(folder) + "/adapter_model.safetensors")
