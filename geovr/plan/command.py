"""The training command the planner recommends: `torchrun ... -m geovr.train` with every setting the
plan counted (layout, micro-batch and accumulation, frames, recompute, cache, LoRA), and named
placeholders (`model.path=<Qwen3-VL-2B-Instruct-folder>`) for the paths only the user knows.

`layout_of` reads the layout back from a trainer config: a test parses the printed command, fills
the placeholders, and checks the trainer accepts it and runs the layout that was counted.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from .layouts import Layout
from .spec import StepSpec


@dataclass(frozen=True)
class Placeholder:
    """`token` stands in the command (no spaces, so the command splits as a shell would); `what`
    says what to put there."""

    token: str
    what: str


def placeholders(spec: StepSpec) -> dict[str, Placeholder]:
    """The paths a run of `spec` needs that the planner cannot know, by config field (the tiny
    preset's model, data and teacher are built in: it needs none but a cache)."""
    size = spec.model.upper()
    out = {}
    if spec.model != "tiny":
        out["model.path"] = Placeholder(f"<Qwen3-VL-{size}-Instruct-folder>", f"the local folder of "
                                        f"Qwen/Qwen3-VL-{size}-Instruct (config.json, *.safetensors)")
        out["data.path"] = Placeholder("<train.jsonl>", "the annotation file(s), comma-separated (data.format: "
                                                        "vsi590k, vlm3r or llava; data.media_root: the videos' folder)")
        out["teacher.vggt_weights"] = Placeholder("<VGGT-1B-checkpoint>", "the local VGGT-1B weights (model.pt or its "
                                                                          "folder)")
        out["teacher.metric_weights"] = Placeholder("<DA3-metric-folder>", "the local Depth-Anything-3 metric model "
                                                                           "folder (the scale loss's teacher)")
    if spec.teacher == "cache":
        out["teacher.cache"] = Placeholder("<target-cache-folder>", "the teacher-target cache; fill it first: python "
                                                                    "-m geovr.train --cache-targets with the same "
                                                                    "settings (one process)")
    return out


@dataclass
class TrainCommand:
    """argv after `torchrun --nproc_per_node G -m geovr.train`; `filled` holds the paths already
    known (--data given to the planner); `notes` explain the placeholders and derived values."""

    gpus: int
    argv: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        words = [w if "<" in w else shlex.quote(w) for w in self.argv]
        return " ".join([f"torchrun --nproc_per_node {self.gpus} -m geovr.train", *words])


def train_command(spec: StepSpec, layout: Layout, global_batch: int, checkpoint_layers: int | None = None,
                  data: str | None = None, data_format: str = "vsi590k", media_root: str | None = None) -> TrainCommand:
    """The command that trains `spec` under `layout` on layout.gpus GPUs, `global_batch` questions
    a step (rounded to a multiple of micro-batch x data-parallel ranks, with a note);
    checkpoint_layers: the recompute search's answer (None: the spec's own)."""
    from ..train.config import paper, tiny

    base = tiny() if spec.model == "tiny" else paper()
    holes = placeholders(spec)
    values: dict[str, str] = {name: p.token for name, p in holes.items()}
    notes = []
    if data is not None:
        values["data.path"] = data
        if data_format != base.data.format:
            values["data.format"] = data_format
        if media_root is not None:
            values["data.media_root"] = media_root
    per_step = spec.micro_batch * layout.dp
    batch = max(per_step, round(global_batch / per_step) * per_step)
    if batch != global_batch:
        notes.append(f"train.global_batch={batch}: the multiple of micro-batch {spec.micro_batch} x {layout.dp} "
                     f"data-parallel ranks nearest --global-batch {global_batch}")
    values["train.micro_batch"] = str(spec.micro_batch)
    values["train.global_batch"] = str(batch)
    notes.append(f"{batch // per_step} micro-batch(es) accumulated a step: {spec.micro_batch} sample(s) x "
                 f"{layout.dp} data-parallel ranks x {batch // per_step} = {batch} questions")
    values["data.max_frames"] = str(spec.frames)
    if spec.frames < base.data.min_frames:
        values["data.min_frames"] = str(spec.frames)
    if spec.recipe == "release":
        values["model.text_logits"] = "all"
    layers = spec.checkpoint_layers if checkpoint_layers is None else checkpoint_layers
    recompute = spec.gradient_checkpointing and layers != 0  # 0 layers checkpointed: none
    if recompute != base.model.gradient_checkpointing:
        values["model.gradient_checkpointing"] = str(recompute).lower()
    if recompute and spec.checkpoint_keep != base.model.checkpoint_keep:
        values["model.checkpoint_keep"] = spec.checkpoint_keep
    if recompute and layers is not None:
        if layout.name == "megatron":
            raise ValueError("the megatron backend recomputes every layer or none: no checkpoint_layers")
        values["model.checkpoint_layers"] = str(layers)
    if spec.lora_rank:
        values["model.lora_rank"] = str(spec.lora_rank)
    argv = ["--preset", "tiny" if spec.model == "tiny" else "paper"]
    argv += [f"{k}={v}" for k, v in values.items()] + layout.overrides()
    notes += [f"{p.token}: {p.what}" for name, p in holes.items() if values[name] == p.token]
    return TrainCommand(layout.gpus, argv, notes)


def layout_of(cfg, gpus: int) -> Layout:
    """The layout a trainer config (`geovr.train.config.Config`) runs on `gpus` GPUs."""
    p = cfg.parallel
    if p.megatron:
        return Layout("megatron", gpus, p.tp, p.pp, distributed_optimizer=p.distributed_optimizer,
                      sequence_parallel=p.sequence_parallel)
    if p.fsdp:
        return Layout("fsdp", gpus, accumulate_whole=not p.fsdp_sync_each_micro_batch)
    return Layout("ddp", gpus)
