"""`FSDPTrainer`: the training loop with FSDP2 (`parallel.backend=fsdp`).

`Trainer`'s loop, data, teacher, loss, NaN-step skipping, metrics and checkpoint cadence; the
back-end hooks differ:
- the model is sharded by `geovr.parallel.fsdp.shard_geovr` (one unit per decoder layer and the
  root; the frozen vision tower whole) and the optimizer is built over the sharded parameters;
- gradient accumulation: the step's micro-batches but the last keep their gradients unreduced
  (`set_requires_gradient_sync(False)`; whole, in fp32, as DDP holds them), the last
  reduce-scatters the sum once; `parallel.fsdp_sync_each_micro_batch=true` reduce-scatters each
  micro-batch's instead (1/N of the gradient memory, a reduce-scatter per micro-batch);
- clipping: the global norm over every rank's gradient shards;
- checkpoints: DCP, sharded, every rank writing its shards (the same format as DDP's: a
  checkpoint of N ranks resumes with M ranks, FSDP or DDP);
- the final export gathers the whole model onto rank 0.
One process works too (a process group of one): with `parallel.fsdp_offload=true` a single GPU
trains a model whose fp32 weights and AdamW state do not fit on it.
"""
from __future__ import annotations

import logging
import warnings
from contextlib import nullcontext

import torch
import torch.distributed as dist

from ..model.precision import uses_bf16_autocast
from ..parallel.data_parallel import init_single_process_group
from ..parallel.fsdp import full_model_state, local_state_bytes, shard_geovr
from . import build
from .checkpoint import Checkpointer
from .loop import Trainer
from .optim import build_optimizer, build_scheduler

logger = logging.getLogger("geovr.train")


class FSDPTrainer(Trainer):
    # ------------------------------------------------------------------ back-end hooks
    def _setup_parallel(self) -> tuple[int, int]:
        self._own_group = not dist.is_initialized()
        if self._own_group and not self.world.distributed:
            init_single_process_group(self.world.device)
        return self.world.rank, self.world.world_size

    def _build_model(self) -> None:
        # the root returns views (heads' outputs split per video); nothing updates them in place
        warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
        cfg = self.cfg
        self.geo = build.build_model(cfg, self.tokenizer, self.world.device)
        bf16 = uses_bf16_autocast(cfg.model.dtype, self.world.device)
        self.model = shard_geovr(self.geo, self.world, bf16=bf16, offload=cfg.parallel.fsdp_offload)
        self.optimizer = build_optimizer(self.geo, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, cfg.optim)

    def _compute_label(self) -> str:
        if uses_bf16_autocast(self.cfg.model.dtype, self.world.device):
            return "bf16 (FSDP mixed precision: fp32 shards, bf16 gathers, fp32 reductions)"
        return "fp32"

    def _make_checkpointer(self) -> Checkpointer:
        return Checkpointer(self.output / "checkpoints", self.world, self.cfg.checkpoint.keep, backend="fsdp",
                            **self._checkpoint_options())

    def _gradient_sync(self, last: bool):
        self.model.set_requires_gradient_sync(last or self.cfg.parallel.fsdp_sync_each_micro_batch)
        return nullcontext()

    def _clip_gradients(self, clip: float) -> torch.Tensor:
        norm = super()._clip_gradients(clip)
        return norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # the shards' norms combined

    def _state_bytes(self) -> dict[str, int]:
        return local_state_bytes(self.model, self.optimizer)

    def _export(self) -> None:
        from ..model.checkpoint import save_geovr

        state = full_model_state(self.model)  # collective
        if self.world.main:
            save_geovr(self.geo, self.output / "final", tokenizer=self.tokenizer,
                       processor_files_from=self.cfg.model.folder, state_dict=state)

    def close(self) -> None:
        super().close()
        if getattr(self, "_own_group", False) and dist.is_initialized():
            dist.destroy_process_group()
