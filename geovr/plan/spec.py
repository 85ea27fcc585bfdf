"""What a cost count is of: `StepSpec` (model size, frames, micro-batch, recipe, teacher mode)."""
from __future__ import annotations

from dataclasses import dataclass

MODELS = ("tiny", "2b", "4b", "8b")
RECIPES = ("geovr", "release")
TEACHER_MODES = ("online", "cache")


@dataclass(frozen=True)
class StepSpec:
    """model: tiny | 2b | 4b | 8b; recipe: geovr | release; teacher: online | cache (the release is
    always online); layers: the LLM's decoder layers (None: the published count); autocast: bf16
    as on a GPU; gradient_checkpointing: as the paper preset; checkpoint_keep / checkpoint_layers:
    what a checkpointed decoder layer keeps and how many are checkpointed (`geovr.model.recompute`;
    keep None: the recipe's, "nothing" for the release, which recomputes whole layers, all of them,
    "attention" for geovr); qa_per_sequence: questions packed on one video prefix
    (`data.group_by_video`; geovr only), each micro-batch sample one packed sequence of them.
    lora_rank: 0, or LoRA adapters of that rank on the LLM (`model.lora_rank`, with the trainer's
    default alpha, dropout and targets; geovr only): the LLM's own weights frozen."""

    model: str = "2b"
    frames: int = 32
    micro_batch: int = 1
    recipe: str = "geovr"
    teacher: str = "online"
    tokens_per_frame: int = 300
    teacher_longest: int = 504
    layers: int | None = None
    autocast: bool = True
    gradient_checkpointing: bool = True
    checkpoint_keep: str | None = None
    checkpoint_layers: int | None = None
    qa_per_sequence: int = 1
    lora_rank: int = 0

    def __post_init__(self):
        for name, value, options in (("model", self.model, MODELS), ("recipe", self.recipe, RECIPES),
                                     ("teacher", self.teacher, TEACHER_MODES)):
            if value not in options:
                raise ValueError(f"{name} {value!r}: choose from {list(options)}")
        if self.recipe == "release" and self.teacher != "online":
            raise ValueError("the release recipe runs its teachers online every step: teacher='online'")
        if self.checkpoint_keep is None:
            object.__setattr__(self, "checkpoint_keep", "nothing" if self.recipe == "release" else "attention")
        if self.recipe == "release" and (self.checkpoint_keep != "nothing" or self.checkpoint_layers is not None):
            raise ValueError("the release recipe checkpoints every decoder layer whole: checkpoint_keep='nothing', "
                             "checkpoint_layers=None")
        if self.qa_per_sequence < 1 or (self.recipe == "release" and self.qa_per_sequence != 1):
            raise ValueError(f"qa_per_sequence {self.qa_per_sequence}: >= 1, and 1 for the release recipe (one question "
                             "a sample)")
        if self.lora_rank < 0 or (self.recipe == "release" and self.lora_rank):
            raise ValueError(f"lora_rank {self.lora_rank}: >= 0, and 0 for the release recipe (its LoRA freezes the "
                             "GeoVR parts too; geovr's recipe trains them in full)")
        if self.frames < 1 or self.micro_batch < 1:
            raise ValueError(f"frames and micro_batch must be >= 1, got {self.frames}, {self.micro_batch}")
