"""The batched depth reference against the release-style loop, its branches, masks and gradients."""
import math

import pytest
import torch

from geovr.losses import depth_loss, depth_loss_reference
from geovr.losses.depth import MIN_PIXELS, quantile_rank
from geovr.losses.release_loop import depth_loss_loop


def _pair(shapes, seed=0, dtype=torch.float64, outliers=0.0):
    g = torch.Generator().manual_seed(seed)
    pred = [torch.rand(s, generator=g, dtype=dtype) * 4 + 0.1 for s in shapes]
    target = [torch.rand(s, generator=g, dtype=dtype) * 4 + 0.1 for s in shapes]
    for t in target:
        flat = t.view(-1)
        k = int(outliers * flat.numel())
        flat[torch.randperm(flat.numel(), generator=g)[:k]] += 500.0
    return pred, target


@pytest.mark.parametrize("n", [1, 2, 51, 1000, 1001, 1017, 4097, 6_322_176, 10**7 + 3])
def test_quantile_rank_matches_float_formula(n):
    assert quantile_rank(torch.tensor(n)).item() == math.ceil(0.98 * (n - 1)) + 1


@pytest.mark.parametrize(
    "shapes, outliers",
    [
        ([(2, 30, 40)], 0.0),  # filtered branch
        ([(1, 20, 25)], 0.0),  # n = 500 <= 1000: plain mean
        ([(1, 7, 143)], 0.0),  # n = 1001: fewer than 1000 survivors -> clamped mean
        ([(3, 25, 30)], 0.4),  # 40% errors above 100 -> thr = 100, too few survivors
        ([(4, 20, 25)], 0.05),  # 5% above 100 -> thr = 100, enough survivors
        ([(2, 30, 40), (1, 5, 7), (3, 9, 31)], 0.01),  # mixed sizes, odd sizes, H < 8
        ([(1, 1, 1)], 0.0),
        ([(1, 3, 3), (1, 4, 4), (3, 4, 4), (1, 5, 7), (2, 1, 9)], 0.0),  # maps on which scales drop out
    ],
)
def test_reference_matches_release_loop(shapes, outliers):
    pred, target = _pair(shapes, outliers=outliers)
    got = depth_loss_reference(pred, target)
    want = depth_loss_loop(pred, target)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_branches_are_the_release_ones():
    # n <= 1000: plain mean of e, unclamped (an error of 500 counts in full)
    pred = [torch.zeros(1, 10, 10, dtype=torch.float64)]
    target = [torch.zeros(1, 10, 10, dtype=torch.float64)]
    target[0][0, 0, 0] = 500.0
    _, reg, _ = depth_loss_reference(pred, target)
    assert reg.item() == pytest.approx(5.0)
    # n = 1001 distinct errors: k = 981 survivors < 1000 -> mean(clamp(e, 100))
    e = torch.arange(1001, dtype=torch.float64) * 0.01
    e[-1] = 500.0
    pred, target = [e.view(1, 1, -1)], [torch.zeros(1, 1, 1001, dtype=torch.float64)]
    _, reg, _ = depth_loss_reference(pred, target)
    assert reg.item() == pytest.approx((e[:-1].sum().item() + 100.0) / 1001)


def test_ties_at_threshold_all_survive():
    # 3000 pixels with the same error 1.0 and 20 larger ones: thr = 1.0, the 3000 ties survive.
    e = torch.ones(3020, dtype=torch.float64)
    e[:20] = 50.0
    pred, target = [e.view(1, 1, -1)], [torch.zeros(1, 1, 3020, dtype=torch.float64)]
    _, reg, _ = depth_loss_reference(pred, target)
    assert reg.item() == pytest.approx(1.0)


def test_empty_finite_difference_means_count_zero():
    pred, target = _pair([(2, 1, 1)])
    _, _, grad = depth_loss_reference(pred, target)
    assert grad.item() == 0.0


def test_mask_dropping_a_frame_equals_removing_it():
    pred, target = _pair([(3, 30, 40)], seed=3, outliers=0.01)
    mask = torch.ones(3, 30, 40, dtype=torch.bool)
    mask[1] = False
    target[0][1] = float("nan")  # masked-out NaNs are ignored
    got = depth_loss(pred, target, valid_mask=[mask], backend="reference")
    want = depth_loss_loop([pred[0][[0, 2]]], [target[0][[0, 2]]])
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_masked_nonfinite_targets_give_finite_gradients():
    pred, target = _pair([(2, 12, 13)], seed=4)
    pred[0].requires_grad_()
    target[0][0, 3, 4] = float("nan")
    target[0][1, 5, 6] = float("inf")
    mask = torch.isfinite(target[0])
    mask[0, 0, :] = False
    loss, _, _ = depth_loss([pred[0]], target, valid_mask=[mask], backend="reference")
    (g,) = torch.autograd.grad(loss, pred)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    assert (g[~mask] == 0).all()


def test_weights_reweight_reg_only():
    pred, target = _pair([(1, 20, 20)], seed=5)
    ones = [torch.ones_like(pred[0])]
    twos = [2 * torch.ones_like(pred[0])]
    a = depth_loss(pred, target, weight=ones, backend="reference")
    b = depth_loss(pred, target, weight=twos, backend="reference")
    c = depth_loss(pred, target, backend="reference")
    for x, y, z in zip(a, b, c):
        torch.testing.assert_close(x, y)
        torch.testing.assert_close(x, z)
    w = [torch.zeros_like(pred[0])]
    w[0][0, 0, 0] = 1.0
    _, reg, _ = depth_loss(pred, target, weight=w, backend="reference")
    torch.testing.assert_close(reg, (pred[0] - target[0]).abs()[0, 0, 0])


@pytest.mark.parametrize("shapes, outliers", [([(1, 6, 7), (2, 3, 5)], 0.0), ([(1, 9, 120)], 0.3), ([(1, 40, 30)], 0.0)])
def test_reference_gradcheck_fp64(shapes, outliers):
    pred, target = _pair(shapes, seed=7, outliers=outliers)
    # keep pixels away from the kinks of |.| and the clamp so finite differences are valid
    pred = [(t + torch.where(torch.rand_like(p) > 0.5, 1.0, -1.0) * (0.05 + p)).requires_grad_()
            for p, t in zip(pred, target)]
    mask = None
    if outliers == 0.0 and len(shapes) == 1:
        mask = [torch.rand_like(target[0]) > 0.2]
    fn = lambda *ps: depth_loss_reference(list(ps), target, mask)  # noqa: E731
    assert torch.autograd.gradcheck(fn, tuple(pred), eps=1e-7, atol=1e-6)


def test_half_precision_inputs_compute_in_fp32():
    pred, target = _pair([(2, 16, 20)], seed=8, dtype=torch.float32)
    loss16 = depth_loss([pred[0].bfloat16()], [target[0].bfloat16()], backend="reference")[0]
    loss32 = depth_loss([pred[0].bfloat16().float()], [target[0].bfloat16().float()], backend="reference")[0]
    assert loss16.dtype == torch.float32
    torch.testing.assert_close(loss16, loss32)


@pytest.mark.parametrize("shape, used", [
    ((1, 3, 3), [False] * 4),  # 9 pixels: no scale, L_grad = 0
    ((1, 4, 4), [True, False, False, False]),  # 16, 4, 1, 1 pixels
    ((3, 4, 4), [True, True, False, False]),  # 48, 12, 3, 3
    ((1, 5, 7), [True, True, False, False]),  # 35, 12, 4, 1
    ((2, 1, 9), [True, True, False, False]),  # 18, 10 (the boundary counts), 6, 4
    ((1, 9, 9), [True, True, False, False]),  # 81, 25, 9, 4
    ((4, 9, 9), [True, True, True, True]),  # 324, 100, 36, 16
])
def test_grad_term_averages_over_the_scales_with_ten_pixels(shape, used):
    from geovr.losses.depth import grad_scales_used

    assert grad_scales_used(*shape) == used
    g = torch.Generator().manual_seed(3)
    pred = [torch.rand(shape, generator=g, dtype=torch.float64) + 0.5]
    target = [torch.rand(shape, generator=g, dtype=torch.float64) + 0.5]
    d = pred[0] - target[0]
    terms = []
    for s, u in enumerate(used):
        if u:
            ds = d[:, :: 2**s, :: 2**s]
            terms.append(sum(x.abs().mean() if x.numel() else 0.0
                             for x in (ds[:, :, 1:] - ds[:, :, :-1], ds[:, 1:] - ds[:, :-1])))
    want = sum(terms) / len(terms) if terms else 0.0
    assert depth_loss_reference(pred, target)[2].item() == pytest.approx(float(want), rel=1e-12, abs=1e-15)


def test_grad_term_gradient_with_dropped_scales():
    g = torch.Generator().manual_seed(4)
    shapes = [(1, 5, 7), (1, 3, 3), (3, 4, 4)]
    pred = [(torch.rand(s, generator=g, dtype=torch.float64) + 0.5).requires_grad_() for s in shapes]
    target = [torch.rand(s, generator=g, dtype=torch.float64) + 0.5 for s in shapes]
    assert torch.autograd.gradcheck(lambda *p: depth_loss_reference(list(p), target)[2], pred)
