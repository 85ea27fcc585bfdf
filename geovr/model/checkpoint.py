"""Save and load a GeoVR model: the HF base (its own `save_pretrained` folder, with the tokenizer
and processor files) plus the GeoVR parts (tokens, heads, projectors) and their config.

Layout of a checkpoint folder:
  base/                  HF Qwen3-VL: config.json, model*.safetensors, tokenizer/processor files
                         (a LoRA run's adapters merged in: a plain Qwen3-VL)
  geovr.safetensors      camera/scale embeddings, heads, projectors
  geovr_config.json      the GeoVRConfig
  adapter/               a LoRA run's adapters and fully trained vision parts as a peft adapter folder
                         (`geovr.model.lora.write_adapter`), for `python -m geovr.export --keep-adapter`
Written to `<path>.part` and renamed, so a crash never leaves a half checkpoint.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path

from ..progress import hf_bars_on_terminal
from .config import GeoVRConfig
from .geovr_model import GeoVRModel
from .processor_files import write_processor_files


def geovr_state_dict(model: GeoVRModel) -> dict:
    """The GeoVR parts only (everything but `base.`)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not k.startswith("base.")}


def end_token_ids(tokenizer) -> list[int]:
    """End-of-turn ids: the tokenizer's eos and `<|im_end|>` / `<|endoftext|>` when present."""
    ids = {tokenizer.eos_token_id}
    for tok in ("<|im_end|>", "<|endoftext|>"):
        i = tokenizer.convert_tokens_to_ids(tok)
        if isinstance(i, int) and i != tokenizer.unk_token_id:
            ids.add(i)
    return sorted(i for i in ids if i is not None)


def mark_end_tokens(base, tokenizer) -> None:
    """Give `base` (a Qwen3-VL) the chat template's end tokens where its configs have none, so a
    plain `generate()` stops at the end of the answer: generation_config's eos (every end-of-turn
    id) and pad, the text config's eos (`<|im_end|>`) and pad."""
    ids = end_token_ids(tokenizer)
    if not ids:
        return
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    im_end = im_end if isinstance(im_end, int) and im_end != tokenizer.unk_token_id else ids[0]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[0]
    gen = getattr(base, "generation_config", None)
    if gen is not None:
        if gen.eos_token_id is None:
            gen.eos_token_id = ids if len(ids) > 1 else ids[0]
        if gen.pad_token_id is None:
            gen.pad_token_id = pad
    for cfg in {id(c): c for c in (base.config, getattr(base.config, "text_config", None)) if c is not None}.values():
        if getattr(cfg, "eos_token_id", None) is None:
            cfg.eos_token_id = im_end
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = pad


def save_plain_base(base, folder: str | os.PathLike, state_dict: dict | None = None) -> None:
    """`base.save_pretrained(folder)` as a plain Qwen3-VL: LoRA adapters (`geovr.model.lora`) merged
    into their layers' weights. state_dict: the base's weights to write instead of its own (e.g.
    gathered from shards), with its names."""
    from .lora import has_lora, lora_scaling, merge_adapters, merged_state_dict

    if has_lora(base):
        state_dict = merged_state_dict(base) if state_dict is None else merge_adapters(state_dict, lora_scaling(base))
    with hf_bars_on_terminal():
        base.save_pretrained(folder, safe_serialization=True, state_dict=state_dict)


def save_geovr(model: GeoVRModel, path: str | os.PathLike, tokenizer=None, processor_files_from: str | None = None,
               state_dict: dict | None = None) -> Path:
    """Write `model` to folder `path` (replaced atomically). tokenizer: saved beside the base
    weights; processor_files_from: a folder whose processor/tokenizer json files are copied too
    (e.g. the original Qwen3-VL download); state_dict: the weights to write instead of the
    model's own (e.g. a sharded model's, gathered), with the model's names."""
    from safetensors.torch import save_file

    from .lora import has_lora, write_adapter

    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "base").mkdir(parents=True)
    if tokenizer is not None:
        mark_end_tokens(model.base, tokenizer)
    base_sd = None if state_dict is None else {k[len("base."):]: v for k, v in state_dict.items()
                                               if k.startswith("base.")}
    save_plain_base(model.base, tmp / "base", base_sd)
    if has_lora(model.base):
        write_adapter(model.base, tmp / "adapter", state=base_sd)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp / "base")
    if processor_files_from:
        for f in Path(processor_files_from).iterdir():
            if f.suffix in (".json", ".jinja", ".txt", ".model") and not f.name.startswith(("config", "model")) \
                    and not (tmp / "base" / f.name).exists():
                shutil.copy2(f, tmp / "base" / f.name)
    write_processor_files(tmp / "base", model.base.config.vision_config)  # where the download gave none
    parts = geovr_state_dict(model) if state_dict is None else {
        k: v.detach().cpu().contiguous() for k, v in state_dict.items() if not k.startswith("base.")}
    save_file(parts, str(tmp / "geovr.safetensors"))
    (tmp / "geovr_config.json").write_text(json.dumps(dataclasses.asdict(model.cfg), indent=1))
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def load_geovr(path: str | os.PathLike, device: str = "cpu") -> GeoVRModel:
    """Rebuild the GeoVRModel of checkpoint folder `path`."""
    from safetensors.torch import load_file
    from transformers import Qwen3VLForConditionalGeneration

    path = Path(path)
    if not (path / "geovr_config.json").exists():
        raise FileNotFoundError(f"{path} is not a GeoVR checkpoint (no geovr_config.json)")
    raw = json.loads((path / "geovr_config.json").read_text())
    cfg = GeoVRConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    with hf_bars_on_terminal():
        base = Qwen3VLForConditionalGeneration.from_pretrained(path / "base", local_files_only=True).to(device)
    model = GeoVRModel(base, cfg).to(device)
    missing, unexpected = model.load_state_dict(load_file(str(path / "geovr.safetensors"), device=device), strict=False)
    missing = [k for k in missing if not k.startswith("base.")]
    if missing or unexpected:
        raise ValueError(f"{path}: GeoVR weights do not match the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    return model
