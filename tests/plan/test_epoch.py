"""What an epoch costs (`geovr.plan.epoch`): a packed sequence's counted FLOPs are affine in its
questions (so two counts give every K), the packed attention counts the pairs the segment rule
allows, the fake packed step counts what a real one does, the sequences come from the trainer's
sampler, and the planner's epoch table from annotations, counts or the modelled mix."""
import pytest
import torch

from geovr.data.packing import PADDING
from geovr.model.attention import allowed_pairs, segment_mask
from geovr.plan import PARTS, StepSpec, measure_step
from geovr.plan.epoch import (EpochData, cache_entry_bytes, count_steps, epoch_rows, from_annotations, geovr_mix,
                              grouped_batch, sequences_per_epoch)

SMALL = dict(model="tiny", frames=4, teacher_longest=168, tokens_per_frame=64, autocast=False, teacher="cache")


def test_allowed_pairs_is_the_masks_count():
    seg = torch.tensor([[0, 0, 0, 1, 1, 2, 3, 3, 3, PADDING], [0] * 7 + [PADDING] * 3])
    assert allowed_pairs(seg) == int(segment_mask(seg).sum())


def test_a_packed_steps_flops_are_affine_in_its_questions_and_fake_equals_real():
    costs = {k: measure_step(StepSpec(**SMALL, qa_per_sequence=k)) for k in (1, 3, 5)}
    real = measure_step(StepSpec(**SMALL, qa_per_sequence=3), fake=False)
    for part in PARTS:
        one, mid, top = (costs[k].per_sample_flops()[part] for k in (1, 3, 5))
        assert mid == pytest.approx((one + top) / 2, rel=1e-9, abs=1.0), part  # affine in K
        if part != "heads_losses":
            assert real.per_sample_flops()[part] == costs[3].per_sample_flops()[part], part
    assert costs[3].sequence == real.sequence and costs[3].supervised == 3 * costs[1].supervised
    # the segment rule's pairs, not the full (masked) matrix: a packed K=5 sequence's attention costs
    # less than five times the prefix's extra
    full = costs[5].per_sample_flops("full")["llm"] - costs[5].per_sample_flops()["llm"]
    assert full > 0 and sum(costs[5].causal_skipped) == pytest.approx(full)
    with pytest.raises(ValueError, match="qa_per_sequence"):
        StepSpec(recipe="release", qa_per_sequence=2)


def test_sequences_come_from_the_trainers_plan():
    data = EpochData([33, 1, 7, 16, 2, 9], "t")
    for k in (1, 4, 64):
        seqs, steps = sequences_per_epoch(data, k, 8, 1, 2)
        lower = sum(-(-n // k) for n in data.per_video)
        assert steps == -(-68 // 8) and lower <= seqs <= 72  # 68 questions, padded to 72
    assert sequences_per_epoch(data, 1, 8, 1, 2)[0] == 72
    # a rank packs at most its share of a step: K=32 on 8 GPUs needs 256 questions a step
    assert grouped_batch(4, 32, 8) == 32 and grouped_batch(32, 32, 8) == 256
    assert sequences_per_epoch(data, 64, 8, 1, 2)[0] >= 68 / 4

def test_the_modelled_mix_and_annotations(synthetic_root):
    mix = geovr_mix()
    assert mix.videos == 5963 and 579_000 <= mix.questions <= 579_200
    data = from_annotations(str(synthetic_root / "train.jsonl"))
    assert data.videos == 2 and data.questions == sum(data.per_video) >= 9
    assert cache_entry_bytes(32, (392, 504), 4, 1024) == pytest.approx(104e6, rel=0.02)  # the README's 25+13+66 MB


def test_epoch_rows_and_the_planners_table(synthetic_root, monkeypatch):
    import geovr.plan.__main__ as planner

    small = {k: v for k, v in SMALL.items() if k not in ("model", "frames", "teacher")}
    counts = count_steps("tiny", 4, 4, **small)
    data = EpochData([10] * 7, "t")
    rows = {r.label: r for r in epoch_rows(data, counts, [2, 4], 8, 1, 2)}
    one = rows["geovr, 1 question a sample, teachers online"]
    k4 = rows["geovr, grouped K=4, teachers online"]
    assert one.flops == pytest.approx(70 * counts.per_sequence("online", 1))
    assert k4.sequences < rows["geovr, grouped K=2, teachers online"].sequences < one.sequences == 70
    assert k4.flops < 0.6 * one.flops  # the prefix once per sequence
    assert k4.global_batch == 8 and rows["geovr, grouped K=2, teachers online"].global_batch == 8
    cached = rows["geovr, grouped K=4, teachers cache"]
    assert cached.fill_flops == pytest.approx(7 * counts.geovr[("online", 1)].per_sample_flops()["teacher"])
    monkeypatch.setattr(planner, "count_steps", lambda *a, **k: counts)  # the table from the counts above
    a = planner._args(["--model", "tiny", "--frames", "4", "--gpus", "2", "--data", str(synthetic_root / "train.jsonl"),
                       "--group-by-video", "4", "--global-batch", "4"])
    text = planner.epoch_report(a, planner.epoch_data(a))
    assert "Epoch of" in text and "grouped K=4, teachers cache" in text and "Peak per GPU" in text
    with pytest.raises(SystemExit, match="one of --data, --qa-per-video, --mix"):
        planner.epoch_data(planner._args(["--qa-per-video", "3", "--mix", "geovr"]))
