"""`Trainer`: the training loop. One optimizer step = `accum` micro-batches on each of the
data-parallel ranks; teachers run frozen on the step's videos; bf16 autocast on GPUs; a NaN/inf
step is skipped and counted; checkpoints every `checkpoint.every` steps, at the end, and on SIGTERM
or Ctrl-C (SIGINT: the step finishes, a checkpoint is written, the run stops; a second Ctrl-C
aborts at once).
"""
from __future__ import annotations

import logging
import math
import signal
import time
from contextlib import ExitStack, nullcontext
from functools import partial
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ..data.health import DataStalled, SkipLog
from ..data.qwen_inputs import IGNORE_INDEX, batch_to, collate
from ..data.sampler import ResumableSampler, padding_fraction, position_after
from ..data.video_groups import VideoGroupSampler, video_groups
from ..model.precision import bf16_autocast, uses_bf16_autocast
from ..parallel.data_parallel import all_gather_object, all_reduce_sum, barrier, init_world, shutdown, wrap_data_parallel
from ..parallel.fsdp import local_state_bytes
from ..teachers.base import TeacherRequest
from . import build, describe
from .checkpoint import Checkpointer
from .config import Config, validate
from .metrics import MetricsLogger, peak_memory_gb
from .objective import PARTS, micro_loss
from .report import CURVES, plot_losses, write_summary
from .verify import implementations, verify_run
from .optim import build_optimizer, build_scheduler, trainable_summary

logger = logging.getLogger("geovr.train")
SAME_CTRL_C_S = 1.0  # seconds: a SIGINT this soon after the first is the launcher forwarding it


class TooManyBadSteps(RuntimeError):
    pass


def video_qa_counts(batch: dict) -> list[int]:
    """Per video sample of a collated batch, in batch order: the questions it carries (1, or K
    for a packed sequence)."""
    return [k for i, k in enumerate(batch["qa_counts"]) if bool((batch["mm_token_type_ids"][i] == 2).any())]


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the trainer (a terminal sends it to every process)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Trainer:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.world = init_world(cfg.train.device)
        self.accum = validate(cfg, self.world.world_size)
        self.dp_rank, self.dp_size = self._setup_parallel()
        build.check_paths(cfg)
        self.verification = verify_run(cfg, self.world)  # before the data and the model: may route to fallbacks
        self.implementations = implementations(cfg, self.world.device)
        if self.world.main:
            logger.info("losses computed by: %s", ", ".join(f"{k} {v}" for k, v in self.implementations.items()))
        self.output = Path(cfg.train.output)
        if self.world.main:
            build.ensure_data(cfg, progress=cfg.metrics.progress)
        barrier(self.world)
        torch.manual_seed(cfg.train.seed)
        self.tokenizer = build.build_tokenizer(cfg)
        self.dataset, read = build.build_dataset(cfg, self.tokenizer)
        invalid = read.errors
        self.records = {r.id: r for r in self.dataset.records}
        self.skips = SkipLog(report=self.world.main)  # every rank checks runs of bad items; the main one logs
        self.skips.add_invalid_records(invalid)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        # the loader draws its workers' base seed from its own generator, not torch's global one: a
        # resumed run starts an iterator where the uninterrupted one did not, and the global stream
        # (restored from the checkpoint) must stay the same for dropout (LoRA's) to draw alike
        loader = dict(collate_fn=partial(collate, pad_token_id=pad), num_workers=cfg.data.workers,
                      persistent_workers=False, worker_init_fn=_ignore_sigint,
                      timeout=cfg.data.worker_timeout_s if cfg.data.workers else 0,
                      generator=torch.Generator().manual_seed(cfg.train.seed))
        if cfg.data.group_by_video:
            self.sampler = VideoGroupSampler(video_groups(self.dataset.records), cfg.data.group_by_video,
                                             cfg.train.global_batch, cfg.train.micro_batch, seed=cfg.train.seed,
                                             shuffle=cfg.data.shuffle, rank=self.dp_rank, world_size=self.dp_size)
            self.loader = DataLoader(self.dataset, batch_sampler=self.sampler, **loader)
            steps_per_epoch = self.sampler.steps_per_epoch
        else:
            lengths = (self.dataset.frame_counts(progress=self.world.main and cfg.metrics.progress)
                       if cfg.data.group_by_length else None)
            self.sampler = ResumableSampler(len(self.dataset), seed=cfg.train.seed, shuffle=cfg.data.shuffle,
                                            rank=self.dp_rank, world_size=self.dp_size, lengths=lengths,
                                            micro_batch=cfg.train.micro_batch, group=cfg.data.group_by_length)
            self.loader = DataLoader(self.dataset, batch_size=cfg.train.micro_batch, sampler=self.sampler,
                                     drop_last=True, **loader)
            micro_per_epoch = len(self.sampler.order(0)) // cfg.train.micro_batch
            if micro_per_epoch < self.accum and cfg.train.steps is None:
                raise ValueError(f"one epoch holds {micro_per_epoch} micro-batches per rank, fewer than the {self.accum} "
                                 "of one step: lower train.global_batch or set train.steps")
            steps_per_epoch = micro_per_epoch // self.accum
        self.total_steps = cfg.train.steps or cfg.train.epochs * steps_per_epoch
        self.teacher = build.build_teacher(cfg, self.world.device)
        self._build_model()
        if self.world.main:
            for line in (describe.model_line(cfg, self.geo, self._compute_label()),
                         describe.teacher_line(cfg, self.teacher), *describe.data_lines(read)):
                logger.info("%s", line)
        if self.world.main and not cfg.parallel.megatron:  # megatron's groups hold fp32 copies of the parameters
            logger.info("trainable parameters: %s", trainable_summary(self.geo, self.optimizer))
        geo_cfg = build.geovr_config(cfg)
        self.enabled = {"pose": geo_cfg.camera, "depth": geo_cfg.depth, "align": geo_cfg.align, "scale": geo_cfg.scale}
        self.checkpointer = self._make_checkpointer()
        self.step, self.bad_steps, self.bad_in_a_row, self.resumed_at = 0, 0, 0, 0
        self.state_bytes: dict[str, int] | None = None
        self.samples_seen, self.tokens_seen, self.skipped_total = 0, 0, len(invalid)
        self.step_sequences, self.unshared_total = 0.0, 0
        resume = self.checkpointer.resolve(cfg.checkpoint.resume)
        if resume is not None:
            self._restore(resume)
        elif cfg.checkpoint.resume == "auto" and self.world.main:
            logger.info("--resume auto: no complete checkpoint under %s; starting at step 0", self.checkpointer.folder)
        self.amp = self._autocast()
        self._metrics: MetricsLogger | None = None
        self._stop_signal, self._sigint_at = None, 0.0
        self._stop_all = False

    # ------------------------------------------------------------------ back-end hooks (torch DDP here)
    def _setup_parallel(self) -> tuple[int, int]:
        """(data-parallel rank, data-parallel size)."""
        return self.world.rank, self.world.world_size

    def _build_model(self) -> None:
        """Sets geo (the GeoVRModel), model (what the step calls), optimizer, scheduler."""
        self.geo = build.build_model(self.cfg, self.tokenizer, self.world.device)
        self.model = wrap_data_parallel(self.geo, self.world, self.cfg.train.find_unused_parameters)
        self.optimizer = build_optimizer(self.geo, self.cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, self.cfg.optim)

    def _make_checkpointer(self) -> Checkpointer:
        return Checkpointer(self.output / "checkpoints", self.world, self.cfg.checkpoint.keep,
                            **self._checkpoint_options())

    def _compute_label(self) -> str:
        """How the model computes, for the log: "fp32", or "bf16 autocast (fp32 weights)"."""
        return "bf16 autocast (fp32 weights)" if uses_bf16_autocast(self.cfg.model.dtype, self.world.device) else "fp32"

    def _checkpoint_options(self) -> dict:
        c = self.cfg.checkpoint
        return dict(verify=c.verify, resume_unverified=c.resume_unverified)

    def _gradient_sync(self, last: bool):
        """The context of a micro-batch's forward and backward: DDP all-reduces the gradients in
        the step's last one only (the others accumulate locally)."""
        return nullcontext() if (not self.world.distributed or last) else self.model.no_sync()

    def _clip_gradients(self, clip: float) -> torch.Tensor:
        """Clip the gradients to global norm `clip` (inf: measure only); returns the norm before
        clipping (a 0-dim tensor, the same on every rank)."""
        return torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], clip)

    def _state_bytes(self) -> dict[str, int]:
        """This rank's bytes of parameters, gradients and optimizer state (see `local_state_bytes`)."""
        return local_state_bytes(self.geo, self.optimizer)

    def _dp_sum(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over the data-parallel ranks (each holds different samples)."""
        return all_reduce_sum(x, self.world)

    def _export(self) -> None:
        if self.world.main:
            from ..model.checkpoint import save_geovr

            save_geovr(self.geo, self.output / "final", tokenizer=self.tokenizer, processor_files_from=self.cfg.model.folder)

    # ------------------------------------------------------------------ state
    def _trainer_state(self, position: tuple[int, int]) -> dict:
        """What trainer_state.json holds (collective: gathers every data-parallel rank's position)."""
        by_rank = dict(all_gather_object((self.dp_rank, position), self.world))
        ranks = [by_rank[r] for r in range(self.dp_size)]
        return {"sampler": self.sampler.state_dict(position, ranks), "scheduler": self.scheduler.state_dict(),
                "bad_steps": self.bad_steps, "bad_in_a_row": self.bad_in_a_row, "samples_seen": self.samples_seen,
                "tokens_seen": self.tokens_seen, "skips": dict(self.skips.total_counts),
                "skipped_total": self.skipped_total, "unshared_total": self.unshared_total,
                "config": self.cfg.to_dict()}

    def _restore(self, path: Path) -> None:
        state = self.checkpointer.load(path, self.model, self.optimizer)
        self.step = self.resumed_at = int(state["step"])
        self.sampler.load_state_dict(state["sampler"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.bad_steps, self.bad_in_a_row = state["bad_steps"], state["bad_in_a_row"]
        self.samples_seen, self.tokens_seen = state["samples_seen"], state["tokens_seen"]
        self.skips.total_counts.update(state.get("skips", {}))
        self.skipped_total = int(state.get("skipped_total", 0))
        self.unshared_total = int(state.get("unshared_total", 0))
        if self.world.main:
            logger.info("resumed from %s at step %d (epoch %d, sample %d)", path, self.step,
                        self.sampler.epoch, self.sampler.start)
            if state.get("world_size", self.world.world_size) != self.world.world_size:
                logger.warning("resharded: the checkpoint was written by %d ranks, this run has %d; each rank "
                               "continues the epoch at sample %d of its share", state["world_size"],
                               self.world.world_size, self.sampler.start)

    def _autocast(self):
        if uses_bf16_autocast(self.cfg.model.dtype, self.world.device):
            return lambda: bf16_autocast(self.world.device.type)
        return nullcontext

    # ------------------------------------------------------------------ data
    def _micro_batches(self):
        """Micro-batches forever, epoch after epoch (the sampler knows where a resumed run was)."""
        while True:
            full_epoch = self.sampler.start == 0
            yielded = False
            for batch in self.loader:
                yielded = True
                yield batch
            if full_epoch and not yielded:
                raise RuntimeError(f"an epoch holds fewer than train.micro_batch={self.cfg.train.micro_batch} samples "
                                   "per rank: add data or lower the batch")
            epoch = self.sampler.epoch
            self.skips.end_epoch(epoch)  # logged by the main process
            self.sampler.set_epoch(epoch + 1)

    def _next_micro_batch(self, batches) -> dict:
        """The next micro-batch that holds a sample, its skips counted (SkipLog). One whose every
        item was dropped is not trained on: the rank reads its next one instead (each rank still
        runs the step's accum micro-batches), carrying the dropped items' skips and positions, so
        they are counted once and the resume point moves past them."""
        carried = {"positions": [], "skipped": [], "kept": []}
        while True:
            try:
                batch = next(batches)
            except RuntimeError as err:
                if not str(err).startswith("DataLoader timed out"):
                    raise
                raise self._stalled() from err
            self.skips.add_batch(batch)
            if batch["ids"]:
                return {**batch, **{k: v + batch[k] for k, v in carried.items()}}
            for k in carried:
                carried[k] += batch[k]

    def _stalled(self) -> DataStalled:
        d, latest = self.cfg.data, self.checkpointer.latest()
        return DataStalled(
            f"data.worker_timeout_s: no micro-batch came from the {d.workers} DataLoader "
            f"worker{'s' if d.workers > 1 else ''} in {d.worker_timeout_s:g} s, at step {self.step} (a worker is "
            f"stuck: a hung file-system read or a decoder deadlock); the run stops here. Its last checkpoint: "
            f"{latest or 'none yet'}; continue with --resume auto (torchrun --max-restarts does it), or raise "
            "data.worker_timeout_s (0 waits for ever)")

    def _micro_per_step(self) -> int:
        """Micro-batches of the next step on every rank: the accumulation, or with
        data.group_by_video the step's count in the sampler's plan."""
        if not isinstance(self.sampler, VideoGroupSampler):
            return self.accum
        per_epoch = self.sampler.steps_per_epoch
        return self.sampler.micro_batches(self.step // per_epoch, self.step % per_epoch)

    def _targets(self, batch: dict, memo: dict | None = None) -> list:
        """The teacher's targets for the batch's video samples (none without a teacher). The
        teacher runs once per distinct (video, frames): samples about the same clip (in `memo`,
        shared over a step's micro-batches) get the same targets."""
        out = []
        if self.teacher is None:
            return out
        memo = {} if memo is None else memo
        for i, sid in enumerate(batch["ids"]):
            if not bool((batch["mm_token_type_ids"][i] == 2).any()):
                continue
            rec = self.records[sid]
            key = (rec.media, tuple(batch["frame_indices"][i]))
            if key not in memo:
                memo[key] = self.teacher(TeacherRequest(sid, batch["teacher_frames"][i], batch["frame_indices"][i],
                                                        rec.extra, rec.media_rel))
            out.append(memo[key])
        return out

    # ------------------------------------------------------------------ one step
    def train_step(self, micro: list[dict]) -> dict:
        dev, world = self.world.device, self.world
        t0 = time.perf_counter()
        teacher_s = time.perf_counter()
        memo: dict = {}
        targets = [self._targets(b, memo) for b in micro]
        teacher_s = time.perf_counter() - teacher_s
        n_tokens, n_video, n_all, n_samples = self._step_counts(micro, targets)
        parts = {k: torch.zeros((), device=dev) for k in PARTS}
        finite = torch.ones((), dtype=torch.bool, device=dev)
        step_tokens = torch.tensor(max(n_tokens, 1.0), device=dev)
        for j, (batch, tgt) in enumerate(zip(micro, targets)):
            with self._gradient_sync(j == len(micro) - 1):
                geo = self.geo.plan(batch)  # on the CPU batch: its integer loops cost no host syncs
                with self.amp():
                    out = self.model(batch_to(batch, dev), num_items_in_batch=step_tokens, geo=geo)
                weights = video_qa_counts(batch) if tgt else []
                share = sum(weights) / n_video if n_video else 0.0
                loss = micro_loss(out, tgt, self.cfg.loss, share, self.enabled, sample_weights=weights)
                (loss.total * world.world_size).backward()
            finite = finite & loss.finite.to(dev)
            for k, v in loss.parts.items():
                parts[k] += v
        # one all-reduce and one host sync per step: the parts, the bad flag, SIGTERM, the grad norm
        stop = torch.tensor([1.0 if self._stop_signal else 0.0], device=dev)
        reduced = all_reduce_sum(torch.cat([torch.stack([parts[k] for k in PARTS]).float(),
                                            (~finite).float().reshape(1), stop]), world)
        grad_norm = self._clip_gradients(self.cfg.optim.clip or float("inf"))
        *values, bad_ranks, stop_ranks, norm = torch.cat([reduced, grad_norm.detach().float().reshape(1)]).tolist()
        bad = bad_ranks > 0 or not math.isfinite(norm)
        self._stop_all = stop_ranks > 0
        if not bad:
            self.optimizer.step()
        self.state_bytes = self._state_bytes()  # with the step's gradients, before they are freed
        lrs = {f"lr/{g['name']}": g["lr"] for g in self.optimizer.param_groups}
        self.optimizer.zero_grad(set_to_none=True)
        return self._finish_step(values, bad, norm, lrs, t0, teacher_s, n_all, n_samples)

    def _step_counts(self, micro: list[dict], targets: list[list]) -> tuple[float, float, float, float]:
        """The step's answer tokens, video questions, tokens and questions over the data-parallel
        ranks (the loss normalisers count what the micro-batches hold, dropped items excluded; a
        packed sequence counts the questions it carries); adds the step's skipped items to the
        run's count and keeps its sequences for the metrics."""
        local = torch.tensor([sum(int((b["labels"][:, 1:] != IGNORE_INDEX).sum()) for b in micro),
                              sum(sum(video_qa_counts(b)) if t else 0 for b, t in zip(micro, targets)),
                              sum(int(b["attention_mask"].sum()) for b in micro),
                              sum(sum(b["qa_counts"]) for b in micro),
                              sum(len(b["skipped"]) for b in micro),
                              sum(len(b["ids"]) for b in micro),
                              sum(int(b.get("unshared", 0)) for b in micro)], dtype=torch.float64)
        if self.world.distributed:
            local = self._dp_sum(local.to(self.world.device))
        n_tokens, n_video, n_all, n_samples, n_skipped, n_sequences, n_unshared = local.tolist()  # one process: no sync
        self.skipped_total += int(n_skipped)
        self.step_sequences, self.unshared_total = n_sequences, self.unshared_total + int(n_unshared)
        return n_tokens, n_video, n_all, n_samples

    def _finish_step(self, parts: list[float], bad: bool, grad_norm: float, lrs: dict, t0: float, teacher_s: float,
                     n_all: float, n_samples: float) -> dict:
        """After the optimizer step (or its skip): counters, the schedule, the step's metrics record;
        raises TooManyBadSteps after train.max_bad_steps bad steps in a row. parts: in PARTS order."""
        if bad:
            self.bad_steps += 1
            self.bad_in_a_row += 1
        else:
            self.bad_in_a_row = 0
        self.scheduler.step()
        self.step += 1
        dt = time.perf_counter() - t0
        samples = int(n_samples)  # the global batch less the step's dropped items
        self.samples_seen += samples
        self.tokens_seen += int(n_all)
        weights = self.cfg.loss
        part_values = dict(zip(PARTS, parts))
        active = {k: v for k, v in part_values.items() if k == "text" or self.enabled.get(k)}
        record = {"step": self.step, "loss": sum(getattr(weights, k) * v for k, v in active.items()),
                  **{f"loss/{k}": v for k, v in active.items()}, **lrs, "grad_norm": grad_norm,
                  "samples_per_s": samples / dt, "tokens_per_s": n_all / dt, "step_s": dt,
                  "sequences_per_s": self.step_sequences / dt,
                  "data/qa_per_sequence": samples / max(self.step_sequences, 1.0),
                  "data/unshared": float(self.unshared_total),
                  "teacher_s": teacher_s, "peak_memory_gb": peak_memory_gb(self.world.device),
                  **{f"memory/{k}_gb": v / 2**30 for k, v in (self.state_bytes or {}).items()},
                  "bad_steps": self.bad_steps, "skipped_step": int(bad), **self.skips.metrics(),
                  "data/skipped": float(self.skipped_total)}
        if self.bad_in_a_row >= self.cfg.train.max_bad_steps:
            raise TooManyBadSteps(
                f"{self.bad_in_a_row} steps in a row had a NaN/inf loss or gradient (step {self.step}); stopping. "
                "Lower optim.lr / optim.lr_new, check the teacher targets, or resume from an earlier checkpoint.")
        return record

    # ------------------------------------------------------------------ the run
    def _on_signal(self, signum, frame) -> None:
        """SIGTERM / SIGINT: stop after this step with a checkpoint. A second SIGINT aborts now
        (one within a second of the first is the same Ctrl-C: torchrun forwards the terminal's
        SIGINT to its workers, which had it already)."""
        now = time.monotonic()
        if signum == signal.SIGINT and self._stop_signal == signal.SIGINT:
            if now - self._sigint_at > SAME_CTRL_C_S:
                raise KeyboardInterrupt
            return
        self._stop_signal, self._sigint_at = signum, now
        if signum == signal.SIGINT and self.world.main and self._metrics is not None:
            self._metrics.note(f"Ctrl-C: finishing step {self.step + 1}, then a checkpoint and exit "
                               "(Ctrl-C again to abort without saving)")

    def _save(self, position: tuple[int, int]) -> None:
        path = self.checkpointer.save(self.step, self.model, self.optimizer, self._trainer_state(position))
        if self.world.main:
            t = self.checkpointer.timings
            hashed = f", SHA-256 of its files {t['hash_s']:.1f} s on this rank" if "hash_s" in t else ""
            logger.info("checkpoint %s (written in %.1f s%s)", path, t.get("write_s", 0.0), hashed)

    def train(self) -> dict:
        cfg, world = self.cfg, self.world
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        metrics = self._metrics = MetricsLogger(self.output, self.total_steps, self.step, world.main,
                                                cfg.metrics.progress, cfg.metrics.tensorboard)
        position = (self.sampler.epoch, self.sampler.start)
        stopped, said_impl = None, False
        logs = ExitStack()
        if metrics.bar is not None:  # warnings (e.g. a skipped video) print above the bar, not through it
            from tqdm.contrib.logging import logging_redirect_tqdm

            logs.enter_context(logging_redirect_tqdm())
        try:
            batches = self._micro_batches()
            while self.step < self.total_steps:
                micro = [self._next_micro_batch(batches) for _ in range(self._micro_per_step())]
                position = position_after([p for b in micro for p in b["positions"]])
                record = self.train_step(micro)
                record["data/padding"] = sum(padding_fraction(b["attention_mask"]) for b in micro) / len(micro)
                if self.step % cfg.metrics.log_every == 0 or self.step == self.total_steps:
                    if not said_impl:  # the first record of this process: what computes each loss
                        record.update({f"impl/{k}": v for k, v in self.implementations.items()})
                        said_impl = True
                    metrics.log(record)
                metrics.advance()
                if self._stop_all:  # SIGTERM / SIGINT on any rank, agreed in the step's all-reduce
                    self._save(position)
                    stopped = signal.Signals(self._stop_signal).name if self._stop_signal else "signal"
                    metrics.note(f"{stopped}: saved checkpoint step {self.step}; exiting (continue with --resume auto)")
                    break
                if cfg.checkpoint.every and self.step % cfg.checkpoint.every == 0 and self.step < self.total_steps:
                    self._save(position)
            if stopped is None:
                latest = self.checkpointer.latest()
                if latest is None or not latest.name.endswith(f"{self.step:08d}"):
                    self._save(position)
                if cfg.checkpoint.export:
                    self._export()
            summary = metrics.summary({"steps": self.step, "bad_steps": self.bad_steps,
                                       "samples_seen": self.samples_seen, "tokens_seen": self.tokens_seen,
                                       "stopped": stopped or "done", **self.skips.metrics(),
                                       "data/skipped": float(self.skipped_total),
                                       "implementations": self.implementations,
                                       "checkpoint/skipped_damaged": len(self.checkpointer.skipped)})
            if hasattr(self.teacher, "hits"):
                summary.update({"teacher_cache_hits": self.teacher.hits, "teacher_cache_misses": self.teacher.misses})
            if self.resumed_at:
                summary["resumed_at"] = self.resumed_at
            if world.main:
                plot_losses(metrics.history, self.output / CURVES)
                write_summary(summary, self.output)
            barrier(world)  # on success only: after an error on one rank a barrier would hang the others
            return summary
        finally:
            logs.close()
            metrics.close()
            self._metrics = None
            for s, handler in previous.items():
                signal.signal(s, handler)

    def close(self) -> None:
        shutdown(self.world)
