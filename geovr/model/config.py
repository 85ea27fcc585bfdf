"""`GeoVRConfig`: which geometric parts are on and their sizes; `paper()` is the release's wiring."""
from __future__ import annotations

from dataclasses import dataclass

from .layer_map import VGGT_DEPTH, VGGT_LAYERS

TEXT_LOGITS = ("supervised", "all")
CHECKPOINT_KEEP = ("attention", "nothing")  # what a checkpointed decoder layer keeps (geovr.model.recompute)


@dataclass(frozen=True)
class GeoVRConfig:
    """camera/depth/scale/align: switch each objective's tokens and head. teacher_*: the teacher's
    tapped layers, depth (layer count), patch (px) and feature width C. Head widths as the release.
    text_logits: "supervised" (the LM head and text loss only where a label is set; training never
    makes the full [B, L', vocabulary] logits) or "all" (HF's forward: logits at every position, as
    the release)."""

    camera: bool = True
    depth: bool = True
    scale: bool = True
    align: bool = True
    teacher_layers: tuple[int, ...] = VGGT_LAYERS
    teacher_depth: int = VGGT_DEPTH
    teacher_patch: int = 14
    teacher_dim: int = 1024
    camera_hidden: int = 1536
    scale_hidden: int = 512
    dpt_channels: tuple[int, int, int, int] = (256, 512, 1024, 1024)
    dpt_features: int = 256
    projector_hidden: int = 1024
    text_logits: str = "supervised"

    def __post_init__(self):
        if self.text_logits not in TEXT_LOGITS:
            raise ValueError(f"text_logits {self.text_logits!r}: choose from {list(TEXT_LOGITS)}")

    @staticmethod
    def paper() -> "GeoVRConfig":
        """The authors' release: VGGT-1B layers {4, 11, 17, 23}, every objective on."""
        return GeoVRConfig()

    @staticmethod
    def off() -> "GeoVRConfig":
        """No geometric part: the model is plain Qwen3-VL."""
        return GeoVRConfig(camera=False, depth=False, scale=False, align=False)

    def pooled_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The alignment grid of teacher frames of `size` (H', W'): the teacher's patch grid, 2x2 pooled."""
        return size[0] // (2 * self.teacher_patch), size[1] // (2 * self.teacher_patch)

    @property
    def any_on(self) -> bool:
        return self.camera or self.depth or self.scale or self.align
