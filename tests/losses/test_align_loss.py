"""The batched alignment reference against the release-style F.normalize loop, and gradcheck."""
import torch

from geovr.losses import align_loss, align_loss_reference
from geovr.losses.release_loop import align_loss_loop


def _inputs(counts, d, layers=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = [[torch.randn(n, d, generator=g, dtype=dtype) for n in counts] for _ in range(layers)]
    t = [[torch.randn(n, d, generator=g, dtype=dtype) for n in counts] for _ in range(layers)]
    return s, t


def test_matches_the_normalize_loop():
    s, t = _inputs([5, 12, 1], 24)
    s[1][0][2] = 0.0  # a zero vector: cos = 0, as F.normalize gives
    torch.testing.assert_close(align_loss_reference(s, t), align_loss_loop(s, t), rtol=1e-12, atol=1e-12)


def test_identical_features_give_zero_and_opposite_give_two():
    s, _ = _inputs([4, 3], 8)
    assert align_loss(s, [[x.clone() for x in layer] for layer in s]).abs().item() < 1e-12
    torch.testing.assert_close(align_loss(s, [[-x for x in layer] for layer in s]).item(), 2.0)


def test_empty_sample_contributes_zero():
    s, t = _inputs([4, 0], 8, layers=1)
    s2, t2 = [[s[0][0]]], [[t[0][0]]]
    torch.testing.assert_close(align_loss(s, t), align_loss(s2, t2) / 2)


def test_gradcheck_fp64_including_zero_vector():
    s, t = _inputs([3, 2], 5, layers=2, seed=1)
    s[0][1][0] = 0.0
    flat = [x.requires_grad_() for layer in s for x in layer]

    def fn(*xs):
        return align_loss_reference([list(xs[:2]), list(xs[2:])], t)

    # a zero vector sits on the kink of max(|s|, eps): check the others with finite differences
    assert torch.autograd.gradcheck(lambda *xs: fn(xs[0], s[0][1], *xs[1:]), (flat[0], *flat[2:]))


def test_tiny_vectors_normalise_as_F_normalize():
    """|s| = 1e-10 (between F.normalize's eps 1e-12 and cosine_similarity's 1e-8): the release's
    F.normalize makes it a unit vector, so the loss sees its direction."""
    import torch.nn.functional as F

    s, t = _inputs([6], 16, layers=1, seed=2)
    s[0][0] = s[0][0] / torch.linalg.vector_norm(s[0][0], dim=-1, keepdim=True) * 1e-10
    want = (1 - (F.normalize(s[0][0], dim=-1) * F.normalize(t[0][0], dim=-1)).sum(-1)).mean()
    torch.testing.assert_close(align_loss_reference(s, t), want, rtol=1e-12, atol=1e-12)
    assert abs(want.item() - 1.0) > 0.05  # cosine_similarity (eps 1e-8) would give about 1 - 0.01 cos
