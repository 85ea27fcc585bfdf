"""The teacher interface: what every 3D teacher (VGGT, synthetic, cached) returns per sample."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor


@dataclass
class TeacherRequest:
    """One sample for a teacher. frames: float [T, 3, H', W'] in [0, 1] at the teacher's size
    (`geovr.data.qwen_pixels.to_teacher_frames`); frame_indices: the video frames they are;
    media: the video's path as its record wrote it (cache keys use it); extra: the record's other
    fields (the synthetic teacher reads `geometry` from it)."""

    sample_id: str
    frames: Tensor
    frame_indices: list[int]
    extra: dict = field(default_factory=dict)
    media: str = ""


@dataclass
class TeacherTargets:
    """pose_enc [T, 9] (camera-from-frame-1, `[t | q xyzw | fov_h, fov_w]`, teacher units);
    depth, depth_conf [T, H', W'] (teacher units); features {teacher layer: [T, H'/p, W'/p, C]}
    (patch tokens, before the 2x2 pooling); scale: metres per teacher unit ([] tensor) when the
    teacher knows it (the synthetic world, or a metric-depth model through `MetricScaledTeacher`),
    NaN when it could not be measured for this sample (the scale loss skips the sample), None when
    the teacher has no notion of it (the scale loss must be off). features_pooled: the features
    are already 2x2 average pooled ([T, H'/2p, W'/2p, C], `pool_features`), as the alignment loss
    reads them (the target cache stores them so)."""

    pose_enc: Tensor
    depth: Tensor
    depth_conf: Tensor
    features: dict[int, Tensor]
    scale: Tensor | None = None
    features_pooled: bool = False

    def pooled(self, layer: int) -> Tensor:
        """The alignment target of `layer`: its features 2x2 average pooled, fp32."""
        f = self.features[layer]
        return f.float() if self.features_pooled else pool_features(f)


def pool_features(features: Tensor) -> Tensor:
    """[T, h, w, C] -> 2x2 average pooled [T, h // 2, w // 2, C] in fp32 (an odd last row/column
    is dropped)."""
    return F.avg_pool2d(features.permute(0, 3, 1, 2).float(), 2).permute(0, 2, 3, 1)


class Teacher(ABC):
    """name: identifies the teacher in caches; layers: tapped layer indices; depth: its number
    of layers (for the layer map); patch_size: pixels per feature token; feature_dim: C."""

    name: str
    layers: tuple[int, ...]
    depth: int
    patch_size: int
    feature_dim: int

    @property
    def cache_id(self) -> str:
        """Identifies this teacher *and its settings* in cache keys (targets differ between them)."""
        return self.name

    @abstractmethod
    def __call__(self, request: TeacherRequest) -> TeacherTargets:
        """Targets for one sample (no gradients)."""
