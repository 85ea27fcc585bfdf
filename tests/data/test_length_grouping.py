"""Length-grouped sampling: on a VSI-590K-like mix of clip lengths it cuts the padding of
micro-batches, while each epoch still visits every sample once per rank, deterministically and
resumably; the padding metric and the probed frame counts."""
import random

import torch

from geovr.data.sampler import ResumableSampler, padding_fraction

TOKENS_PER_FRAME, TEXT = 300, 100


def vsi_like_lengths(n: int, seed: int = 0) -> list[int]:
    """Frames per clip at 2 fps, 4..32: long scans hit the 32 cap, short clips spread below it."""
    rng = random.Random(seed)
    return [32 if rng.random() < 0.55 else rng.randint(4, 31) for _ in range(n)]


def mean_padding(order: list[int], lengths: list[int], micro: int) -> float:
    fracs = []
    for i in range(0, len(order) - micro + 1, micro):
        tokens = [lengths[k] * TOKENS_PER_FRAME + TEXT for k in order[i:i + micro]]
        fracs.append(1 - sum(tokens) / (max(tokens) * len(tokens)))
    return sum(fracs) / len(fracs)


def test_grouping_cuts_padding_on_a_vsi_like_mix():
    lengths = vsi_like_lengths(2000)
    plain = ResumableSampler(2000, seed=3)
    grouped = ResumableSampler(2000, seed=3, lengths=lengths, micro_batch=4, group=16)
    before, after = mean_padding(plain.order(0), lengths, 4), mean_padding(grouped.order(0), lengths, 4)
    assert before > 0.15 and after < 0.25 * before, (before, after)
    print(f"padding per micro-batch of 4: {before:.1%} -> {after:.1%}")


def test_grouped_epochs_visit_every_sample_once_and_resume():
    lengths = vsi_like_lengths(103, seed=1)
    for world in (1, 2):
        plain = [ResumableSampler(103, seed=5, rank=r, world_size=world) for r in range(world)]
        grouped = [ResumableSampler(103, seed=5, rank=r, world_size=world, lengths=lengths, micro_batch=2, group=4)
                   for r in range(world)]
        for p, g in zip(plain, grouped):
            assert sorted(p.order(1)) == sorted(g.order(1))  # the same samples per rank, regrouped
            assert g.order(1) == g.order(1) and g.order(1) != g.order(2)
            window = g.order(1)[:8]
            assert [lengths[k] for k in window] == sorted((lengths[k] for k in window), reverse=True)
    s = ResumableSampler(103, seed=5, lengths=lengths, micro_batch=2, group=4)
    keys = [k for k, _, _ in s]
    resumed = ResumableSampler(103, seed=5, lengths=lengths, micro_batch=2, group=4)
    resumed.load_state_dict(s.state_dict((0, 40)))
    assert [k for k, _, _ in resumed] == keys[40:]


def test_bad_lengths_and_the_padding_metric():
    import pytest

    with pytest.raises(ValueError, match="lengths: 3 entries"):
        ResumableSampler(4, lengths=[1, 2, 3], group=2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    assert padding_fraction(mask) == 0.25


def test_frame_counts_are_what_loading_gives(synthetic_root):
    from geovr.data.dataset import VideoQADataset
    from geovr.data.datasets import read_vsi590k

    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records[:6]
    ds = VideoQADataset(recs, backend="pyav")
    assert ds.frame_counts() == [len(ds.load(i).indices) for i in range(len(recs))]
