"""`MegatronCheckpointer`: the trainer's checkpoints on the Megatron backend, through megatron-core's
dist_checkpointing. Same folder layout and atomic rename as `Checkpointer`; the model and optimizer
are saved as sharded tensors with their global shapes, so a checkpoint written at one TP x PP split
loads at another (e.g. saved at TP=2, resumed at TP=1). The data position needs the same number of
data-parallel ranks (the sampler's shards depend on it).
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

from .checkpoint import Checkpointer


class MegatronCheckpointer(Checkpointer):
    """module: the unwrapped `MegatronGeoVR` stage (its sharded_state_dict names the global shards)."""

    def __init__(self, folder, world, keep: int, module: nn.Module, tp: int, pp: int, dp: int):
        super().__init__(folder, world, keep)
        self.module, self.tp, self.pp, self.dp = module, tp, pp, dp

    def _sharded(self, optimizer, loading: bool) -> dict:
        model_sd = self.module.sharded_state_dict()
        return {"model": model_sd, "optimizer": optimizer.sharded_state_dict(model_sd, is_loading=loading)}

    def _write(self, folder: Path, model: nn.Module, optimizer) -> None:
        from megatron.core import dist_checkpointing

        dist_checkpointing.save(self._sharded(optimizer, False), str(folder))

    def _read(self, folder: Path, model: nn.Module, optimizer) -> None:
        from megatron.core import dist_checkpointing

        loaded = dist_checkpointing.load(self._sharded(optimizer, True), str(folder))
        self.module.load_state_dict(loaded["model"], strict=True)
        optimizer.load_state_dict(loaded["optimizer"])

    def _layout(self) -> dict:
        return {"tp": self.tp, "pp": self.pp, "dp": self.dp}

    def _check_layout(self, path: Path, state: dict) -> None:
        saved_dp = state.get("dp", state.get("world_size"))
        if saved_dp != self.dp:
            raise ValueError(f"checkpoint {path} was written with {saved_dp} data-parallel ranks, this run has "
                             f"{self.dp}: TP and PP may change on resume, the data-parallel size may not "
                             "(its samplers' shards depend on it)")
