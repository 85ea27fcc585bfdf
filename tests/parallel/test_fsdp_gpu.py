"""The FSDP backend on a CUDA GPU, as users launch it (`python -m geovr.train`, NCCL, one process:
the lent machines have one GPU): fp32 follows the DDP run; bf16 (bf16 all-gathers, fp32
reductions) follows it within bf16 rounding; with `parallel.fsdp_offload=true` (shards and AdamW
in pinned CPU memory, the optimizer step on the CPU) it equals the bf16 run; its checkpoint
resumes and continues the run. GPU only (marker `gpu`)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    tmp = tmp_path_factory.mktemp("fsdp_gpu")
    fsdp = "parallel.backend=fsdp"
    runs = {"ref": _train(synthetic_root, tmp / "ref", "parallel.backend=ddp"),
            "fp32": _train(synthetic_root, tmp / "fp32", fsdp),
            "bf16": _train(synthetic_root, tmp / "bf16", fsdp, "model.dtype=bf16"),
            "offload": _train(synthetic_root, tmp / "offload", fsdp, "model.dtype=bf16", "parallel.fsdp_offload=true")}
    ckpt = tmp / "bf16" / "checkpoints" / "step_00000002"
    runs["resumed"] = _train(synthetic_root, tmp / "resumed", fsdp, "model.dtype=bf16", "--resume", str(ckpt))
    return runs


def test_fsdp_fp32_follows_ddp(gpu_runs):
    _close(gpu_runs["ref"], gpu_runs["fp32"], range(1, STEPS + 1), rel=1e-4)


def test_fsdp_bf16_follows_within_bf16_rounding(gpu_runs):
    _close(gpu_runs["ref"], gpu_runs["bf16"], [1], rel=2e-2)
    assert gpu_runs["bf16"][STEPS]["loss"] < gpu_runs["bf16"][1]["loss"]


def test_offload_equals_the_gpu_shards(gpu_runs):
    _close(gpu_runs["bf16"], gpu_runs["offload"], range(1, STEPS + 1), rel=1e-3)


def test_bf16_checkpoint_resumes(gpu_runs):
    assert sorted(gpu_runs["resumed"]) == [3, 4]
    _close(gpu_runs["bf16"], gpu_runs["resumed"], [3, 4], rel=1e-5)
