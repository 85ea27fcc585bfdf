"""`python -m geovr.train.check_run`: a run's inputs checked before the run, from the run's own config.

    python -m geovr.train.check_run --preset paper --config run.yaml --workers 16 --state check.state
    python -m geovr.train.check_run --config run.yaml --cache /scratch/targets --out check.json

Takes what `python -m geovr.train` takes (--preset, --config, section.field=value) and resolves it
as the trainer does (preset < YAML < overrides), so the sampling rule and the teacher are the run's,
not the defaults. Checks:
- the paths the run needs (model folder, data files, media root, teacher weights) exist;
- the dataset, as `python -m geovr.data.check` does (same options, same report);
- with teacher.cache set (or --cache DIR) and a geometric loss on: whether the cache holds the run's teacher (the
  run refuses a cache of another teacher; exit 1, naming the settings that differ) and how many of
  the sampled videos it covers, per source and in total (the rest run the teacher online; a
  video's entry is keyed by its frames and teacher frame size, known from the probe).
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

from ..data.check import MediaCheck, Section, add_check_arguments, check_output_files, run_check, source_of
from ..data.datasets.records import VideoQA
from ..data.sampling import teacher_plan
from . import build
from .config import Config, ConfigError, uses_teacher, validate
from .main import add_config_arguments, config_from_arguments


def cache_section(cfg: Config) -> Section:
    """The report's `cache` part for cfg.teacher.cache (see the module docstring)."""
    from ..teachers.cache import TeacherCache, cache_key, id_difference
    from ..teachers.factory import teacher_cache_id

    d, t = cfg.data, cfg.teacher
    sampling = build.frame_sampling(cfg)

    folder = t.cache
    run_id = teacher_cache_id(t.name, t.vggt_weights, t.metric_weights, t.feature_dim, t.exact)  # ValueError
    cache = TeacherCache(folder) if TeacherCache.found(folder) else None  # ValueError: another format

    def section(records: list[VideoQA], checks: dict[str, MediaCheck]) -> tuple[dict, list[str], str | None]:
        out: dict = {"folder": folder, "run_teacher": run_id}
        if cache is None:
            out.update(found=False, videos=0, covered=0)
            return out, [f"teacher cache {folder}: none there; every sample runs the teacher online (fill it with "
                         f"python -m geovr.train --cache-targets and this run's config)"], None
        missing = cache.missing_shards()
        lost = set(missing)
        cache_id = cache.teacher_id or run_id
        plans: dict[str, set] = defaultdict(set)  # source -> {(media as written, frame indices, teacher size)}
        records_of: dict[tuple, int] = defaultdict(int)
        for rec in records:
            m = checks[rec.media]
            if m.status != "ok":
                continue
            indices, size = teacher_plan(rec.kind, m.frames, m.fps, m.height, m.width, sampling, d.teacher_longest)
            plan = (rec.media_rel, tuple(indices), size)
            plans[source_of(rec)].add(plan)
            records_of[plan] += 1

        def held(teacher_id: str, plan: tuple) -> bool:
            shard = cache.index["entries"].get(cache_key(teacher_id, plan[0], list(plan[1]), plan[2]))
            return shard is not None and shard not in lost

        per = {src: {"videos": len(ps), "covered": sum(held(run_id, p) for p in ps)}
               for src, ps in sorted(plans.items())}
        every = [p for ps in plans.values() for p in ps]
        videos, covered = len(every), sum(r["covered"] for r in per.values())
        recs = sum(records_of.values())
        recs_covered = sum(n for p, n in records_of.items() if held(run_id, p))
        matches = cache_id == run_id
        out.update(found=True, cache_teacher=cache_id, matches=matches, features=cache.index.get("features"),
                   entries=len(cache), missing_shards=missing, videos=videos, covered=covered, records=recs,
                   records_covered=recs_covered, sources=per)
        share = f"{covered / videos:.1%}" if videos else "-"
        lines = [f"teacher cache {folder}: {len(cache)} entries of teacher {cache_id} ({out['features']} features)"]
        if missing:
            lines.append(f"  {len(missing)} shard files are missing (e.g. {missing[0]}): their entries count as "
                         "not covered; refill with python -m geovr.train --cache-targets")
        failure = None
        if matches:
            lines.append(f"  covers {covered} of {videos} sampled videos ({share}) and {recs_covered} of {recs} usable "
                         f"records; {videos - covered} videos will run the teacher online")
            lines.append("  by source: " + ", ".join(f"{s} {r['covered']}/{r['videos']}" for s, r in per.items()))
        else:
            own = sum(held(cache_id, p) for p in every)
            out["covered_by_cache_teacher"] = own
            failure = (f"teacher cache {folder} holds targets of teacher {cache_id}, not the run's {run_id} "
                       f"({id_difference(cache_id, run_id)}): the run would refuse it. Fill a cache with the run's "
                       f"settings (python -m geovr.train --cache-targets, the run's config and teacher.cache=NEW_DIR) "
                       f"or set the run's teacher as the cache's")
            lines.append(f"  the run's teacher is {run_id}: it does not match; with the cache's own teacher it would "
                         f"cover {own} of {videos} sampled videos")
        return out, lines, failure

    return section


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m geovr.train.check_run", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_arguments(p)
    add_check_arguments(p)
    p.add_argument("--cache", default=None, metavar="DIR", help="the teacher-target cache to check (= teacher.cache)")
    args = p.parse_intermixed_args(argv)
    check_output_files(p, args)
    try:
        cfg = config_from_arguments(args)
        if args.cache is not None:
            cfg.teacher.cache = args.cache
        validate(cfg)
        build.check_paths(cfg)
        d = cfg.data
        if len(build.data_paths(cfg)) == 1 and not Path(d.path).is_file():
            raise ConfigError("data.path", f"{d.path} is not written yet (the run writes the synthetic world there "
                              "first): nothing to check")
        sections = {}
        if cfg.teacher.cache and uses_teacher(cfg):
            sections["cache"] = cache_section(cfg)
        elif cfg.teacher.cache:
            print(f"teacher.cache={cfg.teacher.cache} is set but no geometric loss is on: the run reads no teacher")
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return run_check(args, d.path, d.format, d.media_root, build.frame_sampling(cfg), sections)


if __name__ == "__main__":
    sys.exit(main())
