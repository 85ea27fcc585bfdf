"""The Megatron backend on a CUDA GPU, as users launch it (`python -m geovr.train`, no CPU shim):
NCCL process group, megatron-core's own CUDA paths. One process (the lent machines have one GPU):
TP=1 fp32 follows the DDP run; bf16 parameters with the distributed optimizer follow it within
bf16 rounding, and their dist_checkpointing checkpoint resumes and continues the same run.
GPU only (marker `gpu`)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("megatron.core")

sys.path.insert(0, str(Path(__file__).parent.parent / "train"))
from train_helpers import losses, overrides, small_config  # noqa: E402

pytestmark = pytest.mark.gpu
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1"}
STEPS = 4
KEYS = ("loss", "loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale")


def _train(root, out, *extra) -> dict[int, dict]:
    cfg = small_config(root, out, steps=STEPS, device="cuda")
    cfg.checkpoint.every = 2
    cfg.model.dtype = "fp32"
    res = subprocess.run([sys.executable, "-m", "geovr.train", *overrides(cfg), *extra], env=ENV,
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    return losses(out)


def _close(a: dict, b: dict, steps, rel: float) -> None:
    for step in steps:
        for key in KEYS:
            assert b[step][key] == pytest.approx(a[step][key], rel=rel, abs=1e-4), (step, key)


@pytest.fixture(scope="module")
def gpu_runs(synthetic_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mcore_gpu")
    runs = {"ref": _train(synthetic_root, tmp / "ref", "parallel.backend=ddp"),
            "tp1": _train(synthetic_root, tmp / "tp1", "parallel.backend=megatron"),
            "bf16": _train(synthetic_root, tmp / "bf16", "parallel.backend=megatron", "model.dtype=bf16",
                           "parallel.distributed_optimizer=true")}
    ckpt = tmp / "bf16" / "checkpoints" / "step_00000002"
    runs["bf16_resumed"] = _train(synthetic_root, tmp / "bf16_resumed", "parallel.backend=megatron",
                                  "model.dtype=bf16", "parallel.distributed_optimizer=true", "--resume", str(ckpt))
    return runs


def test_megatron_fp32_on_gpu_follows_ddp(gpu_runs):
    ref = gpu_runs["ref"]
    assert sorted(ref) == list(range(1, STEPS + 1)) and ref[STEPS]["loss"] < ref[1]["loss"]
    _close(ref, gpu_runs["tp1"], range(1, STEPS + 1), rel=1e-3)  # GPU reductions differ in order


def test_megatron_bf16_distributed_optimizer_on_gpu(gpu_runs):
    _close(gpu_runs["ref"], gpu_runs["bf16"], range(1, STEPS + 1), rel=3e-2)
    resumed = gpu_runs["bf16_resumed"]
    assert sorted(resumed) == [3, 4]
    _close(gpu_runs["bf16"], resumed, [3, 4], rel=1e-2)
