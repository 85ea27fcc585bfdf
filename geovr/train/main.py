"""`python -m geovr.train` / `torchrun --nproc_per_node N -m geovr.train`.

  python -m geovr.train                                  the tiny embedded job (CPU, about 3 minutes)
  python -m geovr.train --preset paper --config run.yaml model.path=/models/Qwen3-VL-2B-Instruct
  python -m geovr.train train.steps=50 optim.lr=5e-4     overrides: section.field=value
  python -m geovr.train --resume auto                    continue the newest checkpoint whose files match its manifest
  python -m geovr.train --print-config                   show the resolved config and exit
  python -m geovr.train --cache-targets teacher.cache=DIR run the teacher once into the run's target cache
  torchrun --nproc_per_node 8 -m geovr.train parallel.backend=fsdp   FSDP2: weights, grads, AdamW sharded
  torchrun --nproc_per_node 4 -m geovr.train --tp 2 --pp 2   Megatron tensor x pipeline parallel LLM

Order of precedence: preset < --config YAML < overrides.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from ..cli import at_least
from ..data.health import DataStalled
from .config import PRESETS, ConfigError, preset
from .config_io import apply_dict, apply_overrides, dump_yaml, load_yaml
from .checkpoint import CheckpointDamaged, CheckpointWriteError
from .report import summary_table
from .verify import VerificationFailed


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    """--preset, --config and the section.field=value overrides: what resolves a run's config
    (`config_from_arguments`); shared with `python -m geovr.train.check_run`."""
    p.add_argument("--preset", default=None, choices=PRESETS, help="base config (default tiny, or the YAML's 'preset')")
    p.add_argument("--config", default=None, help="YAML file with sections model/data/teacher/optim/loss/train/"
                                                 "checkpoint/metrics")
    p.add_argument("overrides", nargs="*", help="section.field=value")


def config_from_arguments(args: argparse.Namespace):
    """The preset, then the YAML file, then the overrides. Raises ConfigError."""
    data = load_yaml(args.config) if args.config else {}
    cfg = preset(args.preset or data.get("preset", "tiny"))
    apply_dict(cfg, data, args.config or "config")
    return apply_overrides(cfg, args.overrides)


def parse_config(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="python -m geovr.train", description="Train a GeoVR model.",
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    add_config_arguments(p)
    p.add_argument("--resume", default=None, help="none | auto | a checkpoint folder (= checkpoint.resume)")
    p.add_argument("--resume-unverified", action="store_true",
                   help="load the --resume checkpoint even when its files do not match its manifest "
                        "(= checkpoint.resume_unverified=true)")
    p.add_argument("--tp", type=at_least(1), default=None, help="tensor parallel size (= parallel.tp; megatron-core)")
    p.add_argument("--pp", type=at_least(1), default=None, help="pipeline parallel size (= parallel.pp; megatron-core)")
    p.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    p.add_argument("--cache-targets", action="store_true",
                   help="fill the run's teacher-target cache (teacher.cache=DIR) from this config and exit; the run "
                        "then reads it (same config): its keys match by construction")
    args = p.parse_intermixed_args(argv)  # overrides may come before and after the flags
    cfg = config_from_arguments(args)
    if args.resume is not None:
        cfg.checkpoint.resume = args.resume
    if args.resume_unverified:
        cfg.checkpoint.resume_unverified = True
    if args.tp is not None:
        cfg.parallel.tp = args.tp
    if args.pp is not None:
        cfg.parallel.pp = args.pp
    return cfg, args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("geovr").setLevel(logging.INFO)  # geovr's own events (first-run data, resume, ...)
    try:
        cfg, args = parse_config(argv)
        if args.print_config:
            print(dump_yaml(cfg), end="")
            return 0
        if args.cache_targets:
            from .cache_targets import fill_cache
            from .config import validate

            validate(cfg)
            counts = fill_cache(cfg, progress=cfg.metrics.progress)
            print(f"teacher cache {cfg.teacher.cache}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
            return 0
        if cfg.parallel.megatron:
            from .megatron_loop import MegatronTrainer as Trainer
        elif cfg.parallel.fsdp:
            from .fsdp_loop import FSDPTrainer as Trainer
        else:
            from .loop import Trainer

        trainer = Trainer(cfg)
    except (ConfigError, FileNotFoundError, VerificationFailed, CheckpointDamaged) as err:
        if os.environ.get("RANK", "0") == "0":  # every rank agreed on it; one says it
            print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        summary = trainer.train()
    except KeyboardInterrupt:  # a second Ctrl-C
        if trainer.world.main:
            latest = trainer.checkpointer.latest()
            print(f"aborted: nothing saved since {latest or 'the start'}", file=sys.stderr)
        return 130
    except CheckpointWriteError as err:  # every rank stops here; the first says why
        if trainer.world.main:
            print(f"error: {err}", file=sys.stderr)
        return 1
    except DataStalled as err:  # this rank's loader alone: it says so, whichever rank it is
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        trainer.close()
    if trainer.world.main:
        print(summary_table(summary, trainer.output))
    return 0
