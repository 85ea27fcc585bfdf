"""`Checkpointer`: training checkpoints with `torch.distributed.checkpoint`, written atomically.

Layout under `<output>/checkpoints/`:
  step_00000040/            a complete checkpoint (only complete ones carry this name)
    .metadata, *.distcp     model + optimizer (DCP; every rank writes its part)
    rank_00000.pt ...       per rank: RNG states (torch, CUDA, numpy, python)
    trainer_state.json      step, data position, scheduler, counters (written last)
  .step_00000040.tmp/       being written; renamed to step_00000040 when every rank is done

`latest()` returns the newest complete checkpoint, so a run killed at any moment (even mid-write)
resumes from the last one that finished; the last `keep` are kept.
"""
from __future__ import annotations

import json
import os
import pickle
import random
import re
import shutil
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ..parallel.data_parallel import World, barrier

_NAME = re.compile(r"^step_(\d{8})$")
STATE_FILE = "trainer_state.json"


def rng_state() -> dict:
    """This process's RNG states as tensors and Python numbers only (what `torch.load(...,
    weights_only=True)` reads): torch's and CUDA's byte tensors, numpy's MT19937 key as an int64
    tensor with its position and Gaussian cache, Python's as its tuple of ints."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "gauss": float(gauss)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    if isinstance(n, dict):
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    else:  # a checkpoint written before the RNG states were tensors: numpy's own tuple
        np.random.set_state(n)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def load_rng_state(path: Path) -> dict:
    """A rank's RNG file, read with weights_only=True (no arbitrary unpickling); a file written
    before the states were tensors holds one numpy array, whose reconstruction is allowed alone."""
    try:
        return torch.load(path, weights_only=True)
    except pickle.UnpicklingError:
        multiarray = getattr(np, "_core", None) or np.core  # numpy 2 / 1
        allowed = [multiarray.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, weights_only=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def saved_backend(state: dict) -> str:
    """The backend that wrote a trainer_state.json (older ones: megatron's carry its tp)."""
    return state.get("backend") or ("megatron" if "tp" in state else "ddp")


class Checkpointer:
    """folder: `<output>/checkpoints`; keep: how many complete checkpoints to keep."""

    def __init__(self, folder: str | os.PathLike, world: World, keep: int = 3, backend: str = "ddp"):
        self.folder, self.world, self.keep, self.backend = Path(folder), world, keep, backend

    # ------------------------------------------------------------------ finding
    def complete(self) -> list[Path]:
        """Complete checkpoints, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [p for p in self.folder.iterdir() if _NAME.match(p.name) and (p / STATE_FILE).is_file()]
        return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))

    def latest(self) -> Path | None:
        done = self.complete()
        return done[-1] if done else None

    def resolve(self, resume: str) -> Path | None:
        """resume: none | auto | a checkpoint folder. auto with no checkpoint yet starts fresh."""
        if resume in ("none", ""):
            return None
        if resume == "auto":
            return self.latest()
        path = Path(resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"checkpoint.resume={resume}: not a complete checkpoint (no {STATE_FILE}); "
                                    f"use checkpoint.resume=auto to take the newest under {self.folder}")
        return path

    # ------------------------------------------------------------------ saving
    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict) -> Path:
        """Write checkpoint `step` atomically (collective: every rank calls it)."""
        final = self.folder / f"step_{step:08d}"
        tmp = self.folder / f".step_{step:08d}.tmp"
        if self.world.main:
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
        barrier(self.world)
        self._write(tmp, model, optimizer)
        torch.save(rng_state(), tmp / f"rank_{self.world.rank:05d}.pt")
        barrier(self.world)
        if self.world.main:
            state_path = tmp / STATE_FILE
            with open(state_path, "w") as f:
                json.dump({**trainer_state, "step": step, "world_size": self.world.world_size, **self._layout()}, f,
                          indent=1)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(tmp)
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp, final)
            _fsync_dir(self.folder)
            self._prune()
        barrier(self.world)
        return final

    def _write(self, folder: Path, model: nn.Module, optimizer) -> None:
        """Model + optimizer into `folder` (collective)."""
        model_sd, optim_sd = get_state_dict(model, optimizer)
        with warnings.catch_warnings():  # "assuming the intent is to save in a single process": it is
            warnings.filterwarnings("ignore", message=".*single process.*")
            dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=str(folder))

    def _read(self, folder: Path, model: nn.Module, optimizer) -> None:
        model_sd, optim_sd = get_state_dict(model, optimizer)
        sd = {"model": model_sd, "optim": optim_sd}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*single process.*")
            dcp.load(sd, checkpoint_id=str(folder))
        set_state_dict(model, optimizer, model_state_dict=sd["model"], optim_state_dict=sd["optim"])

    def _layout(self) -> dict:
        """How the run was split (written into trainer_state.json)."""
        return {"backend": self.backend}

    def _check_layout(self, path: Path, state: dict) -> None:
        """DCP reshards the model and optimizer between any numbers of ranks and between DDP and
        FSDP (both save whole-model names); the sampler continues the epoch (`resharded_start`)."""
        if saved_backend(state) == "megatron":
            raise ValueError(f"checkpoint {path} was written by the megatron backend (its own sharded format): "
                             "resume it with parallel.backend=megatron")

    def _prune(self) -> None:
        for old in self.complete()[:-self.keep]:
            shutil.rmtree(old, ignore_errors=True)
        for stale in self.folder.glob(".step_*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)

    # ------------------------------------------------------------------ loading
    def load(self, path: Path, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        """Restore model, optimizer and this rank's RNG from `path`; returns the trainer state."""
        state = json.loads((path / STATE_FILE).read_text())
        self._check_layout(path, state)
        self._read(path, model, optimizer)
        rng = path / f"rank_{self.world.rank:05d}.pt"
        if rng.is_file() and state.get("world_size") == self.world.world_size:  # a resharded run draws afresh
            set_rng_state(load_rng_state(rng))
        return state
