"""Load a model to evaluate: a plain HF Qwen3-VL folder, or a GeoVR checkpoint (its base model
only: GeoVR parts are training-time objectives, stripped at inference), with its tokenizer."""
from __future__ import annotations

from pathlib import Path

import torch

from ..progress import hf_bars_on_terminal


def resolve_device(device: str = "auto") -> torch.device:
    """auto: the GPU when one is visible, else the CPU; a CUDA device without one is an error."""
    from ..teachers.runtime import resolve_device as default_device

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: no CUDA device here; use --device cpu")
    return default_device(None if device == "auto" else device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """auto: bf16 on a GPU, fp32 on a CPU."""
    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in table:
        raise ValueError(f"dtype must be auto, bf16, fp16 or fp32, got {dtype!r}")
    return table[dtype]


def model_name(path: str | Path) -> str:
    """A name for the model at `path` that two training runs never share: the folder's name, or
    for a run's `final/` (or `checkpoints/step_N`) the run folder's ("tiny", "tiny_step_00000040")."""
    p = Path(path).resolve()
    if p.name == "base" and (p.parent / "geovr_config.json").is_file():
        p = p.parent
    if p.name == "final":
        return p.parent.name
    if p.name.startswith("step_") and p.parent.name == "checkpoints":
        return f"{p.parent.parent.name}_{p.name}"
    return p.name


def model_folder(path: str | Path) -> Path:
    """The HF folder holding the Qwen3-VL weights: `path`, or `path/base` for a GeoVR checkpoint."""
    path = Path(path)
    if (path / "geovr_config.json").is_file():
        return path / "base"
    if (path / "config.json").is_file():
        return path
    raise FileNotFoundError(f"--model {path}: neither a HF Qwen3-VL folder (config.json) nor a GeoVR "
                            "checkpoint (geovr_config.json + base/)")


def load_model(path: str | Path, device: torch.device, dtype: torch.dtype):
    """(Qwen3VLForConditionalGeneration in eval mode on `device`, tokenizer)."""
    from transformers import AutoTokenizer, Qwen3VLForConditionalGeneration

    folder = model_folder(path)
    if not any(folder.glob("tokenizer*.json")):
        raise FileNotFoundError(f"{folder} has no tokenizer files; save the tokenizer beside the weights "
                                "(the trainer's final checkpoint does)")
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    if tokenizer.chat_template is None:
        raise ValueError(f"{folder}: the tokenizer has no chat template (chat_template.jinja or "
                         "tokenizer_config.json's chat_template); prompts cannot be built")
    with hf_bars_on_terminal():
        model = Qwen3VLForConditionalGeneration.from_pretrained(folder, dtype=dtype, local_files_only=True)
    return model.to(device).eval(), tokenizer
