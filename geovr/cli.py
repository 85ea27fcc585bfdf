"""Argument types for geovr's commands: an impossible value (`--frames 0`, `--fps -1`) is a usage
error before any work (argparse's one `error:` line, exit 2), never a traceback or a late failure.

    p.add_argument("--frames", type=at_least(1), default=32)
    p.add_argument("--mfu", type=share, default=0.35)
"""
from __future__ import annotations

import argparse
import math
from typing import Callable


def _number(text: str, kind: type) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") \
            from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An integer >= low."""
    def parse(text: str) -> int:
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def positive(text: str) -> float:
    """A finite number > 0."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def non_negative(text: str) -> float:
    """A finite number >= 0."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def share(text: str) -> float:
    """A share in (0, 1]."""
    value = _number(text, float)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be a share in (0, 1], got {text}")
    return value


def fraction(text: str) -> float:
    """A fraction in [0, 1]."""
    value = _number(text, float)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def check_inputs(p: argparse.ArgumentParser, option: str, paths: str | None) -> None:
    """Each of the comma-separated files in `paths` exists (a usage error naming the first that does not)."""
    import os

    for path in (paths or "").split(","):
        if path and not os.path.isfile(path):
            p.error(f"{option} {path}: no such file" + (" (a folder: give its annotation file)"
                                                        if os.path.isdir(path) else ""))


def check_output(p: argparse.ArgumentParser, option: str, path: str | None, kind: str = "folder") -> None:
    """`path` (a folder or a file a command will write) is not the other kind and can be written:
    it exists and is writable, or the nearest existing folder above it is. A usage error otherwise."""
    import os
    from pathlib import Path

    if path is None:
        return
    target = Path(path)
    if target.exists():
        if kind == "folder" and not target.is_dir():
            p.error(f"{option} {path} is a file, not a folder")
        if kind == "file" and target.is_dir():
            p.error(f"{option} {path} is a folder, not a file")
        where = target if kind == "folder" else target.parent
    else:
        where = target.absolute().parent
        while not where.exists():
            where = where.parent
        if not where.is_dir():
            p.error(f"{option} {path}: {where} is a file, so the {kind} cannot be created")
    if not os.access(where, os.W_OK | os.X_OK):
        p.error(f"{option} {path}: {where} is not writable")
