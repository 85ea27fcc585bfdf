"""`make_teacher`: a teacher from its name and paths (shared by the cache CLI and the trainer).

- `synthetic`: the synthetic world's exact targets (`root`: the dataset folder).
- `vggt`: VGGT-1B from `vggt_weights`; with `metric_weights` (DA3 metric) the targets gain the
  scale s*, otherwise the scale loss has no target and must be off.
"""
from __future__ import annotations

import os

from .base import Teacher

TEACHERS = ("synthetic", "vggt")


def make_teacher(name: str, root: str | os.PathLike | None = None, vggt_weights: str | None = None,
                 metric_weights: str | None = None, feature_dim: int = 1024, exact: bool = True,
                 device: str | None = None) -> Teacher:
    """Raises ValueError naming the missing setting, FileNotFoundError for missing paths."""
    if name == "synthetic":
        from .synthetic import SyntheticTeacher

        if root is None:
            raise ValueError("teacher 'synthetic' needs the synthetic dataset's folder (root)")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"synthetic teacher: dataset folder {root} does not exist "
                                    "(write it with `python -m geovr.data.synthetic --out <folder>`)")
        return SyntheticTeacher(root, feature_dim=feature_dim, exact=exact)
    if name == "vggt":
        from .vggt import VGGTTeacher

        if not vggt_weights:
            raise ValueError("teacher 'vggt' needs vggt_weights: the local path of the VGGT-1B checkpoint")
        teacher: Teacher = VGGTTeacher(vggt_weights, feature_dim=feature_dim, device=device)
        if metric_weights:
            from .metric_depth import MetricDepthTeacher, MetricScaledTeacher

            teacher = MetricScaledTeacher(teacher, MetricDepthTeacher(metric_weights, device=device))
        return teacher
    raise ValueError(f"unknown teacher {name!r}: choose from {list(TEACHERS)}")
