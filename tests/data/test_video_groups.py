"""`VideoGroupSampler`: an epoch trains every question once, in steps of exactly global_batch /
ranks questions per rank, packed by video into sequences of at most K, every rank running the
same micro-batches; deterministic, resumable mid-epoch exactly, and at a step boundary with
another number of ranks. `video_groups` keeps records with different prompts apart."""
import dataclasses
from collections import Counter

import pytest

from geovr.data.datasets import Turn, VideoQA
from geovr.data.sampler import position_after
from geovr.data.video_groups import VideoGroupSampler, prefix_signature, video_groups

# questions per video, as uneven as VSI-590K's sources (ADT ~329, ScanNet ~77, ARKitScenes ~20)
SIZES = [33, 1, 7, 16, 2, 9, 5, 12, 3, 1, 20, 4]


def groups_of(sizes=SIZES):
    out, k = [], 0
    for n in sizes:
        out.append(list(range(k, k + n)))
        k += n
    return out


def group_of(groups):
    return {r: g for g, recs in enumerate(groups) for r in recs}


@pytest.mark.parametrize("k,global_batch,micro_batch,world", [(4, 16, 2, 2), (8, 24, 1, 4), (1, 8, 2, 1),
                                                               (32, 12, 3, 3)])
def test_an_epoch_trains_every_question_once_in_equal_steps(k, global_batch, micro_batch, world):
    groups = groups_of()
    n, owner = sum(SIZES), group_of(groups)
    samplers = [VideoGroupSampler(groups, k, global_batch, micro_batch, seed=3, rank=r, world_size=world)
                for r in range(world)]
    plan = samplers[0].plan(0)
    assert len(plan) == samplers[0].steps_per_epoch == -(-n // global_batch)
    seen = Counter()
    for j, step in enumerate(plan):
        for r in range(world):
            mbs = step.ranks[r]
            assert len(mbs) == step.micro_batches  # every rank the same micro-batch count
            seqs = [s for mb in mbs for s in mb]
            assert all(1 <= len(mb) <= micro_batch for mb in mbs)
            assert sum(len(s) for s in seqs) == global_batch // world  # exactly its share of questions
            for s in seqs:
                assert 1 <= len(s) <= k and len({owner[x] for x in s}) == 1  # one video, at most K
                seen.update(s)
    assert set(seen) == set(range(n))
    assert sum(seen.values()) - n == len(plan) * global_batch - n  # only the last step's padding repeats
    # the rank's iteration yields its micro-batches of the plan, positions counting sequences
    for r, s in enumerate(samplers):
        got = list(s)
        assert [[key[0] for key in mb] for mb in got] == s.rank_sequences(0)
        assert [key[2] for mb in got for key in mb] == list(range(sum(len(mb) for mb in got)))
        assert len(s) == len(got)
        assert [mb for step in samplers[0].plan(0) for mb in step.ranks[r]] == s.rank_sequences(0)


def test_packing_is_what_grouping_buys():
    groups = groups_of()
    s = VideoGroupSampler(groups, 8, 32, 2, seed=0)
    seqs = [q for mb in s.rank_sequences(0) for q in mb]
    assert sum(map(len, seqs)) / len(seqs) > 3  # mean questions per sequence
    shuffled_again = VideoGroupSampler(groups, 8, 32, 2, seed=0).rank_sequences(1)
    assert shuffled_again != s.rank_sequences(0)  # a new order each epoch
    assert VideoGroupSampler(groups, 8, 32, 2, seed=0).rank_sequences(0) == s.rank_sequences(0)


def test_resume_mid_epoch_continues_exactly():
    groups = groups_of()
    whole = list(VideoGroupSampler(groups, 4, 8, 2, seed=1, rank=1, world_size=2))
    first = VideoGroupSampler(groups, 4, 8, 2, seed=1, rank=1, world_size=2)
    it = iter(first)
    consumed = [next(it) for _ in range(5)]
    state = first.state_dict(position_after([(key[1], key[2]) for mb in consumed for key in mb]))
    again = VideoGroupSampler(groups, 4, 8, 2, seed=1, rank=1, world_size=2)
    again.load_state_dict(state)
    assert consumed + list(again) == whole


def test_resume_with_other_ranks_starts_at_the_step_boundary():
    groups = groups_of()
    old = [VideoGroupSampler(groups, 4, 16, 1, seed=2, rank=r, world_size=4) for r in range(4)]
    plan = old[0].plan(0)
    done = 3  # every rank finished steps 0..2; rank 0 is also one sequence into step 3
    ranks = []
    for r in range(4):
        index = sum(len(mb) for step in plan[:done] for mb in step.ranks[r])
        ranks.append((0, index + (1 if r == 0 else 0)))
    state = old[0].state_dict(ranks[0], ranks)
    new = [VideoGroupSampler(groups, 4, 16, 1, seed=2, rank=r, world_size=2) for r in range(2)]
    for s in new:
        s.load_state_dict(state)
    resumed = sorted(x for s in new for mb in s for key in mb for x in key[0])
    steps = old[0].steps(0)
    assert steps == new[0].steps(0)  # what a step holds does not depend on the ranks
    assert resumed == sorted(x for step in steps[done:] for seq in step for x in seq)  # steps 3.. exactly


def test_resume_refuses_another_plan():
    groups = groups_of()
    state = VideoGroupSampler(groups, 4, 16, 1).state_dict()
    with pytest.raises(ValueError, match="group_by_video=4 differs"):
        VideoGroupSampler(groups, 8, 16, 1).load_state_dict(state)
    with pytest.raises(ValueError, match="without data.group_by_video"):
        VideoGroupSampler(groups, 4, 16, 1).load_state_dict({"epoch": 0, "index": 3, "seed": 0, "n": sum(SIZES)})


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="multiple of the 3 data-parallel ranks"):
        VideoGroupSampler(groups_of(), 4, 16, 1, world_size=3, rank=0)
    with pytest.raises(ValueError, match="empty"):
        VideoGroupSampler([], 4, 16)


def _rec(i, media, first_user="<video>\nThese are frames of a video.\nQ?", system=None):
    turns = ((Turn("system", system),) if system else ()) + (Turn("user", first_user), Turn("assistant", "A"))
    return VideoQA(id=str(i), media=media, kind="video", turns=turns, source="t")


def test_video_groups_split_by_media_and_by_the_text_before_the_video():
    recs = [_rec(0, "a.mp4"), _rec(1, "b.mp4"), _rec(2, "a.mp4", "<video>\nAnother question?"),
            _rec(3, "a.mp4", system="Be brief."), _rec(4, "a.mp4", "Look: <video>\nQ?"), _rec(5, "b.mp4")]
    assert video_groups(recs) == [[0, 2], [1, 5], [3], [4]]
    assert prefix_signature(recs[0]) == prefix_signature(dataclasses.replace(recs[0], turns=recs[2].turns))


def test_a_step_splits_a_video_only_where_the_ranks_force_it():
    """2 + 4 + 2 questions on 2 ranks of 4: the 4 go whole to one rank, the two pairs to the other
    (three sequences; two contiguous slices would cut the middle video in two)."""
    groups = [[0, 1], [2, 3, 4, 5], [6, 7]]
    plan = VideoGroupSampler(groups, 4, 8, 4, shuffle=False, world_size=2).plan(0)
    ranks = [[s for mb in plan[0].ranks[r] for s in mb] for r in range(2)]
    assert sorted(ranks, key=len) == [[(2, 3, 4, 5)], [(0, 1), (6, 7)]]


def test_whole_chunks_fill_steps_and_only_remainders_are_split():
    """Videos of 9, 9 and 6 questions, K = 4, 8 a step on 2 ranks: the four whole chunks of 4 fill
    a step and split nothing; the remainders (1, 1, 2) and the padding share the last step."""
    groups = [list(range(0, 9)), list(range(9, 18)), list(range(18, 24))]
    s = VideoGroupSampler(groups, 4, 8, 1, shuffle=False, world_size=2)
    steps = s.steps(0)
    assert len(steps) == 3 and all(sum(map(len, step)) == 8 for step in steps)
    assert steps[0] == [[0, 1, 2, 3], [4, 5, 6, 7]] and steps[1] == [[9, 10, 11, 12], [13, 14, 15, 16]]
    assert steps[2][:3] == [[18, 19, 20, 21], [8], [17]] and sum(map(len, steps[2][3:])) == 2  # padding
    # the GeoVR mix at K = 32, 256 a step on 8 GPUs: near the bound sum_v ceil(n_v / 32)
    from geovr.plan.epoch import geovr_mix, sequences_per_epoch

    mix = geovr_mix()
    lower = sum(-(-n // 32) for n in mix.per_video)
    seqs, _ = sequences_per_epoch(mix, 32, 256, 1, 8)
    assert lower <= seqs <= 1.3 * lower


def test_a_steps_whole_chunks_come_from_different_videos():
    """Big videos are cut into many chunks; shuffled, a step's chunks span many videos (the
    geometric losses see G / K videos a step, not one video's run of chunks)."""
    groups = groups_of([64] * 16)
    owner = group_of(groups)
    steps = VideoGroupSampler(groups, 8, 64, 1, seed=4).steps(0)
    videos = [len({owner[s[0]] for s in step}) for step in steps]
    assert sum(videos) / len(videos) > 5  # of 8 chunks a step; unshuffled chunks would give 1
    assert all(len({owner[x] for x in seq}) == 1 for step in steps for seq in step)
