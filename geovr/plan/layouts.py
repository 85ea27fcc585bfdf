"""Per-GPU memory of a measured step under a data-parallel layout.

The step is measured whole on one device (`measure_step`); a layout then says which of the measured
kinds each GPU holds: "ddp" (the trainer's torch DDP) keeps everything on every GPU; "zero2" (the
release's DeepSpeed ZeRO-2) splits gradients and optimizer state over the data-parallel ranks.
Megatron TP/PP and FSDP layouts are not modelled yet.
"""
from __future__ import annotations

from dataclasses import dataclass

from .cost import StepCost

LAYOUTS = ("ddp", "zero2")


@dataclass(frozen=True)
class LayoutMemory:
    """bytes per GPU, by kind (parameters, gradients, optimizer, activations, teacher weights) and total."""

    layout: str
    gpus: int
    parts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def per_gpu(cost: StepCost, layout: str, gpus: int) -> LayoutMemory:
    """The per-GPU share of `cost`'s peak under `layout` on `gpus` data-parallel ranks."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r}: choose from {list(LAYOUTS)}")
    if gpus < 1:
        raise ValueError(f"gpus must be >= 1, got {gpus}")
    parts = dict(cost.memory)
    if layout == "zero2":
        parts["gradients"] = -(-parts["gradients"] // gpus)
        parts["optimizer"] = -(-parts["optimizer"] // gpus)
    return LayoutMemory(layout, gpus, parts)
