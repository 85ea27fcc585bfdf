"""The GeoVR model of a training checkpoint (`<run>/checkpoints/step_N`), in one process.

The checkpoint's trainer_state.json holds the run's config: the model is built from it (the
tokenizer too), then its weights are read from the DCP shards, whichever number of ranks and
backend (DDP or FSDP) wrote them. The megatron backend's checkpoints hold megatron-core's own
layout: export its run's `final/` folder instead.
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch

from .checkpoint import STATE_FILE, CheckpointDamaged, saved_backend
from .config import TINY_MODEL, Config, preset
from .config_io import apply_dict


def is_training_checkpoint(path: str | os.PathLike) -> bool:
    return (Path(path) / STATE_FILE).is_file() and (Path(path) / ".metadata").is_file()


def checkpoint_config(path: str | os.PathLike) -> Config:
    """The config of the run that wrote checkpoint `path`."""
    state = json.loads((Path(path) / STATE_FILE).read_text())
    if "config" not in state:
        raise ValueError(f"{path}/{STATE_FILE} holds no config (written by an older geovr): export the run's "
                         "final/ folder")
    saved = {k: dict(v) if isinstance(v, dict) else v for k, v in state["config"].items()}
    if isinstance(saved.get("model"), dict) and saved["model"].get("path") is None:
        saved["model"]["path"] = TINY_MODEL  # written before model.path=tiny: an unset path built the tiny model
    cfg = preset("tiny")
    apply_dict(cfg, saved, f"{path}/{STATE_FILE}")
    return cfg


def verify_alone(path: Path, unverified: bool = False) -> None:
    """Check a training checkpoint against its manifest in this one process (as a resume does):
    CheckpointDamaged names the file; unverified=True loads it anyway, with a warning."""
    import logging

    from ..parallel.data_parallel import World
    from .checkpoint import Checkpointer

    world = World(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    problems = Checkpointer(path.parent, world, resume_unverified=unverified).check(path)
    if problems and not unverified:
        raise CheckpointDamaged(f"checkpoint {path} is damaged: {'; '.join(problems[:3])}. Export an earlier "
                                "checkpoint, or pass --unverified to use it anyway")
    if problems:
        logging.getLogger("geovr").warning("--unverified: using %s despite: %s", path, "; ".join(problems))


def load_trained_model(path: str | os.PathLike, unverified: bool = False):
    """(GeoVRModel on the CPU with checkpoint `path`'s weights, its tokenizer, its config); the files
    are checked against the checkpoint's manifest first (unverified=True: a mismatch only warns)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict

    from . import build

    path = Path(path)
    verify_alone(path, unverified)
    state = json.loads((path / STATE_FILE).read_text())
    if saved_backend(state) == "megatron":
        raise ValueError(f"{path} was written by the megatron backend (megatron-core's layout): export the run's "
                         "final/ folder (written at the end of training), or resume the run to its end")
    cfg = checkpoint_config(path)
    cfg.model.gradient_checkpointing = False
    tokenizer = build.build_tokenizer(cfg)
    model = build.build_model(cfg, tokenizer, torch.device("cpu"))
    weights = get_model_state_dict(model)
    with warnings.catch_warnings():  # "assuming the intent is to load in a single process": it is
        warnings.filterwarnings("ignore", message=".*single process.*")
        dcp.load({"model": weights}, checkpoint_id=str(path))
    set_model_state_dict(model, weights)
    return model.eval(), tokenizer, cfg
