"""The planner's command runs as printed once its placeholders are filled: the trainer's own
parser accepts it, its paths check, and it runs the layout, batch, frames, recompute, cache and
LoRA that were counted (`geovr.plan.command`)."""
import shlex

import pytest

from geovr.plan.command import layout_of, placeholders, train_command
from geovr.plan.layouts import Layout
from geovr.plan.spec import StepSpec
from geovr.train import build
from geovr.train.config import validate
from geovr.train.main import parse_config


@pytest.fixture
def paths(tmp_path, synthetic_root):
    """A real file or folder for every placeholder the planner can print."""
    model = tmp_path / "Qwen3-VL-2B-Instruct"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (tmp_path / "vggt.pt").write_bytes(b"0")
    (tmp_path / "da3").mkdir()
    return {"model.path": model, "data.path": synthetic_root / "train.jsonl",
            "teacher.vggt_weights": tmp_path / "vggt.pt", "teacher.metric_weights": tmp_path / "da3",
            "teacher.cache": tmp_path / "cache"}


def run_printed(text: str, spec: StepSpec, paths: dict) -> tuple:
    """The printed command's config (placeholders filled as a user would), checked as the trainer
    checks it: (config, gradient-accumulation steps, GPUs)."""
    words = shlex.split(text)
    assert words[:2] == ["torchrun", "--nproc_per_node"] and words[3:5] == ["-m", "geovr.train"]
    gpus, argv = int(words[2]), words[5:]
    tokens = {p.token: paths[name] for name, p in placeholders(spec).items()}
    filled = []
    for word in argv:
        key, _, value = word.partition("=")
        if "<" in value:
            assert value in tokens, f"{value} is not a named placeholder"
            value = str(tokens[value])
        filled.append(f"{key}={value}" if _ else word)
    assert not any("<" in w for w in filled)
    cfg, _ = parse_config(filled)
    accum = validate(cfg, world_size=gpus)
    build.check_paths(cfg)
    return cfg, accum, gpus


CASES = [
    (StepSpec(model="2b"), Layout("ddp", 8), None),
    (StepSpec(model="2b", teacher="cache"), Layout("ddp", 8), 12),
    (StepSpec(model="8b", teacher="cache", micro_batch=2), Layout("fsdp", 8, accumulate_whole=True), None),
    (StepSpec(model="8b", lora_rank=64), Layout("fsdp", 8), 31),
    (StepSpec(model="8b", frames=64), Layout("megatron", 8, 2, 2, distributed_optimizer=True, sequence_parallel=True),
     None),
    (StepSpec(model="2b", recipe="release"), Layout("megatron", 8, 8, 1, sequence_parallel=True), None),
    (StepSpec(model="2b", frames=2, checkpoint_layers=4, checkpoint_keep="nothing"), Layout("ddp", 6), None),
    (StepSpec(model="tiny", teacher="cache", lora_rank=4), Layout("ddp", 2), 0),
]


@pytest.mark.parametrize("spec, layout, fewer", CASES)
def test_the_printed_command_runs_the_counted_layout(spec, layout, fewer, paths):
    command = train_command(spec, layout, global_batch=32, checkpoint_layers=fewer)
    cfg, accum, gpus = run_printed(command.text, spec, paths)
    assert gpus == layout.gpus and layout_of(cfg, gpus) == layout
    assert cfg.train.micro_batch == spec.micro_batch
    assert accum * spec.micro_batch * layout.dp == cfg.train.global_batch
    assert cfg.train.global_batch == 32 or any("nearest --global-batch 32" in n for n in command.notes)
    assert cfg.data.max_frames == spec.frames and cfg.data.min_frames <= spec.frames
    assert cfg.model.lora_rank == spec.lora_rank
    assert (cfg.teacher.cache is not None) == (spec.teacher == "cache")
    assert cfg.model.text_logits == ("all" if spec.recipe == "release" else "supervised")
    layers = spec.checkpoint_layers if fewer is None else fewer
    assert cfg.model.gradient_checkpointing == (layers != 0)
    if cfg.model.gradient_checkpointing:
        assert cfg.model.checkpoint_layers == layers and cfg.model.checkpoint_keep == spec.checkpoint_keep
    assert cfg.model.is_tiny == (spec.model == "tiny")
    for p in placeholders(spec).values():  # each placeholder is explained under the command
        assert any(note.startswith(p.token + ": ") for note in command.notes)


def test_known_paths_are_filled_in(paths, tmp_path):
    spec = StepSpec(model="2b")
    command = train_command(spec, Layout("ddp", 8), global_batch=32, data=str(paths["data.path"]), data_format="vlm3r",
                            media_root=str(tmp_path))
    assert f"data.path={paths['data.path']}" in command.text and "<train.jsonl>" not in command.text
    assert "data.format=vlm3r" in command.text and f"data.media_root={tmp_path}" in command.text
    assert not any(note.startswith("<train.jsonl>") for note in command.notes)


def test_the_planner_prints_a_command_that_runs(paths):
    from geovr.plan.__main__ import _args, report

    argv = ["--model", "tiny", "--frames", "4", "--gpus", "2", "--gpu-memory", "1", "--teacher", "cache",
            "--lora-rank", "4", "--global-batch", "6"]
    text = report(_args(argv))
    lines = text.splitlines()
    command = lines[lines.index("Command (fill in the <...> placeholders):") + 1].strip()
    cfg, accum, gpus = run_printed(command, StepSpec(model="tiny", frames=4, teacher="cache", lora_rank=4), paths)
    assert layout_of(cfg, gpus).label in next(line for line in lines if line.startswith("Fits in"))
    assert "model.checkpoint_layers=0 (of 6) still fits" in text and not cfg.model.gradient_checkpointing
    assert (cfg.train.global_batch, accum, cfg.model.lora_rank) == (6, 3, 4)
    assert cfg.teacher.cache == str(paths["teacher.cache"])
