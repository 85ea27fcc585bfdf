"""The cost model against a real run, and what each recipe costs where it should.

The fake-tensor step (`measure_step`) is checked against the same step executed for real on the
CPU at a small size: the FLOPs of every part are equal, and the peak memory is within 10 %. The LM
head's count is checked against its formula: 2 x rows x hidden x vocabulary, where rows are the
supervised positions in geovr's recipe and every position in the release's."""
import pytest

from geovr.plan import PARTS, StepSpec, measure_step, per_gpu

SMALL = dict(model="tiny", frames=4, teacher_longest=168, tokens_per_frame=64, autocast=False)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for name, kw in (("geovr", {}), ("release", {"recipe": "release"}), ("cache", {"teacher": "cache"})):
        spec = StepSpec(**SMALL, **kw)
        out[name] = (measure_step(spec, fake=True), measure_step(spec, fake=False))
    return out


def test_fake_run_counts_what_a_real_run_does(runs):
    for name, (fake, real) in runs.items():
        for part in PARTS:
            if part == "heads_losses":  # the losses' data-dependent branches take ShapeMode's stand-ins
                assert fake.per_sample_flops()[part] == pytest.approx(real.per_sample_flops()[part], rel=0.05), name
            else:
                assert fake.per_sample_flops()[part] == real.per_sample_flops()[part], (name, part)
        assert abs(fake.peak - real.peak) <= 0.10 * real.peak, (name, fake.peak, real.peak)
        for kind in ("parameters", "optimizer", "teacher"):
            assert fake.memory[kind] == real.memory[kind], (name, kind)
        assert sum(fake.memory.values()) == fake.peak
        assert fake.sequence == real.sequence and fake.supervised == real.supervised > 0


def test_lm_head_runs_on_supervised_rows_only_in_geovr(runs):
    geovr, release = runs["geovr"][1], runs["release"][1]
    hidden, vocab = 64, 1024  # the tiny model: tiny_hidden, the tiny tokenizer's vocabulary
    assert geovr.flops_forward["lm_head"] == 2 * geovr.supervised * hidden * vocab
    assert release.flops_forward["lm_head"] == 2 * release.sequence * hidden * vocab
    assert geovr.logits_bytes == geovr.supervised * vocab * 4  # fp32: no autocast here
    assert release.logits_bytes == release.sequence * vocab * 4


def test_teacher_costs_only_online(runs):
    online, cache = runs["geovr"][0], runs["cache"][0]
    assert online.per_sample_flops()["teacher"] > 0 and online.memory["teacher"] > 0
    assert cache.per_sample_flops()["teacher"] == 0 and cache.memory["teacher"] == 0
    assert 0 < cache.teacher_peak < online.teacher_peak  # the targets read from the cache, vs running VGGT
    for part in ("vision", "llm", "lm_head"):
        assert cache.per_sample_flops()[part] == online.per_sample_flops()[part]


def test_zero2_splits_gradients_and_optimizer_state(runs):
    cost = runs["geovr"][0]
    ddp, zero2 = per_gpu(cost, "ddp", 8), per_gpu(cost, "zero2", 8)
    assert ddp.total == cost.peak
    assert zero2.parts["optimizer"] == -(-cost.memory["optimizer"] // 8)
    assert zero2.parts["activations"] == cost.memory["activations"]
    with pytest.raises(ValueError, match="layout"):
        per_gpu(cost, "fsdp", 8)


def test_bad_specs_name_the_field():
    with pytest.raises(ValueError, match="model"):
        StepSpec(model="70b")
    with pytest.raises(ValueError, match="online"):
        StepSpec(recipe="release", teacher="cache")


def test_planner_prints_parts_layouts_and_gpu_hours():
    from geovr.plan.__main__ import _args, report

    text = report(_args(["--model", "tiny", "--frames", "4", "--gpus", "2", "--gpu-memory", "0.01"]))
    for word in ("FLOPs per sample", *PARTS, "ddp", "zero2", "GPU-hours"):
        assert word in text
    assert "  no" in text and "yes" not in text  # nothing fits 10 MB
