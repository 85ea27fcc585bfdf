"""Fused depth-loss kernel vs the eager reference: values, exact thresholds, gradients, edge cases.

On CPU the kernels run under TRITON_INTERPRET=1 (tests/conftest.py), so shapes stay small.
"""
import pytest
import torch

import geovr.kernels.depth_loss as depth_kernel
from geovr.kernels import _depth_layout as layout
from geovr.kernels.depth_loss import DepthLossSpec, _launch_forward
from geovr.doctor.checks import depth_inputs
from geovr.doctor.compare import DEPTH_UPSTREAM, compare_depth
from geovr.losses import depth_loss
from geovr.losses.depth import CLAMP, GRAD_MIN_PIXELS, MIN_PIXELS, N_SCALES, QUANTILE, quantile_rank

BRANCH, LIM = int(layout.PAR_BRANCH), int(layout.PAR_LIM)  # columns of the per-sample params
_inputs = depth_inputs


def _compare(pred, target, mask=None, weight=None, tol=None, upstream=DEPTH_UPSTREAM):
    """The kernel against the reference: values and gradients (geovr.doctor.compare, whose
    tolerances the doctor applies on a user's GPU)."""
    got = compare_depth(pred, target, mask, weight, upstream=upstream, tol=tol)
    assert got.ok, got.failure


@pytest.mark.parametrize(
    "shapes, outliers",
    [
        ([(2, 30, 40), (1, 5, 7), (3, 9, 31)], 0.01),  # mixed sizes, odd sizes, H < 8
        ([(2, 48, 64)], 0.0),  # several programs per sample
        ([(1, 7, 143)], 0.0),  # n = 1001: fewer than 1000 survivors
        ([(3, 25, 30)], 0.4),  # 40% of errors above 100 (clamped threshold, fallback)
        ([(4, 20, 25)], 0.05),  # 5% above 100: threshold 100, filtered
        ([(1, 20, 25), (1, 1, 1)], 0.0),  # n <= 1000, single pixel
        ([(1, 3, 200)], 0.0),  # one frame, H below 8
        ([(1, 3, 3), (1, 4, 4), (3, 4, 4), (1, 5, 7), (2, 1, 9)], 0.0),  # scales with < 10 pixels drop out
    ],
)
def test_fp32_matches_reference(shapes, outliers, device):
    pred, target = _inputs(shapes, device, outliers=outliers)
    _compare(pred, target)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_reference(dtype, device):
    pred, target = _inputs([(2, 30, 40), (1, 17, 9)], device, dtype=dtype, outliers=0.02, seed=1)
    _compare(pred, target)


def test_mixed_pred_and_target_dtypes(device):
    pred, target = _inputs([(2, 21, 50)], device, dtype=torch.bfloat16, target_dtype=torch.float32)
    _compare(pred, target)


def test_masked_nonfinite_targets(device):
    pred, target = _inputs([(2, 30, 40), (1, 9, 13)], device, outliers=0.01, seed=2)
    masks = []
    for t in target:
        t.view(-1)[::17] = float("nan")
        t.view(-1)[5::23] = float("inf")
        m = torch.isfinite(t) & (torch.rand(t.shape, generator=torch.Generator().manual_seed(3)) > 0.1).to(t.device)
        masks.append(m)
    masks[1][:] = False  # an empty mask: the sample contributes 0
    _compare(pred, target, masks)
    loss, _, _ = depth_loss(pred, target, masks, backend="triton")
    (g,) = torch.autograd.grad(loss, pred[:1])
    assert torch.isfinite(g).all() and (g[~masks[0]] == 0).all()


@pytest.mark.parametrize("outliers", [0.03, 0.4])
def test_confidence_weights(outliers, device):
    pred, target = _inputs([(2, 30, 40), (1, 11, 12), (1, 20, 70)], device, outliers=outliers, seed=4)
    g = torch.Generator().manual_seed(5)
    weight = [torch.rand(t.shape, generator=g).to(device) for t in target]
    _compare(pred, target, weight=weight)


def test_ties_at_threshold(device):
    # 3000 identical errors and 20 larger ones: the threshold is the tied value, all ties survive
    pred = torch.ones(1, 1, 3020, device=device)
    pred[0, 0, :20] = 50.0
    pred.requires_grad_()
    target = torch.zeros(1, 1, 3020, device=device)
    _compare([pred], [target])


@pytest.mark.parametrize("outliers", [0.0, 0.01, 0.3])
def test_threshold_is_the_exact_kth_value(outliers, device):
    pred, target = _inputs([(2, 30, 40), (1, 25, 41), (1, 10, 10)], device, outliers=outliers, seed=6)
    spec = DepthLossSpec(CLAMP, QUANTILE, MIN_PIXELS, N_SCALES, GRAD_MIN_PIXELS, False, False)
    p = torch.cat([x.detach().reshape(-1) for x in pred])
    t = torch.cat([x.reshape(-1) for x in target])
    lengths = tuple(x.numel() for x in pred)
    _, par, *_ = _launch_forward(spec, p, t, p, p, lengths, [tuple(x.shape[1:]) for x in pred])
    for b, (x, y) in enumerate(zip(pred, target)):
        e = (x.detach() - y).abs().flatten().clamp(max=CLAMP)
        n = e.numel()
        if n <= MIN_PIXELS:
            assert par[b, BRANCH].item() == 0  # no filtering
            continue
        k = int(quantile_rank(torch.tensor(n)))
        want = torch.kthvalue(e.cpu(), k).values.item()
        branch = par[b, BRANCH].item()
        if branch == 1:
            assert par[b, LIM].item() == want  # bit-exact
        else:  # too few survivors: only possible with the clamp at 100
            assert want == CLAMP or n < 1020


@pytest.mark.gpu
def test_release_shapes_on_gpu():
    pred, target = _inputs([(8, 392, 504), (3, 196, 252)], "cuda", dtype=torch.bfloat16, outliers=0.01)
    _compare(pred, target)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_half_precision_threshold_is_the_kth_upcast_error(dtype, device):
    """The kernel's threshold is the exact 98th-percentile error of the upcast inputs, in every
    input dtype (a 97th percentile would change the loss by far more than its tolerance)."""
    pred, target = _inputs([(2, 30, 40), (1, 25, 41)], device, dtype=dtype, outliers=0.01, seed=7)
    spec = DepthLossSpec(CLAMP, QUANTILE, MIN_PIXELS, N_SCALES, GRAD_MIN_PIXELS, False, False)
    p = torch.cat([x.detach().reshape(-1) for x in pred])
    t = torch.cat([x.reshape(-1) for x in target])
    _, par, *_ = _launch_forward(spec, p, t, p, p, tuple(x.numel() for x in pred), [tuple(x.shape[1:]) for x in pred])
    assert QUANTILE == (98, 100)
    for b, (x, y) in enumerate(zip(pred, target)):
        e = (x.detach().float() - y.float()).abs().flatten().clamp(max=CLAMP)
        k = int(quantile_rank(torch.tensor(e.numel())))
        assert k == -(-98 * (e.numel() - 1) // 100) + 1  # ceil(0.98 (n - 1)) + 1, the release's rank
        assert par[b, BRANCH].item() == 1 and par[b, LIM].item() == torch.kthvalue(e.cpu(), k).values.item()


def _steps(values, n):
    """A row of n values whose neighbours differ by `values` in turn (cumulative sums)."""
    diffs = torch.tensor(values, dtype=torch.float32).repeat(n // len(values) + 1)[:n - 1]
    signs = torch.tensor([1.0, -1.0]).repeat(n)[:n - 1]
    return torch.cat([torch.zeros(1), torch.cumsum(diffs * signs, 0)])


@pytest.mark.parametrize("axis", ["x", "y"])
def test_finite_differences_on_both_sides_of_the_clamp(axis, device):
    """L_grad clamps |D[i+1] - D[i]| at 100: neighbour differences just below and above it, and up
    to twice it, at every scale's stride, so a clamp moved in the forward or the backward shows."""
    row = _steps([50.0, 99.0, 99.9, 100.2, 101.0, 150.0, 199.0, 201.0, 3.0], 45)
    d = row.view(1, 1, -1).expand(2, 30, -1).clone() if axis == "x" else row.view(1, -1, 1).expand(2, -1, 30).clone()
    d = d - d.mean()  # errors of both signs
    pred = d.to(device).requires_grad_()
    _compare([pred], [torch.zeros_like(pred)])


@pytest.mark.parametrize("far", [150.0, 199.0])
def test_errors_between_the_clamp_and_twice_it(far, device):
    """L_reg keeps errors <= lim: with 40 % of errors in (100, 200] the threshold falls back to the
    clamp (lim = 100) and drops them; with 1 % it is the 98th percentile, below them."""
    for outliers in (0.4, 0.01):
        pred, target = _inputs([(2, 25, 30)], device, outliers=0.0, seed=11)
        t = target[0].clone()
        k = int(outliers * t.numel())
        t.view(-1)[torch.randperm(t.numel(), generator=torch.Generator().manual_seed(3))[:k]] += far
        _compare(pred, [t])


def test_errors_exactly_at_the_clamp(device):
    # differences of exactly 100 sit on the clamp's edge: torch passes the gradient there
    pred = torch.zeros(2, 24, 50, device=device)
    pred[:, :, ::2] = 100.0
    pred[:, ::3, :] += 1.0
    target = torch.zeros_like(pred)
    _compare([pred.requires_grad_()], [target])
    small = torch.zeros(1, 10, 10, device=device)
    small[0, ::2, 1::2] = 100.0
    _compare([small.requires_grad_()], [torch.zeros_like(small)])


@pytest.mark.parametrize("seed", range(4))
def test_random_batches(seed, device):
    # random mixed batches: sizes around the 1000-pixel rule and several programs per sample
    g = torch.Generator().manual_seed(100 + seed)
    shapes = [tuple(int(x) for x in (torch.randint(1, 4, (1,), generator=g).item(),
                                     torch.randint(1, 50, (1,), generator=g).item(),
                                     torch.randint(1, 60, (1,), generator=g).item()))
              for _ in range(int(torch.randint(1, 5, (1,), generator=g)))]
    outliers = [0.0, 0.01, 0.1, 0.5][seed]
    pred, target = _inputs(shapes, device, outliers=outliers, seed=seed)
    # upstream gradients of L_reg and L_grad of either sign (the kernel flips sign bits)
    u_reg, u_grad = [(1.5, 0.75), (-1.5, 0.75), (1.5, -2.0), (-0.5, -1.0)][seed]
    _compare(pred, target, upstream=(0.0, u_reg, u_grad))


@pytest.mark.parametrize("error_buffer", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_both_read_paths(error_buffer, dtype, device, monkeypatch):
    # the later passes read either the stored error D (NaN where masked out) or pred, target and
    # mask again; each input dtype picks one, so force both here, with a mask and with weights
    monkeypatch.setattr(depth_kernel, "_uses_error_buffer", lambda p, t: error_buffer)
    pred, target = _inputs([(2, 30, 40), (1, 13, 90)], device, dtype=dtype, outliers=0.03, seed=7)
    g = torch.Generator().manual_seed(8)
    masks = [(torch.rand(t.shape, generator=g) > 0.2).to(device) for t in target]
    target[0].view(-1)[::29] = float("nan")
    masks[0].view(-1)[::29] = False
    _compare(pred, target, masks)
    weight = [torch.rand(t.shape, generator=g).to(device) for t in target]
    _compare(pred, [t.nan_to_num() for t in target], weight=weight)


def test_error_buffer_rule():
    # written when re-reading the inputs costs >= 6 bytes a pixel: any fp32 input
    f32, b16 = torch.zeros(1), torch.zeros(1, dtype=torch.bfloat16)
    assert depth_kernel._uses_error_buffer(f32, f32) and depth_kernel._uses_error_buffer(b16, f32)
    assert not depth_kernel._uses_error_buffer(b16, b16)


@pytest.mark.parametrize("tiles", ["cuda", "small"])
def test_frame_tilings(tiles, device, monkeypatch):
    # the stats pass and the backward walk lattices of each band of BAND rows in tiles of at most
    # BLOCK pixels; run the GPU's tiles and small ones (many column steps per lattice) too
    tile, chunk, cuda = depth_kernel._tile, depth_kernel._chunk, torch.device("cuda")
    if tiles == "cuda":
        monkeypatch.setattr(depth_kernel, "_tile", lambda k, d: tile(k, cuda))
        monkeypatch.setattr(depth_kernel, "_chunk", lambda d: chunk(cuda))
    else:
        monkeypatch.setattr(depth_kernel, "INTERPRET_FRAME_TILE", (128, 4))
    pred, target = _inputs([(2, 37, 70), (1, 9, 13), (1, 17, 150)], device, outliers=0.02, seed=3)
    g = torch.Generator().manual_seed(4)
    masks = [(torch.rand(t.shape, generator=g) > 0.1).to(device) for t in target]
    _compare(pred, target)
    _compare(pred, target, masks)
