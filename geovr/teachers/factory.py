"""`make_teacher`: a teacher from its name and paths (shared by the cache CLI and the trainer).

- `synthetic`: the synthetic world's exact targets (`root`: the dataset folder).
- `vggt`: VGGT-1B from `vggt_weights`; with `metric_weights` (DA3 metric) the targets gain the
  scale s*, otherwise the scale loss has no target and must be off.

`teacher_cache_id`: the id the teacher `make_teacher` builds would have, without building it (no
weights read): what a run's cache must hold.
"""
from __future__ import annotations

import os
from pathlib import Path

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


def teacher_cache_id(name: str, vggt_weights: str | None = None, metric_weights: str | None = None,
                     feature_dim: int = 1024, exact: bool = True) -> str:
    """`make_teacher(name, ...).cache_id` for the same settings, without building the teacher."""
    if name == "synthetic":
        from .synthetic import synthetic_cache_id

        return synthetic_cache_id(feature_dim=feature_dim, exact=exact)
    if name == "vggt":
        from .metric_depth import metric_cache_id, scaled_cache_id
        from .vggt import vggt_cache_id

        if not vggt_weights:
            raise ValueError("teacher 'vggt' needs vggt_weights: the local path of the VGGT-1B checkpoint")
        base = vggt_cache_id(Path(vggt_weights).name, feature_dim=feature_dim)
        return scaled_cache_id(base, metric_cache_id(Path(metric_weights).name)) if metric_weights else base
    raise ValueError(f"unknown teacher {name!r}: choose from {list(TEACHERS)}")
