"""The training-only heads: shapes, output ranges, gradients to every input, input checks."""
import pytest
import torch

from geovr.model.heads import AlignProjector, CameraHead, DPTDepthHead, ScaleHead


def test_camera_head():
    head = CameraHead(32, hidden=48)
    x = torch.randn(2, 7, 32, requires_grad=True)
    out = head(x)
    assert out.shape == (2, 7, 9) and torch.all(out[..., 7:] >= 0)  # FoV through ReLU
    out.sum().backward()
    assert x.grad.abs().sum() > 0
    assert sum(p.numel() for p in CameraHead(2048).parameters()) == (
        2 * 2048 + 2048 * 1536 + 1536 + 1536 * 1536 + 1536 + 1536 * 9 + 9)  # the release's widths


def test_scale_head_is_positive():
    out = ScaleHead(32)(torch.randn(5, 32) * 10)
    assert out.shape == (5,) and torch.all(out > 0)


def test_projector_resizes_to_the_teacher_grid():
    proj = AlignProjector(32, out_dim=24, hidden=40)
    grid = torch.randn(3, 15, 20, 32, requires_grad=True)
    out = proj(grid, (14, 18))
    assert out.shape == (3, 14, 18, 24)
    out.sum().backward()
    assert grid.grad.abs().sum() > 0
    same = proj(grid, (15, 20))
    torch.testing.assert_close(same, proj.mlp(grid))  # no resize when the grids already match
    with pytest.raises(ValueError, match=r"\[T, h, w, d\]"):
        proj(torch.randn(15, 20, 32), (14, 18))


@pytest.mark.parametrize("grid,out", [((15, 20), (392, 504)), ((7, 9), (224, 280)), ((1, 1), (28, 28))])
def test_dpt_head_lands_on_the_teacher_pixels(grid, out):
    head = DPTDepthHead(32, channels=(8, 16, 24, 24), features=8)
    grids = [torch.randn(2, *grid, 32, requires_grad=True) for _ in range(4)]
    depth = head(grids, out)
    assert depth.shape == (2, *out) and torch.all(depth > 0)
    depth.log().mean().backward()
    assert all(g.grad is not None and g.grad.abs().sum() > 0 for g in grids)


def test_dpt_head_checks():
    head = DPTDepthHead(16, channels=(8, 8, 8, 8), features=8)
    g = [torch.randn(1, 4, 4, 16)] * 4
    with pytest.raises(ValueError, match="multiples of the patch 28"):
        head(g, (100, 100))
    with pytest.raises(ValueError, match="need 4 layer grids"):
        head(g[:3], (56, 56))
    with pytest.raises(ValueError, match="multiple of 4"):
        DPTDepthHead(16, patch=30)
