"""Building a run's parts from its config: path checks (before any work), the synthetic data when
absent, the tokenizer, the GeoVR model, the dataset and the teacher."""
from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

import torch

from ..model.attention import resolve_attention
from ..model.config import GeoVRConfig
from ..model.geovr_model import GeoVRModel
from ..model.freeze import lower_frozen_vision
from ..model.precision import uses_bf16_autocast
from ..model.recompute import enable_recompute
from ..teachers.base import Teacher
from .config import SYNTHETIC_PATH, TINY_MODEL, Config, ConfigError, DataConfig, uses_teacher

logger = logging.getLogger("geovr.train")


def synthetic_world(d: DataConfig):
    """The synthetic world's `WorldConfig` from the data config's `synthetic_*` fields."""
    from ..data.synthetic import WorldConfig

    return WorldConfig(height=d.synthetic_height, width=d.synthetic_width, seconds=d.synthetic_seconds,
                       colour_by_category=d.synthetic_colour_by_category)


def data_paths(cfg: Config) -> list[str]:
    """The annotation files of data.path (comma-separated for several)."""
    return [p for p in cfg.data.path.split(",") if p]


def data_root(cfg: Config) -> Path:
    """The first annotation file's folder (the synthetic world's, the default teacher root)."""
    return Path(data_paths(cfg)[0]).resolve().parent


def check_paths(cfg: Config) -> None:
    """Every path the run needs exists (the synthetic data may still be made). Raises ConfigError."""
    m, d, t = cfg.model, cfg.data, cfg.teacher
    if m.folder is not None and not (Path(m.folder) / "config.json").is_file():
        raise ConfigError("model.path", f"{m.path} is not a Qwen3-VL folder (no config.json); pass a local "
                          f"checkpoint folder, or model.path={TINY_MODEL} for the tiny random model")
    if m.tokenizer is not None and not Path(m.tokenizer).is_dir():
        raise ConfigError("model.tokenizer", f"folder {m.tokenizer} not found")
    paths = data_paths(cfg)
    if len(paths) > 1:
        for path in paths:
            if not Path(path).is_file():
                raise ConfigError("data.path", f"{path} not found (one of the comma-separated annotation files)")
    elif not Path(d.path).is_file() and not writes_synthetic(cfg):
        hint = ("the synthetic world is written unasked only to " + SYNTHETIC_PATH + "; data.synthetic=true writes "
                "it here" if d.synthetic is None else "or set data.synthetic=true to make the synthetic world there")
        raise ConfigError("data.path", f"{d.path} not found ({hint})")
    if d.media_root is not None and not Path(d.media_root).is_dir():
        raise ConfigError("data.media_root", f"folder {d.media_root} not found")
    for name in ("vggt_weights", "metric_weights"):
        value = getattr(t, name)
        if value and not Path(value).exists():
            raise ConfigError(f"teacher.{name}", f"{value} not found (a local checkpoint path)")
    if t.root is not None and not Path(t.root).is_dir():
        raise ConfigError("teacher.root", f"folder {t.root} not found")


def writes_synthetic(cfg: Config) -> bool:
    """Whether an absent data.path is written as the synthetic world (see DataConfig.synthetic)."""
    d = cfg.data
    if d.synthetic is None:
        return Path(d.path).resolve() == Path(SYNTHETIC_PATH).resolve()
    return d.synthetic


def ensure_data(cfg: Config, progress: bool = True) -> Path:
    """The annotation file, writing the synthetic world first when it is absent and allowed."""
    path = Path(cfg.data.path)
    if len(data_paths(cfg)) > 1 or path.is_file():
        return path
    d = cfg.data
    from ..data.synthetic import SCENES_JSONL, generate

    logger.info("first run: writing the synthetic world (%d scenes) to %s", d.synthetic_scenes, path.parent)
    world = synthetic_world(d)
    written = generate(path.parent, scenes=d.synthetic_scenes, seed=d.synthetic_seed, cfg=world, progress=progress)
    if path.resolve() not in (written.resolve(), (written.parent / SCENES_JSONL).resolve()):
        raise ConfigError("data.path", f"the synthetic world writes {written.name} (one question per record) and "
                          f"{SCENES_JSONL} (one conversation per scene); set data.path={written}")
    return path


def build_tokenizer(cfg: Config):
    if cfg.model.is_tiny and cfg.model.tokenizer is None:
        from ..data.tiny_tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(cfg.model.tokenizer or cfg.model.folder, local_files_only=True)


def geovr_config(cfg: Config) -> GeoVRConfig:
    base = GeoVRConfig.paper() if cfg.model.geovr == "paper" else GeoVRConfig.off()
    w = cfg.loss
    base = dataclasses.replace(base, camera=base.camera and w.pose > 0, depth=base.depth and w.depth > 0,
                               align=base.align and w.align > 0, scale=base.scale and w.scale > 0,
                               teacher_dim=cfg.teacher.feature_dim, text_logits=cfg.model.text_logits)
    if cfg.model.heads == "small":
        base = dataclasses.replace(base, camera_hidden=128, scale_hidden=64, dpt_channels=(32, 64, 64, 64),
                                   dpt_features=32, projector_hidden=128)
    return base


def build_model(cfg: Config, tokenizer, device: torch.device, base_weights: bool = True) -> GeoVRModel:
    """The GeoVR model on `device` (initialised identically on every rank). base_weights=False: a
    model.path base is built on the meta device, without reading its weights (the Megatron backend
    loads each rank's shard itself); the GeoVR parts are initialised alike either way."""
    from .optim import freeze_vision

    lazy = not cfg.model.is_tiny and not base_weights
    if cfg.model.is_tiny:
        from ..model.tiny import tiny_qwen3vl

        base = tiny_qwen3vl(tokenizer, layers=cfg.model.tiny_layers, hidden=cfg.model.tiny_hidden, seed=cfg.train.seed)
    elif not lazy:
        from ..model.qwen_sizes import load_qwen3vl

        base = load_qwen3vl(cfg.model.path)
    else:
        from ..model.qwen_sizes import meta_qwen3vl

        base = meta_qwen3vl(cfg.model.path)
    if cfg.model.gradient_checkpointing:
        enable_recompute(base, cfg.model.checkpoint_keep, cfg.model.checkpoint_layers)
    if not cfg.model.is_tiny:  # the GeoVR parts' init must not depend on how the base was built
        torch.manual_seed(cfg.train.seed)
    model = GeoVRModel(base, geovr_config(cfg))
    if cfg.model.lora_rank:
        add_adapters(model, cfg)
    kind = resolve_attention(cfg.model.attention, device, packed=bool(cfg.data.group_by_video))
    if kind is not None:
        model.use_attention(kind)
    if cfg.model.freeze_vision:
        freeze_vision(model)
        if not lazy and uses_bf16_autocast(cfg.model.dtype, device):
            lower_frozen_vision(model.base.model.visual)
    if lazy:
        return model.train()  # the base is on the meta device; the GeoVR parts on the CPU
    return model.to(device).train()


def lora_settings(cfg: Config):
    """The run's LoRA settings (`geovr.model.lora.LoraSettings`)."""
    from ..model.lora import LoraSettings

    m = cfg.model
    return LoraSettings(m.lora_rank, m.lora_alpha, m.lora_dropout, m.lora_target_names)


def add_adapters(model: GeoVRModel, cfg: Config) -> int:
    """LoRA adapters on `model`'s LLM (`geovr.model.lora.add_lora`), initialised from train.seed
    alone (the same on every rank, and the GeoVR parts' initialisation untouched). Returns the
    adapters' parameter count."""
    from ..model.lora import add_lora

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.train.seed)
        return add_lora(model.base, lora_settings(cfg))


def build_dataset(cfg: Config, tokenizer):
    """(VideoQADataset, the reader's ReadResult: its invalid-record errors, per-file counts)."""
    from ..data.dataset import VideoQADataset
    from ..data.datasets import read_dataset
    from ..data.qwen_inputs import QwenTransform
    from ..data.sampling import QwenVision

    d = cfg.data
    res = read_dataset(d.format, d.path, d.media_root)
    if not res.records:
        raise ConfigError("data.path", f"{d.path} holds no valid records ({len(res.errors)} invalid; first: "
                          f"{res.errors[0] if res.errors else 'none'})")
    transform = QwenTransform(tokenizer, vision=QwenVision(max_tokens_per_frame=d.tokens_per_frame),
                              teacher_longest=d.teacher_longest, max_length=d.max_length)
    return VideoQADataset(res.records, sampling=frame_sampling(cfg), backend=d.backend, transform=transform), res


def frame_sampling(cfg: Config):
    """The run's frame sampling rule (data.fps, data.min_frames, data.max_frames): a FrameSampling."""
    from ..data.sampling import FrameSampling

    d = cfg.data
    return FrameSampling(fps=d.fps, min_frames=d.min_frames, max_frames=d.max_frames)


def build_teacher(cfg: Config, device: torch.device) -> Teacher | None:
    """The run's teacher, or None when no geometric objective is on (`uses_teacher`): plain
    fine-tuning loads no teacher weights and spends no step time on targets."""
    from ..teachers.factory import make_teacher

    if not uses_teacher(cfg):
        return None
    t = cfg.teacher
    root = t.root or os.fspath(data_root(cfg))
    teacher = make_teacher(t.name, root=root, vggt_weights=t.vggt_weights, metric_weights=t.metric_weights,
                           feature_dim=t.feature_dim, exact=t.exact, device=str(device))
    if t.cache:
        from ..teachers.cache import CachedTeacher, TeacherCache

        teacher = CachedTeacher(teacher, TeacherCache(t.cache, teacher.cache_id))
    return teacher
