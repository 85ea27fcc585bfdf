"""The cost model against a real run, and what each recipe costs where it should.

The fake-tensor step (`measure_step`) is checked against the same step executed for real on the
CPU at a small size: the FLOPs of every part are equal, and the peak memory is within 10 %. The LM
head's count is checked against its formula: 2 x rows x hidden x vocabulary, where rows are the
supervised positions in geovr's recipe and every position in the release's."""
import pytest

from geovr.plan import PARTS, Layout, StepSpec, layouts, measure_step, per_gpu

SMALL = dict(model="tiny", frames=4, teacher_longest=168, tokens_per_frame=64, autocast=False)


@pytest.fixture(scope="module")
def runs():
    out = {}
    for name, kw in (("geovr", {}), ("release", {"recipe": "release"}), ("cache", {"teacher": "cache"}),
                     ("lora", {"lora_rank": 4})):
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


def test_layouts_share_what_each_gpu_holds(runs):
    cost = runs["geovr"][0]
    ddp, zero2 = per_gpu(cost, Layout("ddp", 8)), per_gpu(cost, Layout("zero2", 8))
    assert ddp.total == cost.peak
    assert zero2.parts["optimizer"] == -(-cost.memory["optimizer"] // 8)
    assert zero2.parts["parameters"] == cost.memory["parameters"]
    assert zero2.total <= ddp.total and zero2.parts["activations"] >= cost.memory["activations"]
    p = cost.params
    llm = p["llm"] / (p["llm"] + p["vision"] + p["geovr_parts"])
    tp2pp2 = per_gpu(cost, Layout("megatron", 8, tp=2, pp=2))
    expected = cost.memory["parameters"] * (llm / 4 + 1 - llm)
    assert abs(tp2pp2.parts["parameters"] - expected) <= 1
    dist = per_gpu(cost, Layout("megatron", 8, tp=2, pp=2, distributed_optimizer=True))
    assert dist.parts["optimizer"] < tp2pp2.parts["optimizer"] and dist.parts["gradients"] == tp2pp2.parts["gradients"]
    sp = per_gpu(cost, Layout("megatron", 8, tp=2, pp=1, sequence_parallel=True))
    no_sp = per_gpu(cost, Layout("megatron", 8, tp=2, pp=1))
    assert sp.parts["activations"] < no_sp.parts["activations"] or cost.activations.get("llm", 0) == 0
    everything = p["llm"] + p["vision"] + p["geovr_parts"]
    frozen = (p["vision"] - p["vision_trainable"]) / everything
    root = p["llm"] - p["llm_layers"] + p["vision_trainable"] + p["geovr_parts"]
    gathered = 0.5 * (root + 2 * p["llm_layers"] / cost.llm_dims[2]) / everything
    fsdp = per_gpu(cost, Layout("fsdp", 8))
    whole = per_gpu(cost, Layout("fsdp", 8, accumulate_whole=True))
    assert 0 < frozen < 1 and 0 < p["llm_layers"] < p["llm"] and 0 < gathered < 0.5
    assert fsdp.parts["optimizer"] == zero2.parts["optimizer"]
    assert abs(fsdp.parts["parameters"] - cost.memory["parameters"] * (frozen + (1 - frozen) / 8 + gathered)) <= 1
    assert fsdp.total < zero2.total and whole.parts["gradients"] >= fsdp.parts["gradients"]
    assert fsdp.parts["activations"] >= cost.memory["activations"] and fsdp.parts["teacher"] == ddp.parts["teacher"]
    with pytest.raises(ValueError, match="layout"):
        Layout("zero3", 8)
    with pytest.raises(ValueError, match="tp and pp are megatron's"):
        Layout("fsdp", 8, tp=2)
    with pytest.raises(ValueError, match="tp=3"):
        Layout("megatron", 8, tp=3)


def _cost_with(timeline):
    from geovr.plan.cost import StepCost

    return StepCost(spec=StepSpec(model="tiny"), flops_forward={}, flops_backward={}, memory={}, activations={},
                    peak=0, logits_bytes=0, teacher_peak=0, params={}, sequence=0, supervised=0, timeline=timeline)


def test_a_layouts_peak_is_at_its_own_moment():
    """DDP peaks at the end of the backward (every gradient whole), ZeRO-2 at the end of the
    forward (gradients sharded, activations whole): each layout's peak is the most its shares
    sum to at any moment, not the shares of DDP's peak."""
    import torch

    from geovr.plan.memory import Timeline

    cats = ("parameters", "gradients", "optimizer", "teacher", "act:llm")
    rows = torch.tensor([[10, 0, 16, 2, 1],     # before the forward
                         [10, 0, 16, 2, 20],    # the end of the forward
                         [10, 20, 16, 2, 4]],   # the end of the backward
                        dtype=torch.float64)
    cost = _cost_with(Timeline(cats, rows))
    ddp, zero2 = per_gpu(cost, Layout("ddp", 8)), per_gpu(cost, Layout("zero2", 8))
    assert ddp.total == 52 and ddp.parts["gradients"] == 20 and ddp.parts["activations"] == 4
    assert zero2.total == 34 and zero2.parts == {"parameters": 10, "gradients": 0, "optimizer": 2,
                                                 "activations": 20, "teacher": 2}


def test_fewest_checkpointed_layers_that_fit():
    """Memory and FLOPs are linear in the decoder layers checkpointed: from the counts with all
    (28) and none checkpointed, the fewest that fit a budget, and the FLOPs then."""
    import dataclasses

    import torch

    from geovr.plan.__main__ import fewest_checkpointed
    from geovr.plan.memory import Timeline

    def cost(act_gb, tflop):
        c = _cost_with(Timeline(("parameters", "act:llm"), torch.tensor([[4e9, act_gb * 1e9]], dtype=torch.float64)))
        return dataclasses.replace(c, flops_forward={"llm": tflop * 1e12}, llm_dims=(16, 8, 28))

    full, none = cost(6, 100), cost(34, 72)  # 1 GB and 1 TFLOP a layer
    ddp = Layout("ddp", 8)
    assert fewest_checkpointed(full, none, ddp, 20e9) == (18, pytest.approx(90e12))
    assert fewest_checkpointed(full, none, ddp, 38e9) == (0, pytest.approx(72e12))
    assert fewest_checkpointed(full, none, ddp, 10.5e9) == (28, pytest.approx(100e12))
    assert fewest_checkpointed(full, none, ddp, 9e9) is None


def test_causal_attention_counts_the_kept_share(runs):
    from torch.utils.flop_counter import sdpa_flop_count

    from geovr.plan.parts import AttentionFormulas, causal_fraction

    assert causal_fraction(3, 3) == 6 / 9 and causal_fraction(2, 4) == 3 / 8 and causal_fraction(4, 2) == 7 / 8
    q = (1, 2, 9, 8)
    formulas = AttentionFormulas()
    assert formulas.forward(q, q, q) == formulas.forward(q, q, q, 0.0, False) == sdpa_flop_count(q, q, q)
    assert formulas.skipped == 0
    assert formulas.forward(q, q, q, 0.0, True) == sdpa_flop_count(q, q, q) * 45 // 81
    assert formulas.skipped == sdpa_flop_count(q, q, q) * 36 // 81
    for name in ("geovr", "release", "cache"):
        fake, real = runs[name]
        assert fake.causal_skipped == real.causal_skipped and min(fake.causal_skipped) > 0, name
        full, causal = fake.per_sample_flops("full"), fake.per_sample_flops()
        assert full["llm"] - causal["llm"] == pytest.approx(sum(fake.causal_skipped), rel=1e-12)
        assert all(full[k] == causal[k] for k in PARTS if k != "llm")
    with pytest.raises(ValueError, match="attention='half'"):
        runs["geovr"][0].per_sample_flops("half")


def test_lora_trains_and_stores_state_for_its_adapters_and_the_geovr_parts_only(runs):
    """`lora_rank`: the adapters, the vision mergers and the GeoVR parts are trained; the LLM's own
    weights only held. Gradients and AdamW state scale with what is trained."""
    full, lora = runs["geovr"][1], runs["lora"][1]
    p, q = full.params, lora.params
    assert q["adapters"] > 0 and p["adapters"] == 0 and q["geovr_parts"] == p["geovr_parts"]
    assert q["trainable"] == q["adapters"] + q["vision_trainable"] + q["geovr_parts"] < p["trainable"]
    assert q["llm"] == p["llm"] + q["adapters"]
    ratio = q["trainable"] / p["trainable"]
    # AdamW's two fp32 moments per trained number (and a step counter per tensor: the 1e-3)
    assert lora.memory["optimizer"] == pytest.approx(ratio * full.memory["optimizer"], rel=1e-3)
    assert lora.memory["optimizer"] == pytest.approx(8 * q["trainable"], rel=1e-3)
    assert lora.memory["parameters"] > full.memory["parameters"]  # the adapters on top of the held LLM
    with pytest.raises(ValueError, match="lora_rank"):
        StepSpec(recipe="release", lora_rank=8)


def test_layouts_are_the_ones_the_trainer_accepts():
    from geovr.train.config import paper, validate
    from geovr.train.config_io import apply_overrides

    found = layouts(8, heads=16, kv_heads=8, layers=28)  # Qwen3-VL-2B's LLM
    pairs = {(l.tp, l.pp) for l in found if l.name == "megatron"}
    assert (8, 1) in pairs and (2, 4) in pairs and not any(pp == 8 for _, pp in pairs)  # 28 layers: pp 8 cannot
    for layout in found:
        if layout.name == "zero2":
            continue
        cfg = apply_overrides(paper(), ["model.path=m", "data.path=x.jsonl", "teacher.vggt_weights=v",
                                        "teacher.metric_weights=m",
                                        *layout.overrides()])
        validate(cfg, world_size=8)  # raises ConfigError for a layout the trainer would refuse


def test_bad_specs_name_the_field():
    with pytest.raises(ValueError, match="model"):
        StepSpec(model="70b")
    with pytest.raises(ValueError, match="online"):
        StepSpec(recipe="release", teacher="cache")


def test_planner_prints_parts_and_layouts_and_asks_for_the_epoch():
    from geovr.plan.__main__ import _args, report

    text = report(_args(["--model", "tiny", "--frames", "4", "--gpus", "2", "--gpu-memory", "0.01"]))
    for word in ("FLOPs per sample", *PARTS, "ddp", "zero2", "fsdp x2", "fsdp x2 +whole-grad accum",
                 "What an epoch costs: add --data FILE"):
        assert word in text
    assert "GPU-hours" not in text  # no epoch without its videos
    assert "  no" in text and "yes" not in text  # nothing fits 10 MB
    text = report(_args(["--model", "tiny", "--frames", "4", "--gpus", "2", "--gpu-memory", "1"]))
    assert "every one of the 6 decoder layers checkpointed, keeping attention" in text
    assert "model.checkpoint_layers=0 (of 6) still fits" in text  # tiny: the teacher's peak dominates


def test_planner_counts_a_lora_run_on_the_layouts_that_run_it():
    from geovr.plan.__main__ import _args, report

    text = report(_args(["--model", "tiny", "--frames", "4", "--gpus", "2", "--gpu-memory", "1", "--lora-rank", "4",
                         "--no-recompute-search"]))
    assert "LoRA rank 4" in text and "megatron" not in text and "LoRA runs on DDP and FSDP only" in text
    lines = text.splitlines()
    command = lines[lines.index("Command (fill in the <...> placeholders):") + 1]
    assert "model.lora_rank=4" in command.split() and "parallel.backend=ddp" in command.split()
    # the printed command's run: tests/plan/test_plan_command.py


def test_gradient_checkpointing_shows_in_the_peak_at_2b_width():
    """The LLM's checkpointed activations are dropped after its forward (FLOPs and memory are
    counted in separate passes: the FLOP counter's module hooks would keep them alive)."""
    spec = dict(model="2b", layers=8, frames=16, teacher="cache")
    on = measure_step(StepSpec(**spec, gradient_checkpointing=True))
    off = measure_step(StepSpec(**spec, gradient_checkpointing=False))
    assert on.activations["llm"] < 0.3 * off.activations["llm"]
    assert on.memory["activations"] < 0.5 * off.memory["activations"]
    assert on.per_sample_flops()["llm"] > off.per_sample_flops()["llm"]  # the recompute


def test_fake_run_matches_a_real_run_at_2b_width():
    """Qwen3-VL-2B's widths (vision tower, 151,936-token vocabulary, 2048-wide LLM) with 4 LLM
    layers and a short video, run for real on the CPU (14 GB): the same FLOPs per part, the peak
    within 10 % (measured: equal to 1e-6)."""
    spec = StepSpec(model="2b", layers=4, frames=2, tokens_per_frame=16, teacher_longest=112, teacher="cache",
                    autocast=False)
    fake, real = measure_step(spec, fake=True), measure_step(spec, fake=False)
    assert fake.per_sample_flops() == real.per_sample_flops()
    assert abs(fake.peak - real.peak) <= 0.10 * real.peak
    assert fake.memory["parameters"] == real.memory["parameters"] > 3e9
