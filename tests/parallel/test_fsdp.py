"""FSDP2 in one process (a process group of one): which parameters are sharded, and the FSDP
trainer (with and without CPU offload of the shards and the optimizer step) takes the same
steps as the DDP trainer. The multi-rank runs are in tests/train/test_fsdp_processes.py."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from train_helpers import losses, small_config  # noqa: E402

from geovr.train import config as config_module  # noqa: E402
from geovr.train.fsdp_loop import FSDPTrainer  # noqa: E402
from geovr.train.loop import Trainer  # noqa: E402


def run(trainer_cls, cfg):
    trainer = trainer_cls(cfg)
    try:
        trainer.train()
    finally:
        trainer.close()
    return trainer


def test_what_is_sharded(synthetic_root, tmp_path):
    from torch.distributed.tensor import DTensor

    cfg = small_config(synthetic_root, tmp_path / "run", steps=1, global_batch=2, micro_batch=2)
    cfg.parallel.backend = "fsdp"
    trainer = run(FSDPTrainer, cfg)
    kinds = {n: isinstance(p, DTensor) for n, p in trainer.geo.named_parameters()}
    frozen = [n for n, p in trainer.geo.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("base.model.visual.") and not kinds[n] for n in frozen)
    assert all(kinds[n] for n, p in trainer.geo.named_parameters() if p.requires_grad)
    assert any(n.startswith("base.model.visual.merger.") and kinds[n] for n in kinds)
    from torch.distributed.fsdp import FSDPModule

    layers = trainer.geo.base.model.language_model.layers
    assert all(isinstance(layer, FSDPModule) for layer in layers) and isinstance(trainer.geo, FSDPModule)
    assert not torch.distributed.is_initialized()  # its own process group, closed with it


@pytest.mark.parametrize("offload", [False, True])
def test_one_process_fsdp_takes_the_ddp_steps(synthetic_root, tmp_path, monkeypatch, offload):
    ddp = small_config(synthetic_root, tmp_path / "ddp", steps=3, global_batch=4, micro_batch=2)
    run(Trainer, ddp)
    fsdp = small_config(synthetic_root, tmp_path / "fsdp", steps=3, global_batch=4, micro_batch=2)
    fsdp.parallel.backend, fsdp.parallel.fsdp_offload = "fsdp", offload
    if offload:  # the offload policy on a CPU-only machine: the code path, not its speed
        monkeypatch.setattr(config_module, "_gpu_visible", lambda: True)
    trainer = run(FSDPTrainer, fsdp)
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "fsdp")
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for step in a:
        for key in ("loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale", "grad_norm"):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-5, abs=1e-7), (step, key)
    assert a[3]["loss"] != a[1]["loss"]
    if offload:
        shard = next(p for p in trainer.geo.parameters() if p.requires_grad)
        assert shard.to_local().device.type == "cpu"


def test_fsdp_skips_nan_steps_and_keeps_the_shards(synthetic_root, tmp_path):
    from geovr.train.loop import TooManyBadSteps

    cfg = small_config(synthetic_root, tmp_path / "run", steps=20, max_bad_steps=3, global_batch=2, micro_batch=2)
    cfg.parallel.backend = "fsdp"
    cfg.optim.lr, cfg.optim.lr_new, cfg.optim.warmup_ratio, cfg.optim.clip = 1e30, 1e30, 0.0, 0.0
    trainer = FSDPTrainer(cfg)
    try:
        with pytest.raises(TooManyBadSteps, match="3 steps in a row had a NaN/inf"):
            trainer.train()
        assert [s for s, r in losses(tmp_path / "run").items() if r["skipped_step"]] == [2, 3]
        shards = {n: p.to_local().clone() for n, p in trainer.geo.named_parameters() if p.requires_grad}
        batches = trainer._micro_batches()
        with pytest.raises(TooManyBadSteps):
            trainer.train_step([next(batches) for _ in range(trainer.accum)])
        assert all(torch.equal(p.to_local(), shards[n]) for n, p in trainer.geo.named_parameters() if p.requires_grad)
    finally:
        trainer.close()
