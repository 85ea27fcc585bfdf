"""`Checkpointer`: training checkpoints with `torch.distributed.checkpoint`, written atomically.

Layout under `<output>/checkpoints/`:
  step_00000040/            a complete checkpoint (only complete ones carry this name)
    .metadata, *.distcp     model + optimizer (DCP; every rank writes its part)
    rank_00000.pt ...       per rank: RNG states (torch, CUDA, numpy, python)
    trainer_state.json      step, data position, scheduler, counters
    manifest.json           size and SHA-256 of every file above (geovr.train.manifest), written last
  .step_00000040.tmp/       being written; renamed to step_00000040 when every rank is done

`latest()` returns the newest complete checkpoint, so a run killed at any moment (even mid-write)
resumes from the last one that finished; the last `keep` are kept. `resolve` trusts a checkpoint
only when its files match its manifest: `auto` falls back past a damaged one (named in a warning,
counted in `skipped`), an explicit folder that fails is an error (CheckpointDamaged). A checkpoint
that cannot be written (a full disk) removes its partial folder and raises CheckpointWriteError on
every rank, with the free space, the checkpoint's size and where to resume.
"""
from __future__ import annotations

import json
import logging
import os
import time
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
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from ..parallel.data_parallel import World, all_gather_object, barrier
from .manifest import verify, write_manifest

_NAME = re.compile(r"^step_(\d{8})$")
STATE_FILE = "trainer_state.json"
logger = logging.getLogger("geovr.train")


class CheckpointDamaged(RuntimeError):
    """A checkpoint's files do not match its manifest."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint could not be written (a full disk, no permission); the message says what to do."""


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


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


def _reason(e: BaseException) -> str:
    """One line for a failed write: the OS error's text, or the first rank's failure inside DCP's."""
    if isinstance(e, CheckpointException):
        inner = next(iter(e.failures.values()), None)  # (exception, traceback summary) of one rank
        if isinstance(inner, tuple) and inner and isinstance(inner[0], BaseException):
            return _reason(inner[0])
    return f"{type(e).__name__}: {e}".splitlines()[0][:300]


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

    def __init__(self, folder: str | os.PathLike, world: World, keep: int = 3, backend: str = "ddp",
                 verify: bool = True, resume_unverified: bool = False):
        self.folder, self.world, self.keep, self.backend = Path(folder), world, keep, backend
        self.verify, self.resume_unverified = verify, resume_unverified
        self.skipped: list[str] = []  # damaged checkpoints `resolve("auto")` passed over
        self.timings: dict[str, float] = {}  # seconds of the last save (write, hash) and check (verify)

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
        """resume: none | auto | a checkpoint folder (collective: every rank checks its share of the
        files). auto: the newest complete checkpoint whose files match its manifest (None when there
        is no checkpoint yet); a folder: that one, which must match (CheckpointDamaged)."""
        if resume in ("none", ""):
            return None
        if resume == "auto":
            done = self.complete()
            for i, path in enumerate(reversed(done)):
                problems = self.check(path)
                if not problems:
                    if self.skipped and self.world.main:
                        logger.warning("--resume auto: resuming from %s, the newest checkpoint that is whole", path.name)
                    return path
                self.skipped.append(path.name)
                if self.world.main:
                    before = done[-i - 2].name if i + 1 < len(done) else None
                    logger.warning("checkpoint %s is damaged and skipped: %s%s; %s", path, problems[0],
                                   f" (and {len(problems) - 1} more)" if len(problems) > 1 else "",
                                   f"trying {before}" if before else "no earlier checkpoint is left")
            if done:
                raise CheckpointDamaged(f"--resume auto: every checkpoint under {self.folder} is damaged "
                                        f"({', '.join(self.skipped)}); start over with --resume none")
            return None
        path = Path(resume)
        if not (path / STATE_FILE).is_file():
            raise FileNotFoundError(f"checkpoint.resume={resume}: not a complete checkpoint (no {STATE_FILE}); "
                                    f"use checkpoint.resume=auto to take the newest under {self.folder}")
        problems = self.check(path)
        if problems and not self.resume_unverified:
            raise CheckpointDamaged(f"checkpoint {path} is damaged: {'; '.join(problems[:3])}"
                                    f"{f' (and {len(problems) - 3} more)' if len(problems) > 3 else ''}. Resume from an "
                                    "earlier checkpoint (--resume auto skips damaged ones), or load it anyway with "
                                    "--resume-unverified")
        if problems and self.world.main:
            logger.warning("--resume-unverified: loading %s despite: %s", path, "; ".join(problems))
        return path

    def check(self, path: Path) -> list[str]:
        """Problems of `path` against its manifest ([] when whole, or when not checked: verify off,
        or a checkpoint without a manifest, which is loaded with a warning). Collective."""
        if not self.verify:
            return []
        problems, seconds = verify(path, self.world)
        self.timings["verify_s"] = seconds
        if problems is None:
            if self.world.main:
                logger.warning("checkpoint %s has no manifest (written before geovr recorded one, or with "
                               "checkpoint.verify=false): loading it unverified", path)
            return []
        return problems

    # ------------------------------------------------------------------ saving
    def save(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, trainer_state: dict) -> Path:
        """Write checkpoint `step` atomically (collective: every rank calls it); its manifest last,
        before the folder takes its complete name. Raises CheckpointWriteError on every rank when
        any rank could not write (its partial folder removed)."""
        final = self.folder / f"step_{step:08d}"
        tmp = self.folder / f".step_{step:08d}.tmp"
        t0 = time.perf_counter()
        main = self.world.main

        def make_folder() -> None:
            if main:
                self.folder.mkdir(parents=True, exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
                tmp.mkdir()

        def write() -> None:
            self._write(tmp, model, optimizer)
            torch.save(rng_state(), tmp / f"rank_{self.world.rank:05d}.pt")
            if main:
                with open(tmp / STATE_FILE, "w") as f:
                    json.dump({**trainer_state, "step": step, "world_size": self.world.world_size,
                               **self._layout()}, f, indent=1)
                    f.flush()
                    os.fsync(f.fileno())

        def manifest() -> None:
            self.timings["hash_s"] = write_manifest(tmp, self.world)

        def complete() -> None:
            if main:
                _fsync_dir(tmp)
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
                _fsync_dir(self.folder)
                self._prune()

        self._collective(make_folder, tmp, step)
        self._collective(write, tmp, step)
        self.timings["write_s"] = time.perf_counter() - t0
        if self.verify:
            self._collective(manifest, tmp, step)
        self._collective(complete, tmp, step)
        return final

    def _collective(self, part, tmp: Path, step: int) -> None:
        """Run one part of a save on every rank, then agree: when it failed anywhere, every rank
        raises CheckpointWriteError (no rank is left waiting in a collective the others skipped)."""
        try:
            part()
            failure = None
        except (OSError, RuntimeError, CheckpointException) as e:  # DCP gathers every rank's failure
            failure = e
        self._agree_written(failure, tmp, step)

    def _agree_written(self, failure: BaseException | None, tmp: Path, step: int) -> None:
        """Every rank learns whether any rank failed to write; then all raise one message."""
        reason = None if failure is None else _reason(failure)
        reasons = [r for r in all_gather_object(reason, self.world) if r]
        if not reasons:
            return
        if self.world.main:
            shutil.rmtree(tmp, ignore_errors=True)
        latest = self.latest()
        try:
            free = f"{shutil.disk_usage(self.folder).free / 1e9:.1f} GB free there"
        except OSError:
            free = "its free space unknown"
        size = f"the last checkpoint took {folder_bytes(latest) / 1e9:.2f} GB" if latest else "no checkpoint yet"
        resume = (f"the last complete checkpoint is {latest}: continue from it with --resume auto once there is room"
                  if latest else "no complete checkpoint exists yet")
        raise CheckpointWriteError(f"checkpoint step_{step:08d} could not be written to {self.folder}: {reasons[0]} "
                                   f"({free}; {size}). The partial folder was removed; {resume}")

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
