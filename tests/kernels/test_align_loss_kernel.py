"""Fused alignment kernel vs the eager reference: values, gradients, zero vectors, varlen."""
import pytest
import torch

from geovr.doctor.checks import align_inputs
from geovr.doctor.compare import compare_align
from geovr.losses import align_loss

_inputs = align_inputs


def _compare(student, teacher):
    """The kernel against the reference: the loss and every gradient (geovr.doctor.compare)."""
    got = compare_align(student, teacher)
    assert got.ok, got.failure


@pytest.mark.parametrize("counts, d, layers", [
    ([17, 5, 32], 64, 4),  # rows of several segments share a tile
    ([1], 8, 1),  # one token, one layer
    ([9, 0, 4], 48, 2),  # an empty sample
    ([33], 1000, 4),  # D not a power of two, several D chunks
    ([3, 3], 1, 3),  # D = 1
])
def test_fp32_matches_reference(counts, d, layers, device):
    _compare(*_inputs(counts, d, device, layers=layers))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_reference(dtype, device):
    _compare(*_inputs([20, 7], 96, device, dtype=dtype, seed=1))


def test_zero_vectors(device):
    student, teacher = _inputs([6, 4], 32, device, seed=2)
    with torch.no_grad():
        student[0][0][1].zero_()
        teacher[1][1][2].zero_()
        student[2][0][3].zero_()
        teacher[2][0][3].zero_()
    _compare(student, teacher)
    loss = align_loss(student, teacher, backend="triton")
    grads = torch.autograd.grad(loss, [x for layer in student for x in layer])
    assert all(torch.isfinite(g).all() for g in grads)


def test_packed_views_need_no_copy(device):
    # per-sample views of one buffer (as the model produces them) give the same result
    g = torch.Generator().manual_seed(3)
    buf = torch.randn(2, 30, 16, generator=g).to(device).requires_grad_()
    student = [list(buf[k].split([10, 20])) for k in range(2)]
    teacher = [[torch.randn(n, 16, generator=g).to(device) for n in (10, 20)] for _ in range(2)]
    got = align_loss(student, teacher, backend="triton")
    want = align_loss(student, teacher, backend="reference")
    torch.testing.assert_close(got, want)
    (gk,) = torch.autograd.grad(got, buf)
    (gr,) = torch.autograd.grad(want, buf)
    torch.testing.assert_close(gk, gr)


@pytest.mark.gpu
def test_release_shapes_on_gpu():
    _compare(*_inputs([32 * 14 * 18] * 8, 1024, "cuda", dtype=torch.bfloat16))


def test_tiny_vectors_between_the_two_eps(device):
    """Rows of norm 1e-10 (below cosine_similarity's eps 1e-8, above F.normalize's 1e-12): the
    kernel normalises them as the release's F.normalize does, values and gradients."""
    student, teacher = _inputs([5, 3], 24, device, layers=2, seed=3)
    with torch.no_grad():
        for x in (student[0][0], student[1][1]):
            x.mul_(1e-10 / torch.linalg.vector_norm(x, dim=-1, keepdim=True))
    _compare(student, teacher)
    import torch.nn.functional as F

    s, t = student[0][0].detach().double(), teacher[0][0].double()
    per_row = 1 - (F.normalize(s, dim=-1) * F.normalize(t, dim=-1)).sum(-1)
    got = align_loss([[student[0][0]]], [[teacher[0][0]]], backend="triton")
    torch.testing.assert_close(got.double(), per_row.mean(), rtol=1e-5, atol=1e-6)
