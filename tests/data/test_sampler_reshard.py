"""`ResumableSampler` across a change of the number of ranks (a checkpoint of W ranks resumed by
M): no sample of the epoch is lost, none is read twice when the ranks were level, and each rank
of the same number continues exactly where it stopped."""
import random

import pytest

from geovr.data.sampler import ResumableSampler


def samplers(n, world, lengths=None, micro=1, group=0):
    return [ResumableSampler(n, seed=3, rank=r, world_size=world, lengths=lengths, micro_batch=micro, group=group)
            for r in range(world)]


def consumed(old, indices):
    """The dataset indices the old ranks had read (rank r its first indices[r])."""
    return [k for s, i in zip(old, indices) for k in s.order(0)[:i]]


def resume(old, indices, new):
    state = old[0].state_dict((0, indices[0]), [(0, i) for i in indices])
    for s in new:
        s.load_state_dict(state)
    return [k for s in new for k in (s.order(s.epoch)[s.start:] if s.epoch == 0 else [])]


@pytest.mark.parametrize("world,new_world", [(4, 2), (2, 1), (4, 1), (1, 4), (2, 4), (3, 2)])
def test_level_ranks_reshard_without_loss_or_repeat(world, new_world):
    n = 48
    old, new = samplers(n, world), samplers(n, new_world)
    per_step = 12  # the global batch: every layout reads a multiple of it
    for steps in range(n // per_step):
        indices = [steps * per_step // world] * world
        seen, rest = consumed(old, indices), resume(old, indices, new)
        assert sorted(seen + rest) == list(range(n)), steps  # every sample once, the epoch completed
        assert new[0].start == steps * per_step // new_world


def test_uneven_ranks_lose_nothing_and_repeat_only_past_the_slowest():
    n = 40
    old, new = samplers(n, 4), samplers(n, 2)
    indices = [5, 6, 5, 7]  # ranks that read on past micro-batches of only bad items
    seen, rest = consumed(old, indices), resume(old, indices, new)
    assert set(seen) | set(rest) == set(range(n)) and len(set(rest)) == len(rest)
    assert new[0].start == 5 * 4 // 2  # after the prefix every rank had read: 5 positions x 4 ranks
    assert len(set(seen) & set(rest)) == sum(indices) - 5 * 4


def test_length_grouped_windows_reshard_at_a_complete_window():
    n, micro, group = 64, 2, 2
    rng = random.Random(0)
    lengths = [rng.randint(1, 100) for _ in range(n)]
    old = samplers(n, 4, lengths, micro, group)
    new = samplers(n, 2, lengths, micro, group)
    indices = [6] * 4  # one complete window of 4 per rank and half of the next
    seen, rest = consumed(old, indices), resume(old, indices, new)
    assert set(seen) | set(rest) == set(range(n)) and len(set(rest)) == len(rest)
    assert new[0].start == 4 * 4 // 2  # the 16 samples of the complete windows
    assert len(set(seen) & set(rest)) == 4 * 2  # the half windows are read again


def test_a_finished_epoch_resumes_at_the_next():
    old, new = samplers(10, 4), samplers(10, 2)  # 4 ranks x 3 = 12 slots (2 wrap around)
    state = old[0].state_dict((0, 3), [(0, 3), (0, 3), (1, 0), (0, 3)])
    for s in new:
        s.load_state_dict(state)
    assert [(s.epoch, s.start) for s in new] == [(1, 0), (1, 0)]


def test_same_world_each_rank_resumes_at_its_own_position():
    old, new = samplers(40, 2), samplers(40, 2)
    state = old[0].state_dict((0, 7), [(0, 7), (0, 9)])
    for s in new:
        s.load_state_dict(state)
    assert [(s.epoch, s.start) for s in new] == [(0, 7), (0, 9)]
    legacy = {k: v for k, v in state.items() if k != "ranks"}  # a checkpoint from before "ranks"
    new[1].load_state_dict(legacy)
    assert (new[1].epoch, new[1].start) == (0, 7)
    with pytest.raises(ValueError, match="sampler seed=3 differs"):
        ResumableSampler(40, seed=4, world_size=2).load_state_dict(state)
