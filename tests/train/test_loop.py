"""The training loop in-process: the loss parts fall, a diverging run skips its NaN steps and stops
with a clear message, checkpoints are complete or invisible, groups and schedule as configured."""
import json
import re

import pytest
import torch

from geovr.train.checkpoint import Checkpointer
from geovr.train.loop import TooManyBadSteps, Trainer
from geovr.train.optim import lr_factor
from geovr.train.config import OptimConfig
from train_helpers import losses, small_config


def test_loss_parts_fall(synthetic_root, tmp_path):
    cfg = small_config(synthetic_root, tmp_path / "run", steps=24)
    cfg.checkpoint.every, cfg.checkpoint.export = 12, True
    cfg.metrics.tensorboard = True
    trainer = Trainer(cfg)
    summary = trainer.train()
    for part in ("text", "pose", "depth", "align", "scale"):
        assert summary[f"loss/{part} last"] < 0.9 * summary[f"loss/{part} first"], part
    assert summary["steps"] == 24 and summary["bad_steps"] == 0 and summary["stopped"] == "done"
    recs = losses(tmp_path / "run")
    assert sorted(recs) == list(range(1, 25))
    first = recs[1]
    for key in ("loss", "lr/llm", "lr/new", "grad_norm", "samples_per_s", "tokens_per_s", "peak_memory_gb",
                "teacher_s", "data/skipped", "data/padding"):
        assert key in first, key
    # groups: the new parts at 2x the LLM's rate (tiny preset), warmup then cosine
    assert recs[5]["lr/new"] == pytest.approx(2 * recs[5]["lr/llm"])
    assert recs[24]["lr/llm"] < recs[12]["lr/llm"]
    # TensorBoard event files, the kept checkpoints, the exported model
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
    names = [p.name for p in Checkpointer(tmp_path / "run" / "checkpoints", trainer.world).complete()]
    assert names == ["step_00000012", "step_00000024"]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_00000024" / "trainer_state.json").read_text())
    assert state["step"] == 24 and state["samples_seen"] == 96
    assert (tmp_path / "run" / "final" / "geovr.safetensors").is_file()
    assert (tmp_path / "run" / "loss_curves.png").stat().st_size > 10_000  # matplotlib: a dev extra
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["steps"] == 24
    from geovr.train.loop import _ignore_sigint

    assert trainer.loader.worker_init_fn is _ignore_sigint
    # the frozen ViT did not move; the merger did
    vit = [n for n, p in trainer.geo.named_parameters() if n.startswith("base.model.visual.blocks")]
    assert vit and all(not dict(trainer.geo.named_parameters())[n].requires_grad for n in vit)


def test_diverging_run_skips_nan_steps_then_stops(synthetic_root, tmp_path):
    cfg = small_config(synthetic_root, tmp_path / "run", steps=20, max_bad_steps=3)
    cfg.optim.lr, cfg.optim.lr_new, cfg.optim.warmup_ratio, cfg.optim.clip = 1e30, 1e30, 0.0, 0.0
    trainer = Trainer(cfg)
    with pytest.raises(TooManyBadSteps, match="3 steps in a row had a NaN/inf"):
        trainer.train()
    recs = losses(tmp_path / "run")
    assert recs[1]["skipped_step"] == 0  # the first step is finite and blows the weights up
    bad = [s for s, r in recs.items() if r["skipped_step"]]
    assert bad == [2, 3] and trainer.bad_steps == 3  # the 3rd raises before it is logged
    params = {n: p.detach().clone() for n, p in trainer.geo.named_parameters()}
    batches = trainer._micro_batches()
    with pytest.raises(TooManyBadSteps):  # one more bad step: skipped, the weights stay as they were
        trainer.train_step([next(batches) for _ in range(trainer.accum)])
    assert trainer.bad_steps == 4
    assert all(torch.equal(p, params[n]) for n, p in trainer.geo.named_parameters())


def test_incomplete_checkpoints_are_invisible(tmp_path):
    from geovr.parallel.data_parallel import World

    ck = Checkpointer(tmp_path, World(0, 1, 0, torch.device("cpu")), keep=2)
    (tmp_path / ".step_00000009.tmp").mkdir()
    (tmp_path / "step_00000008").mkdir()  # no trainer_state.json: killed mid-rename cannot produce this, still ignored
    assert ck.latest() is None and ck.resolve("auto") is None
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        ck.resolve(str(tmp_path / "step_00000008"))


def test_schedule():
    cfg = OptimConfig(warmup_ratio=0.1)
    f = [lr_factor(s, 100, cfg) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[55] == pytest.approx(0.5, abs=0.02) and f[99] < 0.001
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    assert lr_factor(50, 100, OptimConfig(schedule="constant", warmup_ratio=0.0)) == 1.0


def test_training_reads_the_teacher_cache(synthetic_root, tmp_path, capsys):
    from geovr.train.main import main as train_main
    from train_helpers import overrides

    cfg = small_config(synthetic_root, tmp_path / "run", steps=2)
    cfg.teacher.cache = str(tmp_path / "cache")
    with pytest.raises(Exception, match="teacher.cache: set the cache folder"):
        from geovr.train.cache_targets import cache_arguments

        cache_arguments(small_config(synthetic_root, tmp_path / "x"))
    assert train_main(["--cache-targets", *overrides(cfg)]) == 0  # the run's own config: keys match
    assert f"teacher cache {cfg.teacher.cache}: records" in capsys.readouterr().out
    trainer = Trainer(cfg)
    summary = trainer.train()
    # the teacher runs (here: the cache is read) once per distinct video of a step
    order, g, recs = trainer.sampler.order(0), cfg.train.global_batch, trainer.dataset.records
    distinct = sum(len({recs[i].media for i in order[s * g:(s + 1) * g]}) for s in range(2))
    assert 2 <= distinct < 2 * g
    assert summary["teacher_cache_hits"] == distinct and summary["teacher_cache_misses"] == 0
    # the cached targets train exactly as the online teacher does (fp16 features aside)
    online = Trainer(small_config(synthetic_root, tmp_path / "online", steps=2)).train()
    assert summary["loss first"] == pytest.approx(online["loss first"], rel=1e-3)
    # a LoRA run reads the same cache; its adapters start as a zero update, so its first step is this run's
    try:
        import peft  # noqa: F401
    except ImportError:
        return
    lora = small_config(synthetic_root, tmp_path / "lora", steps=2)
    lora.teacher.cache, lora.model.lora_rank = cfg.teacher.cache, 4
    adapted = Trainer(lora).train()
    assert adapted["teacher_cache_hits"] == distinct and adapted["teacher_cache_misses"] == 0
    assert adapted["loss first"] == pytest.approx(summary["loss first"], rel=1e-6)


def two_runs_of_two_steps(synthetic_root, tmp_path, lora: int, field: str, value) -> tuple[dict, dict]:
    """The per-step metrics of the small job (LoRA rank `lora`, 0: off) as it is, and with
    model.`field` = `value`."""
    if lora:
        pytest.importorskip("peft", reason="LoRA needs the optional extra: pip install -e '.[lora]'")
    runs = []
    for name, changed in (("a", False), ("b", True)):
        cfg = small_config(synthetic_root, tmp_path / name, steps=2)
        cfg.model.lora_rank = lora
        if changed:
            setattr(cfg.model, field, value)
        Trainer(cfg).train()
        runs.append(losses(tmp_path / name))
    return runs[0], runs[1]


@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_gradient_checkpointing_gives_the_same_step(synthetic_root, tmp_path, lora):
    """Recompute gives the same losses and gradient norm; with LoRA too (frozen embeddings, adapters)."""
    a, b = two_runs_of_two_steps(synthetic_root, tmp_path, lora, "gradient_checkpointing", True)
    for step in (1, 2):
        for key in ("loss/text", "loss/depth", "loss/align", "grad_norm"):
            assert b[step][key] == pytest.approx(a[step][key], rel=1e-5), (step, key)


@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_bf16_autocast_steps_are_close_to_fp32(synthetic_root, tmp_path, lora):
    """Two steps (the second after an update: of the adapters too, with LoRA) under bf16 autocast."""
    a, b = two_runs_of_two_steps(synthetic_root, tmp_path, lora, "dtype", "bf16")
    for step in (1, 2):
        for key in ("loss/text", "loss/depth", "loss/align", "loss/pose"):
            assert b[step][key] == pytest.approx(a[step][key], rel=3e-2), (step, key)


def test_corrupt_video_and_bad_record_are_skipped_and_counted(synthetic_root, tmp_path):
    """Bad items are dropped, counted once each, never replaced by a repeat; micro-batches whose
    every item was dropped are passed over (the rank reads on), so each step still has its
    micro-batches and the loss normalisers count only the samples there."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(synthetic_root, data)
    lines = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    bad_video = lines[0]["video"]
    n_bad = sum(r["video"] == bad_video for r in lines)
    assert len(lines) == 9 and [r["video"] == bad_video for r in lines] == [True] * n_bad + [False] * (9 - n_bad)
    assert n_bad == 5
    video = data / bad_video
    video.write_bytes(video.read_bytes()[: 2000])  # truncated mid-stream: every record on it is bad
    with open(data / "train.jsonl", "a") as f:
        f.write('{"id": "broken", "video": "videos/none.mp4", "conversations": "oops"}\n')  # bad turns
    cfg = small_config(data, tmp_path / "run", steps=2)
    cfg.data.shuffle = False
    summary = Trainer(cfg).train()
    # an epoch: items 0..7 (drop_last) in micro-batches [0 1] [2 3] [4 5] [6 7]; 0..4 are bad, so
    # the first two are passed over and each step trains on [4 5] (one sample) and [6 7] (two)
    assert summary["steps"] == 2 and summary["bad_steps"] == 0
    recs = losses(tmp_path / "run")
    assert recs[1]["data/skipped"] == 1 + n_bad and recs[2]["data/skipped"] == 1 + 2 * n_bad
    assert summary["data/skipped"] == 1 + 2 * n_bad and summary.get("data/skipped/invalid_record") == 1
    assert sum(v for k, v in summary.items() if k.startswith("data/skipped/")) == 1 + 2 * n_bad  # by kind
    assert summary["samples_seen"] == 2 * 3


def test_group_by_length_probes_the_videos_and_reports_padding(synthetic_root, tmp_path):
    cfg = small_config(synthetic_root, tmp_path / "run", steps=2)
    cfg.data.group_by_length = 2
    trainer = Trainer(cfg)
    counts = trainer.dataset.frame_counts()
    assert trainer.sampler.lengths == counts and min(counts) > 0
    assert trainer.sampler.window == 2 * cfg.train.micro_batch
    trainer.train()
    recs = losses(tmp_path / "run")
    assert all(0.0 <= r["data/padding"] < 1.0 for r in recs.values())



def test_a_second_ctrl_c_aborts_but_the_launchers_copy_does_not(monkeypatch, capsys, tmp_path):
    import signal

    from geovr.parallel.data_parallel import World
    from geovr.train import loop, main

    trainer = Trainer.__new__(Trainer)
    trainer._stop_signal, trainer._sigint_at, trainer._metrics, trainer.step = None, 0.0, None, 0
    trainer.world = World(0, 1, 0, torch.device("cpu"))
    now = [100.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: now[0])
    trainer._on_signal(signal.SIGINT, None)
    assert trainer._stop_signal == signal.SIGINT
    now[0] += 0.2
    trainer._on_signal(signal.SIGINT, None)  # torchrun forwarding the same Ctrl-C
    now[0] += 2.0
    with pytest.raises(KeyboardInterrupt):
        trainer._on_signal(signal.SIGINT, None)

    class Aborted:  # the trainer as a second Ctrl-C leaves it
        world = trainer.world
        checkpointer = Checkpointer(tmp_path, trainer.world)

        def __init__(self, cfg):
            pass

        def train(self):
            raise KeyboardInterrupt

        def close(self):
            pass

    monkeypatch.setattr(loop, "Trainer", Aborted)
    assert main.main([f"train.output={tmp_path}"]) == 130
    assert "aborted: nothing saved since the start" in capsys.readouterr().err


def test_summary_table_names_the_outputs(tmp_path):
    from geovr.train.report import summary_table

    (tmp_path / "final").mkdir()
    (tmp_path / "metrics.jsonl").write_text("")
    text = summary_table({"stopped": "done", "steps": 12, "bad_steps": 1, "samples_seen": 48, "tokens_seen": 12345,
                          "wall_s": 75.0, "loss first": 3.0, "loss last": 1.5, "loss/depth first": 0.7,
                          "loss/depth last": 0.5, "data/skipped": 2.0}, tmp_path)
    assert text.splitlines()[0] == "run done: 12 steps (1 skipped as NaN/inf), 48 samples, 12,345 tokens, 1m15s"
    assert "  total           3.0000    1.5000" in text and "  depth           0.7000    0.5000" in text
    assert "2 bad data items skipped" in text
    assert f"python -m geovr.export --ckpt {tmp_path / 'final'} --out DIR" in text and "metrics.jsonl" in text
    assert "tensorboard" not in text and "checkpoints/" not in text  # only what exists


# Ctrl-C reaches a loader's worker, then the loader is read on: with the trainer's worker_init_fn and
# without. In a process of its own: a worker that Ctrl-C interrupts while it holds a lock of the
# loader's queues lives on, stuck, and hangs whoever shuts that loader down (os._exit skips it).
READ_AFTER_CTRL_C = """
import os, signal, time
from torch.utils.data import DataLoader
from geovr.train.loop import _ignore_sigint
for init, timeout in ((_ignore_sigint, 0), (None, 10)):
    it = iter(DataLoader(range(40), batch_size=1, num_workers=1, prefetch_factor=1, worker_init_fn=init,
                         timeout=timeout))
    next(it)
    os.kill(it._workers[0].pid, signal.SIGINT)
    time.sleep(0.5)
    try:
        print("read", len(list(it)), flush=True)
    except RuntimeError as err:
        print(str(err).splitlines()[0], flush=True)
os._exit(0)
"""


def test_dataloader_workers_leave_ctrl_c_to_the_trainer():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", READ_AFTER_CTRL_C], capture_output=True, text=True,
                         timeout=120, check=True).stdout.splitlines()
    assert out[0] == "read 39"
    # what a terminal's Ctrl-C did to the workers without it: "DataLoader worker (pid(s) ...) exited
    # unexpectedly", or a worker stuck for good ("DataLoader timed out after 10 seconds")
    assert re.match(r"DataLoader (worker|timed out)", out[1]), out


def test_a_stuck_loader_worker_stops_the_run_with_one_error(synthetic_root, tmp_path, monkeypatch, capsys):
    """A worker that never returns a batch (a hung file-system read, a decoder deadlock) never dies
    either: after data.worker_timeout_s the rank exits with status 1 and one error naming the
    setting, the step and the checkpoint to resume from, instead of waiting for good."""
    import time

    from geovr.data.dataset import VideoQADataset
    from geovr.train.main import main as train_main
    from train_helpers import overrides

    cfg = small_config(synthetic_root, tmp_path / "run", steps=4, global_batch=2, micro_batch=1)
    cfg.data.workers, cfg.data.worker_timeout_s, cfg.checkpoint.every = 1, 8, 1  # 8 s: ample for a real item
    real, calls = VideoQADataset.__getitem__, []

    def stuck_after_four(self, key):  # in the forked worker: its own count
        calls.append(key)
        if len(calls) > 4:
            time.sleep(120)
        return real(self, key)

    monkeypatch.setattr(VideoQADataset, "__getitem__", stuck_after_four)
    assert train_main(overrides(cfg)) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    latest = tmp_path / "run" / "checkpoints" / "step_00000002"
    assert errors == [f"error: data.worker_timeout_s: no micro-batch came from the 1 DataLoader worker in 8 s, at "
                      f"step 2 (a worker is stuck: a hung file-system read or a decoder deadlock); the run stops "
                      f"here. Its last checkpoint: {latest}; continue with --resume auto (torchrun --max-restarts "
                      f"does it), or raise data.worker_timeout_s (0 waits for ever)"]


def test_plain_fine_tuning_builds_no_teacher_and_learns_every_turn(synthetic_root, tmp_path):
    """model.geovr=off: no teacher is built (a VGGT teacher without weights is fine), the step runs
    no targets; scenes.jsonl's conversations train on every answer of the scene."""
    cfg = small_config(synthetic_root, tmp_path / "run", steps=2, global_batch=2)
    cfg.model.geovr, cfg.teacher.name = "off", "vggt"
    cfg.data.path = str(synthetic_root / "scenes.jsonl")
    trainer = Trainer(cfg)
    assert trainer.teacher is None
    batch = next(iter(trainer.loader))
    singles = [json.loads(x) for x in (synthetic_root / "train.jsonl").read_text().splitlines()]
    per_scene = {s: sum(r["scene"] == s for r in singles) for s in batch["ids"]}
    # every answer ends in one end-of-turn label: as many as the scene has questions
    end = trainer.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert [int((row == end).sum()) for row in batch["labels"]] == [per_scene[s] for s in batch["ids"]]
    summary = trainer.train()
    assert summary["steps"] == 2 and summary["bad_steps"] == 0
    assert set(k for k in losses(tmp_path / "run")[2] if k.startswith("loss/")) == {"loss/text"}


@pytest.mark.parametrize("alone", ["pose", "depth", "align", "scale"])
def test_each_geometric_loss_alone_trains(synthetic_root, tmp_path, alone):
    """The ablation's runs (geovr.eval.replicate --ablation): one geometric weight on, the others 0
    (their heads not built). A camera-only or scale-only model has no grid taps and no dense heads."""
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1, global_batch=2)
    for loss in ("pose", "depth", "align", "scale"):
        if loss != alone:
            setattr(cfg.loss, loss, 0.0)
    summary = Trainer(cfg).train()
    assert summary["steps"] == 1 and summary["bad_steps"] == 0
    logged = losses(tmp_path / "run")[1]
    assert set(k for k in logged if k.startswith("loss/")) == {"loss/text", f"loss/{alone}"}
    assert logged[f"loss/{alone}"] > 0
