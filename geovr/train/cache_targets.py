"""`python -m geovr.train --cache-targets teacher.cache=DIR [the run's --preset/--config/overrides]`:
fill a run's teacher-target cache from the run's own config, so its keys (teacher settings, frame
sampling, teacher frame size) match what the run will ask for by construction. The cache itself
and its format: `geovr.teachers.cache`."""
from __future__ import annotations

import argparse

from . import build
from .config import Config, ConfigError


def cache_arguments(cfg: Config, quiet: bool = False) -> argparse.Namespace:
    """The arguments of `geovr.teachers.cache.build_cache` that a run of `cfg` reads its cache with."""
    d, t = cfg.data, cfg.teacher
    if not t.cache:
        raise ConfigError("teacher.cache", "set the cache folder to fill (teacher.cache=DIR); the run then reads "
                          "it with the same setting")
    return argparse.Namespace(
        data=d.path, format=d.format, media_root=d.media_root, teacher=t.name, vggt_weights=t.vggt_weights,
        metric_weights=t.metric_weights, teacher_root=t.root or str(build.data_root(cfg)), feature_dim=t.feature_dim,
        resampled=not t.exact, out=t.cache, feature_dtype="fp16", features="pooled", shard_size=64, fps=d.fps,
        min_frames=d.min_frames, max_frames=d.max_frames, teacher_longest=d.teacher_longest, backend=d.backend,
        quiet=quiet)


def fill_cache(cfg: Config, progress: bool = True) -> dict:
    """Write the synthetic world first when the run would, then the cache; returns the counts."""
    from ..teachers.cache import build_cache

    args = cache_arguments(cfg, quiet=not progress)
    build.check_paths(cfg)
    build.ensure_data(cfg, progress=progress)
    return build_cache(args)
