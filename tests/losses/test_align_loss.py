"""The batched alignment reference against torch's cosine_similarity loop, and gradcheck."""
import torch

from geovr.losses import align_loss, align_loss_reference
from geovr.losses.release_loop import align_loss_loop


def _inputs(counts, d, layers=4, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = [[torch.randn(n, d, generator=g, dtype=dtype) for n in counts] for _ in range(layers)]
    t = [[torch.randn(n, d, generator=g, dtype=dtype) for n in counts] for _ in range(layers)]
    return s, t


def test_matches_cosine_similarity_loop():
    s, t = _inputs([5, 12, 1], 24)
    s[1][0][2] = 0.0  # a zero vector: cos = 0, as torch's cosine_similarity
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
