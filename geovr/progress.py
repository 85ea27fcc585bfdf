"""Progress of long work: a tqdm bar where a person watches (stderr is a terminal), else whole
lines a log file can hold ("train: 40/120 steps (33%), 0m12s, about 0m24s left"), one every
`LINE_EVERY_S` seconds and one at the end, never a bar's carriage-return fragments.

`hf_bars_on_terminal()` does the same for transformers' own bars ("Loading weights", "Writing
model shards") around geovr's loads and saves only: elsewhere they stay as the library set them.
"""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterable, Iterator

LINE_EVERY_S = 60.0  # seconds between progress lines in a log that is not a terminal


def on_terminal() -> bool:
    """Whether stderr is a terminal (a bar can redraw itself there)."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class LineProgress:
    """tqdm's interface (iterate, update, set_postfix, write, close) as whole lines on stderr."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, initial: int = 0, desc: str = "",
                 unit: str = "it", every_s: float = LINE_EVERY_S, **_ignored):
        self.iterable, self.desc, self.unit, self.every_s = iterable, desc, unit, every_s
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.n, self.start_n = total, initial, initial
        self.postfix = ""
        self.t0 = self.last = time.monotonic()
        self.closed = False

    def __iter__(self) -> Iterator:
        for item in self.iterable:
            yield item
            self.update()
        self.close()

    def update(self, n: int = 1) -> None:
        first = self.n == self.start_n
        self.n += n
        now = time.monotonic()
        if first or now - self.last >= self.every_s:  # the first unit says the work has started
            self.last = now
            self._line(now)

    def set_postfix(self, values: dict | None = None, refresh: bool = True, **kw) -> None:
        values = {**(values or {}), **kw}
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())

    def write(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.closed and self.n > self.start_n:
            self._line(time.monotonic())
        self.closed = True

    def _line(self, now: float) -> None:
        done = self.n - self.start_n
        elapsed = now - self.t0
        where = f"{self.n:,}/{self.total:,} {self.unit}" if self.total else f"{self.n:,} {self.unit}"
        if self.total:
            where += f" ({100 * self.n / self.total:.0f}%)"
        left = ""
        if self.total and done and self.n < self.total:
            left = f", about {_clock(elapsed / done * (self.total - self.n))} left"
        post = f"; {self.postfix}" if self.postfix else ""
        print(f"{self.desc}: {where}, {_clock(elapsed)}{left}{post}", file=sys.stderr, flush=True)


def progress(iterable: Iterable | None = None, enabled: bool = True, **kwargs):
    """A progress display for `iterable` or `total` units (tqdm's keywords): a tqdm bar on a
    terminal, `LineProgress` in a log, nothing when not `enabled` (then `iterable` itself, or a
    display that shows nothing)."""
    if enabled and on_terminal():
        from tqdm import tqdm

        return tqdm(iterable, file=sys.stderr, **kwargs)
    if not enabled:
        if iterable is not None:
            return iterable
        from tqdm import tqdm

        return tqdm(disable=True, **kwargs)
    return LineProgress(iterable, **kwargs)


@contextmanager
def hf_bars_on_terminal():
    """transformers' (and huggingface_hub's) progress bars off for the block when stderr is not a
    terminal, restored as they were after it."""
    if on_terminal():
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars
    from transformers.utils import logging as hf_logging

    was_on, hub_was_off = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
        if hub_was_off:
            disable_progress_bars()
