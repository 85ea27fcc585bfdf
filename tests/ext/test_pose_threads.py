"""The CPU pose loss threads over samples only when the batch has enough work (at::parallel_for's
grain, `_ext.pose_cpu_grain`): a release-sized batch (B = 8, T = 32) runs on one thread, a large
one per sample; the values do not depend on which."""
import pytest
import torch

ext = pytest.importorskip("geovr._ext")

PARALLEL_TERMS = 1 << 16  # csrc/pose_loss_cpu.h: kParallelTerms (frame + pair terms of a batch)


def _offsets(batch: int, frames: int) -> torch.Tensor:
    return torch.arange(0, frames * (batch + 1), frames, dtype=torch.long)


def test_grain_is_the_whole_batch_below_the_work_threshold():
    assert ext.pose_cpu_grain(_offsets(8, 32), 2) == 8  # relative: 8 x 32^2 = 8k terms, one thread
    assert ext.pose_cpu_grain(_offsets(64, 32), 2) == 1  # 64 x 32^2 = 64k: threaded
    assert ext.pose_cpu_grain(_offsets(63, 32), 2) == 63  # one sample under the threshold
    assert 64 * 32 * 32 == PARALLEL_TERMS
    assert ext.pose_cpu_grain(_offsets(64, 32), 0) == 64  # paper mode: frames only, 2k terms
    assert ext.pose_cpu_grain(_offsets(2048, 32), 0) == 1
    assert ext.pose_cpu_grain(torch.tensor([0, 1]), 2) == 1
    with pytest.raises(RuntimeError, match="offsets: expected int64"):
        ext.pose_cpu_grain(torch.tensor([0, 1], dtype=torch.int32), 2)


def test_threaded_and_single_thread_batches_give_the_same_values():
    """A 64-sample batch (threaded) equals its two 32-sample halves (one thread each), bit for bit."""
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(64 * 32, 9, generator=g), torch.randn(64 * 32, 9, generator=g)
    grad = torch.rand(64, 3, generator=g)
    whole = ext.pose_loss_forward(pred, target, _offsets(64, 32), 2, 100.0, 0.0)
    whole_g = ext.pose_loss_backward(pred, target, _offsets(64, 32), grad, 2, 100.0, 0.0)
    half = 32 * 32
    for s in (slice(0, half), slice(half, 2 * half)):
        rows = slice(s.start // 32, s.stop // 32)
        part = ext.pose_loss_forward(pred[s], target[s], _offsets(32, 32), 2, 100.0, 0.0)
        part_g = ext.pose_loss_backward(pred[s], target[s], _offsets(32, 32), grad[rows], 2, 100.0, 0.0)
        assert torch.equal(part, whole[rows]) and torch.equal(part_g, whole_g[s])
