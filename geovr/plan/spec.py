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
    as on a GPU; gradient_checkpointing: as the paper preset."""

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

    def __post_init__(self):
        for name, value, options in (("model", self.model, MODELS), ("recipe", self.recipe, RECIPES),
                                     ("teacher", self.teacher, TEACHER_MODES)):
            if value not in options:
                raise ValueError(f"{name} {value!r}: choose from {list(options)}")
        if self.recipe == "release" and self.teacher != "online":
            raise ValueError("the release recipe runs its teachers online every step: teacher='online'")
        if self.frames < 1 or self.micro_batch < 1:
            raise ValueError(f"frames and micro_batch must be >= 1, got {self.frames}, {self.micro_batch}")
