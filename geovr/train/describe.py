"""What a run is about to train, in the first lines of its log: the model (folder or tiny random,
parameters, dtype), the teacher (online, cache, none) and the data files with their record counts."""
from __future__ import annotations

from torch import nn

from .config import Config


def count_label(n: int) -> str:
    """A parameter count for a log line: 2.13B, 0.4M, 74.5K."""
    if n >= 1e9:
        return f"{n / 1e9:,.2f}B"
    return f"{n / 1e6:,.1f}M" if n >= 1e5 else f"{n / 1e3:,.1f}K"


def model_line(cfg: Config, model: nn.Module, compute: str) -> str:
    """model: where it came from, its parameter count (global, also when sharded) and how it
    computes (`compute`, e.g. "fp32" or "bf16 autocast")."""
    m = cfg.model
    total = sum(p.numel() for p in model.parameters())
    source = (f"tiny random Qwen3-VL ({m.tiny_layers} layers, hidden {m.tiny_hidden}; model.path=tiny)"
              if m.is_tiny else m.path)
    lora = f", LoRA rank {m.lora_rank} on the LLM" if m.lora_rank else ""
    return f"model: {source}, {count_label(total)} parameters, {compute}{lora}"


def teacher_line(cfg: Config, teacher) -> str:
    """teacher: none (and why), or which teacher runs online, and the target cache when one is read."""
    t = cfg.teacher
    if teacher is None:
        why = "model.geovr=off" if cfg.model.geovr != "paper" else "every geometric loss weight is 0"
        return f"teacher: none ({why}: plain fine-tuning)"
    online_teacher = getattr(teacher, "teacher", teacher)  # a CachedTeacher wraps the online one
    if t.name == "synthetic":
        online = f"synthetic (the world's ground truth under {online_teacher.root})"
    else:
        metric = f", metric scale {t.metric_weights}" if t.metric_weights else ""
        online = f"VGGT-1B {t.vggt_weights}{metric}"
    cache = getattr(teacher, "cache", None)
    if cache is None:
        return f"teacher: {online}, online (no teacher.cache)"
    entries = len(cache.index.get("entries", {}))
    return f"teacher: cache {t.cache} ({entries:,} entries); a miss runs {online} online"


def data_lines(read) -> list[str]:
    """data: one line per annotation file (a `ReadResult`'s per-file counts)."""
    return [f"data: {line}" for line in read.file_lines()]
