"""pack_flat: zero-copy for back-to-back views, a copy otherwise; and the depth kernel on views."""
import torch

from geovr.kernels._packing import band_layout, block_layout, pack_flat
from geovr.losses import depth_loss


def test_adjacent_views_are_not_copied():
    base = torch.arange(24.0).view(2, 3, 4)
    flat = pack_flat(list(base.unbind(0)))
    assert flat.data_ptr() == base.data_ptr()
    torch.testing.assert_close(flat, base.reshape(-1))


def test_gaps_order_and_dtype_force_a_copy():
    base = torch.arange(30.0)
    for parts in ([base[:10], base[12:20]], [base[10:20], base[:10]]):
        flat = pack_flat(parts)
        assert flat.data_ptr() != base.data_ptr()
        torch.testing.assert_close(flat, torch.cat(parts))
    assert pack_flat([base[:5], base[5:10]], torch.float64).dtype == torch.float64


def test_block_layout():
    offsets, blocks = block_layout((5, 0, 12), 4, torch.device("cpu"))
    assert offsets.tolist() == [0, 5, 5]
    assert blocks.tolist() == [[0, 0], [0, 4], [2, 0], [2, 4], [2, 8]]


def test_band_layout():
    # sample 0: 2 frames of 5 x 3 (bands of 2 rows: 0, 2, 4); sample 1 empty; sample 2: 1 frame of 2 x 7
    bands = band_layout((30, 0, 14), ((5, 3), (4, 4), (2, 7)), 2, torch.device("cpu"))
    assert bands.dtype == torch.int32
    assert bands.tolist() == [[0, 0, 0], [0, 0, 2], [0, 0, 4], [0, 15, 0], [0, 15, 2], [0, 15, 4],
                              [2, 0, 0]]
    idle = band_layout((0,), ((4, 4),), 2, torch.device("cpu")).tolist()
    assert idle == [[0, 0, 2**30]]  # one program whose rows lie past every frame


def test_depth_kernel_on_views_of_one_buffer(device):
    g = torch.Generator().manual_seed(0)
    pred = (torch.rand(3, 2, 20, 30, generator=g) + 0.1).to(device).requires_grad_()
    target = (torch.rand(3, 2, 20, 30, generator=g) + 0.1).to(device)
    got = depth_loss(list(pred.unbind(0)), list(target.unbind(0)), backend="triton")[0]
    want = depth_loss(list(pred.unbind(0)), list(target.unbind(0)), backend="reference")[0]
    torch.testing.assert_close(got, want)
    (gk,) = torch.autograd.grad(got, pred)
    (gr,) = torch.autograd.grad(want, pred)
    torch.testing.assert_close(gk, gr)
