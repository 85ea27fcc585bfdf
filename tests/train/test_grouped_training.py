"""Training with data.group_by_video: a step over packed sequences has the loss parts and every
trainable parameter's gradient of the same questions as separate samples (K = 1, 2, 5; two
videos with padding in one micro-batch; sequences over two micro-batches); a grouped run trains,
reports questions and sequences, resumes exactly; the settings it cannot take are refused."""
import pytest
import torch

from geovr.data.qwen_inputs import collate
from geovr.train.config import ConfigError, validate
from geovr.train.loop import Trainer
from train_helpers import losses, small_config


@pytest.fixture(scope="module")
def trainer(synthetic_root, tmp_path_factory):
    cfg = small_config(synthetic_root, tmp_path_factory.mktemp("grouped") / "run", steps=1)
    cfg.optim.clip = 0.0  # the gradient as computed (clipping scales it by its norm)
    cfg.data.group_by_video = 8
    t = Trainer(cfg)
    t.optimizer.step = lambda: None  # the weights stay put: every case sees the same model
    return t


@pytest.fixture(scope="module")
def videos(trainer):
    by_video: dict[str, list[int]] = {}
    for i, r in enumerate(trainer.dataset.records):
        by_video.setdefault(r.media, []).append(i)
    return list(by_video.values())


def step(trainer, micro):
    """(the step's metrics record, every parameter's gradient) of `trainer.train_step(micro)`."""
    grads = {}

    def keep():
        grads.update({n: p.grad.detach().clone() for n, p in trainer.geo.named_parameters() if p.grad is not None})

    trainer.optimizer.step = keep
    record = trainer.train_step(micro)
    return record, grads


def assert_same_step(trainer, packed_micro, separate_micro):
    pad = trainer.tokenizer.pad_token_id
    got, g_p = step(trainer, [collate(b, pad) for b in packed_micro])
    want, g_s = step(trainer, [collate(b, pad) for b in separate_micro])
    for part in ("text", "pose", "depth", "align", "scale"):
        assert got[f"loss/{part}"] == pytest.approx(want[f"loss/{part}"], rel=1e-5), part
    assert g_p.keys() == g_s.keys() and len(g_s) > 50
    trainable = {n for n, p in trainer.geo.named_parameters() if p.requires_grad}
    assert trainable <= set(g_s)  # every trainable parameter got a gradient
    for name, g in g_s.items():
        scale = g.abs().max()
        assert (g_p[name] - g).abs().max() <= 1e-4 * scale + 1e-12, name
    return got, want


@pytest.mark.parametrize("k", [1, 2, 5])
def test_a_packed_step_equals_its_questions_as_separate_samples(trainer, videos, k):
    ds, idx = trainer.dataset, videos[0][:k]
    got, want = assert_same_step(trainer, [[ds[(tuple(idx), 0, 0)]]], [[ds[i] for i in idx]])
    assert got["data/qa_per_sequence"] == k and want["data/qa_per_sequence"] == 1
    assert got["samples_per_s"] / got["sequences_per_s"] == pytest.approx(k)


def test_two_videos_with_padding_weigh_their_questions(trainer, videos):
    """K = 2 and K = 4 in one micro-batch: the geometric means weigh 2 and 4 (a weight of 1 each
    would not match the six separate samples)."""
    ds = trainer.dataset
    a, b = videos[0][:2], videos[1][:4]
    assert_same_step(trainer, [[ds[(tuple(a), 0, 0)], ds[(tuple(b), 0, 1)]]], [[ds[i] for i in a + b]])


def test_packed_sequences_over_two_micro_batches(trainer, videos):
    ds = trainer.dataset
    a, b = videos[0][1:4], videos[1][:2]
    assert_same_step(trainer, [[ds[(tuple(a), 0, 0)]], [ds[(tuple(b), 0, 1)]]], [[ds[i] for i in a + b]])


def test_a_grouped_run_trains_reports_and_resumes_exactly(synthetic_root, tmp_path):
    cfg = small_config(synthetic_root, tmp_path / "run", steps=4, global_batch=4, micro_batch=1)
    cfg.data.group_by_video, cfg.checkpoint.every = 3, 2
    first = Trainer(cfg)
    assert first.total_steps == 4 and first.sampler.k == 3
    summary = first.train()
    assert summary["steps"] == 4 and summary["samples_seen"] == 16  # global_batch counts questions
    ref = losses(tmp_path / "run")
    assert all(ref[s]["data/qa_per_sequence"] > 1 for s in ref)
    assert {"sequences_per_s", "samples_per_s", "data/unshared"} <= set(ref[1])
    (tmp_path / "run" / "checkpoints" / "step_00000004" / "trainer_state.json").unlink()  # as if killed after 2
    cfg.checkpoint.resume = "auto"
    again = Trainer(cfg)
    assert again.step == 2
    again.train()
    resumed = losses(tmp_path / "run")
    for s in (3, 4):
        for key in ("loss/text", "loss/pose", "loss/depth", "loss/align", "loss/scale", "grad_norm"):
            assert resumed[s][key] == ref[s][key], (s, key)


def test_settings_grouping_cannot_take_are_refused(synthetic_root, tmp_path):
    cfg = small_config(synthetic_root, tmp_path / "run", global_batch=6)
    cfg.data.group_by_video = 4
    assert validate(cfg, world_size=3) == 0  # the sampler plans the micro-batches
    with pytest.raises(ConfigError, match="train.global_batch: 6 questions do not split over 4"):
        validate(cfg, world_size=4)
    cfg.data.group_by_length = 2
    with pytest.raises(ConfigError, match="data.group_by_length"):
        validate(cfg)
    cfg.data.group_by_length, cfg.parallel.tp = 0, 2
    with pytest.raises(ConfigError, match="data.group_by_video: packed sequences run on the ddp and fsdp"):
        validate(cfg, world_size=2)
    cfg.parallel.tp, cfg.model.attention = 1, "flash"
    with pytest.raises(ConfigError, match="model.attention"):
        validate(cfg)


def test_a_packed_step_with_activation_recompute_equals_one_without(trainer, videos, synthetic_root, tmp_path):
    """Recompute keeping the attention outputs (the paper preset's) under the packed mask: the same
    gradients as the trainer above, which keeps every activation."""
    cfg = small_config(synthetic_root, tmp_path / "recompute", steps=1)
    cfg.optim.clip, cfg.data.group_by_video = 0.0, 8
    cfg.model.gradient_checkpointing = True
    other = Trainer(cfg)
    ds, idx = trainer.dataset, videos[0][:3]
    pad = trainer.tokenizer.pad_token_id
    micro = [collate([ds[(tuple(idx), 0, 0)], ds[(tuple(videos[1][:2]), 0, 1)]], pad)]
    _, want = step(trainer, micro)
    _, got = step(other, micro)
    assert want.keys() == got.keys()
    for name, g in want.items():
        assert (got[name] - g).abs().max() <= 1e-5 * g.abs().max() + 1e-12, name


def test_a_packed_lora_step_equals_its_questions_as_separate_samples(synthetic_root, tmp_path, videos):
    """With LoRA (model.lora_rank; adapters given a non-zero update, dropout 0), a packed step's
    loss parts and every trained parameter's gradient (adapters, mergers, GeoVR parts) equal the
    separate samples'."""
    pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[lora]'")
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1)
    cfg.optim.clip = 0.0
    cfg.data.group_by_video = 8
    cfg.model.lora_rank, cfg.model.lora_dropout = 4, 0.0
    t = Trainer(cfg)
    with torch.no_grad():
        for name, p in t.geo.named_parameters():
            if ".lora_B." in name:
                p.copy_(0.05 * torch.randn_like(p))
    ds, idx = t.dataset, videos[0][:5]
    assert_same_step(t, [[ds[(tuple(idx), 0, 0)]]], [[ds[i] for i in idx]])
