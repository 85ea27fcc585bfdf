"""`MegatronTrainer`: the training loop on the Megatron backend (`parallel.tp` x `parallel.pp` x DP).

The loop, data, teacher, metrics and checkpoint cadence are `Trainer`'s; this class swaps the
back-end hooks: megatron-core's process groups, the model built as one `MegatronGeoVR` stage per
rank from the same initial weights as the HF path (an HF GeoVRModel built on the CPU, then sharded),
megatron-core's DDP and optimizer, the pipelined step (`megatron_step.py`) and dist_checkpointing.
The teacher runs on the first pipeline stage; its targets are broadcast down the pipeline.

Every rank of a model-parallel group (its TP x PP ranks) reads the same samples: the sampler is
sharded over the data-parallel ranks only.
"""
from __future__ import annotations

import logging
import os
import time

import torch
import torch.distributed as dist

from . import build
from ..parallel.data_parallel import init_single_process_group
from .config import Config
from .loop import Trainer
from .megatron_checkpoint import MegatronCheckpointer
from .objective import PARTS
from .optim import lr_factor

logger = logging.getLogger("geovr.train")
CPU_SHIM_FLAG = "GEOVR_MEGATRON_CPU_SHIM"  # set by the test suite's shim (megatron-core on CPU)


def _base_weights(path: str, template):
    """The HF checkpoint at `path` as a lazy state dict, checked against the model it must fill."""
    from ..parallel.megatron.lazy_state import SafetensorsState

    weights = SafetensorsState(path)
    tied = template.base.config.tie_word_embeddings
    needed = {k[len("base."):] for k in template.state_dict() if k.startswith("base.")}
    missing = sorted(k for k in needed - set(weights) if not (tied and k == "lm_head.weight"))
    if missing:
        raise KeyError(f"model.path {path}: its safetensors lack {len(missing)} of the model's weights (first: "
                       f"{missing[:3]}); an older key layout? Load it with transformers and save_pretrained it again")
    return weights


class FactorSchedule:
    """The HF path's warmup + cosine factor applied to megatron-core's param groups (state: the step)."""

    def __init__(self, optimizer, total: int, cfg):
        self.optimizer, self.total, self.cfg, self.last = optimizer, total, cfg, 0

    def apply(self) -> dict[str, float]:
        from ..parallel.megatron.training import set_lr

        return set_lr(self.optimizer, lr_factor(self.last, self.total, self.cfg))

    def step(self) -> None:
        self.last += 1

    def state_dict(self) -> dict:
        return {"last_epoch": self.last}

    def load_state_dict(self, state: dict) -> None:
        self.last = int(state["last_epoch"])


class MegatronTrainer(Trainer):
    def __init__(self, cfg: Config):
        try:
            import megatron.core  # noqa: F401
        except ImportError as err:
            raise ImportError("parallel.tp/pp need megatron-core: pip install 'megatron-core>=0.16.1' psutil "
                              "(on CPU machines in the same command as torch==2.13.0)") from err
        on_gpu = cfg.train.device == "cuda" or (cfg.train.device == "auto" and torch.cuda.is_available())
        if not on_gpu and os.environ.get(CPU_SHIM_FLAG) != "1":
            raise RuntimeError("the megatron backend (parallel.tp/pp) runs on CUDA GPUs: megatron-core assumes CUDA. "
                               "On CPU it runs only under the test suite's shim (tests/parallel/megatron_cpu_shim.py); "
                               "use parallel.backend=ddp (the default for tp=pp=1) on this machine")
        super().__init__(cfg)

    # ------------------------------------------------------------------ back-end hooks
    def _setup_parallel(self) -> tuple[int, int]:
        from megatron.core import parallel_state

        from ..parallel.megatron.groups import init_model_parallel

        if not dist.is_initialized():
            init_single_process_group(self.world.device)
        self.dims = init_model_parallel(self.cfg.parallel.tp, self.cfg.parallel.pp, seed=self.cfg.train.seed)
        self.pp_rank = parallel_state.get_pipeline_model_parallel_rank()
        return parallel_state.get_data_parallel_rank(), self.dims.dp

    def _build_model(self) -> None:
        from ..parallel.megatron.geovr_stage import MegatronGeoVR, load_geovr
        from ..model.freeze import freeze_vision_tower
        from ..parallel.megatron.qwen3vl import build_stage
        from ..parallel.megatron.training import build_optimizer, wrap_ddp

        cfg = self.cfg
        bf16 = cfg.model.dtype == "bf16" or (cfg.model.dtype == "auto" and self.world.device.type == "cuda")
        dtype = torch.bfloat16 if bf16 else torch.float32
        self.bf16 = bf16
        # the initial weights: the GeoVR parts from a template GeoVRModel; a model.path base is read
        # lazily, each rank taking only its stage's tensors (the template's base stays on meta)
        template = build.build_model(cfg, self.tokenizer, torch.device("cpu"), base_weights=cfg.model.is_tiny)
        base = None if cfg.model.is_tiny else _base_weights(cfg.model.path, template)
        p = cfg.parallel
        recompute = p.recompute if p.recompute != "auto" else ("full" if cfg.model.gradient_checkpointing else "none")
        stage = build_stage(template.base.config, dtype=dtype, sequence_parallel=p.sequence_parallel,
                            recompute=recompute)
        module = MegatronGeoVR(stage, template.cfg)
        load_geovr(module, template.state_dict(), base=base)
        if cfg.model.freeze_vision and module.stage.visual is not None:
            freeze_vision_tower(module.stage.visual)
        self.module = module.to(device=self.world.device, dtype=dtype).train()
        self.geo = template if self.world.main else None  # kept for the final export only
        self.model = wrap_ddp(self.module, cfg.parallel.distributed_optimizer)
        o = cfg.optim
        self.optimizer = build_optimizer(self.model, o.lr, o.lr_new, o.weight_decay, (o.beta1, o.beta2), o.eps, o.clip,
                                         distributed=cfg.parallel.distributed_optimizer, bf16=bf16)
        self.scheduler = FactorSchedule(self.optimizer, self.total_steps, o)

    def _compute_label(self) -> str:
        return "bf16 (megatron-core's fp32 main copies in the optimizer)" if self.bf16 else "fp32"

    def _make_checkpointer(self) -> MegatronCheckpointer:
        return MegatronCheckpointer(self.output / "checkpoints", self.world, self.cfg.checkpoint.keep, self.module,
                                    self.dims.tp, self.dims.pp, self.dims.dp, **self._checkpoint_options())

    def _dp_sum(self, x: torch.Tensor) -> torch.Tensor:
        from megatron.core import parallel_state

        y = x.clone()
        if self.dims.dp > 1:
            dist.all_reduce(y, group=parallel_state.get_data_parallel_group())
        return y

    def _export(self) -> None:
        from ..parallel.megatron.geovr_stage import gather_geovr

        state = gather_geovr(self.module)
        if self.world.main:
            meta = any(p.is_meta for p in self.geo.parameters())  # a lazily loaded base: materialise it now
            self.geo.load_state_dict({k: v.float() for k, v in state.items()}, assign=meta)
            if meta:
                self.geo.base.tie_weights()
            super()._export()

    # ------------------------------------------------------------------ one step
    def _pipeline_targets(self, micro: list[dict]) -> list[list]:
        """The teacher runs on the first stage; the other stages receive its targets."""
        from megatron.core import parallel_state

        targets = [self._targets(b) for b in micro] if self.pp_rank == 0 else None
        if self.dims.pp > 1:
            box = [targets]
            dist.broadcast_object_list(box, src=parallel_state.get_pipeline_model_parallel_first_rank(),
                                       group=parallel_state.get_pipeline_model_parallel_group())
            targets = box[0]
        return targets

    def train_step(self, micro: list[dict]) -> dict:
        from ..train.megatron_step import forward_backward, prepare

        dev = self.world.device
        t0 = time.perf_counter()
        teacher_s = time.perf_counter()
        targets = self._pipeline_targets(micro)
        teacher_s = time.perf_counter() - teacher_s
        n_tokens, n_video, n_all, n_samples = self._step_counts(micro, targets)
        prepared = [prepare(b, self.module, tgt, len(tgt) / n_video if n_video else 0.0, device=dev)
                    for b, tgt in zip(micro, targets)]
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        lrs = self.scheduler.apply()
        parts, finite = forward_backward(self.model, self.module, prepared, self.cfg.loss, max(n_tokens, 1.0),
                                         self.dims.dp)
        parts = torch.stack([parts[k] for k in PARTS]).double()
        # one check per contiguous gradient buffer of megatron-core's DDP, one host sync for all
        grads_finite = torch.stack([torch.isfinite(buf.grad_data).all() for buf in self.model.buffers]).all()
        bad_here = (torch.logical_not(grads_finite).double() + torch.logical_not(finite.to(dev)).double()).reshape(1)
        stop = torch.tensor([1.0 if self._stop_signal else 0.0], device=dev, dtype=torch.float64)
        flags = torch.cat([parts.to(dev), bad_here.to(dev), stop])
        dist.all_reduce(flags)
        *values, bad_ranks, stop_ranks = flags.tolist()  # the step's one host sync before the optimizer
        parts, bad = torch.tensor(values) / self.dims.tp, bad_ranks > 0  # every TP rank holds the same parts
        self._stop_all = stop_ranks > 0
        grad_norm = float("nan")
        if not bad:
            _, norm, _ = self.optimizer.step()
            grad_norm = float(norm) if norm is not None else 0.0
        return self._finish_step(parts.tolist(), bad, grad_norm, lrs, t0, teacher_s, n_all, n_samples)

    def close(self) -> None:
        from ..parallel.megatron.groups import destroy_model_parallel

        destroy_model_parallel()
        super().close()
        if dist.is_initialized():
            dist.destroy_process_group()
