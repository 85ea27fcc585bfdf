"""`MegatronCheckpointer`: the trainer's checkpoints on the Megatron backend, through megatron-core's
dist_checkpointing. Same folder layout and atomic rename as `Checkpointer`; the model and optimizer
are saved as sharded tensors with their global shapes, so a checkpoint written at one TP x PP split
loads at another (e.g. saved at TP=2, resumed at TP=1). The data position needs the same number of
data-parallel ranks (the sampler's shards depend on it).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .checkpoint import Checkpointer, saved_backend


class MegatronCheckpointer(Checkpointer):
    """module: the unwrapped `MegatronGeoVR` stage (its sharded_state_dict names the global shards)."""

    def __init__(self, folder, world, keep: int, module: nn.Module, tp: int, pp: int, dp: int, **options):
        super().__init__(folder, world, keep, **options)
        self.module, self.tp, self.pp, self.dp = module, tp, pp, dp

    def _sharded(self, optimizer, loading: bool) -> dict:
        model_sd = self.module.sharded_state_dict()
        # the distributed optimizer's state in the format that reshards over TP, PP and DP (gathered
        # per parameter on save); megatron-core's default needs flattened tensors it no longer saves
        metadata = {"distrib_optim_sharding_type": "fully_reshardable"}
        return {"model": model_sd,
                "optimizer": optimizer.sharded_state_dict(model_sd, is_loading=loading, metadata=metadata)}

    def _write(self, folder: Path, model: nn.Module, optimizer) -> None:
        from megatron.core import dist_checkpointing

        dist_checkpointing.save(self._sharded(optimizer, False), str(folder))

    def _read(self, folder: Path, model: nn.Module, optimizer) -> None:
        from megatron.core import dist_checkpointing

        _allocate_state(optimizer)
        loaded = dist_checkpointing.load(self._sharded(optimizer, True), str(folder))
        self.module.load_state_dict(loaded["model"], strict=True)
        optimizer.load_state_dict(loaded["optimizer"])
        _unshare_steps(optimizer)

    def _layout(self) -> dict:
        return {"backend": "megatron", "tp": self.tp, "pp": self.pp, "dp": self.dp}

    def _check_layout(self, path: Path, state: dict) -> None:
        backend = saved_backend(state)
        if backend != "megatron":
            raise ValueError(f"checkpoint {path} was written by the {backend} backend: resume it with "
                             f"parallel.backend={backend} (the megatron backend reads its own format)")
        saved_dp = state.get("dp", state.get("world_size"))
        if saved_dp != self.dp:
            raise ValueError(f"checkpoint {path} was written with {saved_dp} data-parallel ranks, this run has "
                             f"{self.dp}: TP and PP may change on resume, the data-parallel size may not "
                             "(its samplers' shards depend on it)")


def _allocate_state(optimizer) -> None:
    """Give a fresh distributed optimizer its (zero) Adam state before a load. Over torch's own Adam
    (no Transformer Engine / apex fused Adam) megatron-core's DistributedOptimizer cannot describe
    its state before the first step (its state_dict() asserts one step count); megatron-core's own
    helper takes one zero-gradient step, as it does before loading its FSDP format. The checkpoint
    then overwrites every value (model weights are loaded after it)."""
    from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        if isinstance(opt, DistributedOptimizer):
            if not opt.optimizer.state:
                opt._init_optimizer_states_with_dummy_values()
            _copy_saved_keys_only(opt)


def _copy_saved_keys_only(opt) -> None:
    """Work around megatron-core 0.16 loading a "fully_reshardable" state into a DistributedOptimizer
    over torch's Adam: it copies every key of each parameter's live state, including torch's
    per-parameter "step", which the checkpoint does not hold (load_state_dict has already set it
    from the param groups), and fails with KeyError("step"). Copy the keys the checkpoint holds."""
    original = opt._set_main_param_and_optimizer_states

    def set_states(model_param, tensors):
        group, order = opt.model_param_group_index_map[model_param]
        main = opt.optimizer.param_groups[group]["params"][order]
        state = opt.optimizer.state[main]
        if opt.config.use_precision_aware_optimizer_no_fp8_or_ds_fp8 or "step" not in state:
            return original(model_param, tensors)
        live = {"param": main, **state}
        for key, value in tensors.items():
            live[key].copy_(value)

    opt._set_main_param_and_optimizer_states = set_states


def _unshare_steps(optimizer) -> None:
    """megatron-core 0.16's DistributedOptimizer.load_state_dict gives every parameter of torch's
    Adam the same "step" tensor, which Adam then increments in place once per parameter (the step
    count, hence the bias correction, runs away). Give each parameter its own copy."""
    for opt in getattr(optimizer, "chained_optimizers", [optimizer]):
        inner = getattr(opt, "optimizer", None)
        for state in getattr(inner, "state", {}).values():
            if isinstance(state.get("step"), torch.Tensor):
                state["step"] = state["step"].clone()
