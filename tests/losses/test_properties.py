"""Property-based checks (hypothesis): the batched references equal the release-style loops on
random batches of mixed sizes, and the depth loss is invariant to the sample order."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geovr.losses import align_loss_reference, depth_loss_reference, pose_loss
from geovr.losses.release_loop import align_loss_loop, depth_loss_loop, pose_loss_loop

shape = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40))


@settings(max_examples=40, deadline=None)
@given(shapes=st.lists(shape, min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1),
       outliers=st.sampled_from([0.0, 0.01, 0.1, 0.5]))
def test_depth_reference_equals_loop(shapes, seed, outliers):
    g = torch.Generator().manual_seed(seed)
    pred = [torch.rand(s, generator=g, dtype=torch.float64) * 3 for s in shapes]
    target = [torch.rand(s, generator=g, dtype=torch.float64) * 3 for s in shapes]
    for t in target:
        t.view(-1)[torch.rand(t.numel(), generator=g, dtype=torch.float64) < outliers] += 200.0
    got = depth_loss_reference(pred, target)
    for a, b in zip(got, depth_loss_loop(pred, target)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
    perm = torch.randperm(len(shapes), generator=g).tolist()
    shuffled = depth_loss_reference([pred[i] for i in perm], [target[i] for i in perm])
    for a, b in zip(got, shuffled):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(counts=st.lists(st.integers(1, 20), min_size=1, max_size=4), d=st.integers(1, 33),
       layers=st.integers(1, 4), seed=st.integers(0, 2**31 - 1))
def test_align_reference_equals_loop(counts, d, layers, seed):
    g = torch.Generator().manual_seed(seed)
    s = [[torch.randn(n, d, generator=g, dtype=torch.float64) for n in counts] for _ in range(layers)]
    t = [[torch.randn(n, d, generator=g, dtype=torch.float64) for n in counts] for _ in range(layers)]
    torch.testing.assert_close(align_loss_reference(s, t), align_loss_loop(s, t), rtol=1e-10, atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(frames=st.lists(st.integers(1, 8), min_size=1, max_size=4), seed=st.integers(0, 2**31 - 1))
def test_pose_reference_equals_loop(frames, seed):
    g = torch.Generator().manual_seed(seed)
    pred = [torch.randn(t, 9, generator=g, dtype=torch.float64) * 50 for t in frames]
    target = [torch.randn(t, 9, generator=g, dtype=torch.float64) * 50 for t in frames]
    for a, b in zip(pose_loss(pred, target), pose_loss_loop(pred, target)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
