"""`SkipLog`: bad data is skipped, logged once per kind, counted, and summarised each epoch.

Samples are dropped inside DataLoader workers (other processes), so the dataset returns a
`Dropped` in the sample's place; the collate gathers those skips into the batch ("skipped", and
"kept" per item in order) and the training loop feeds every batch to its `SkipLog`
(`log.add_batch(batch)`), which counts each bad item once and stops the run when too many items
in a row were bad.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

logger = logging.getLogger("geovr.data")


@dataclass(frozen=True)
class Skip:
    """One skipped item: its id, media path (or annotation file), kind and the full reason."""

    item: str
    path: str
    kind: str  # VideoDecodeError.KINDS, or "invalid_record"
    reason: str


class TooManySkips(RuntimeError):
    """`max_in_a_row` items in a row could not be used."""


class DataStalled(RuntimeError):
    """No micro-batch came from the DataLoader workers in the time allowed (a stuck worker)."""


class SkipLog:
    """Counts skips by kind; logs the first skip of each kind (and every `log_every`-th after)
    when `report` (the main process; other ranks count silently). add_batch raises TooManySkips
    once `max_in_a_row` consecutive items were dropped (0: never)."""

    def __init__(self, log_every: int = 1000, max_in_a_row: int = 64, report: bool = True):
        self.log_every = log_every
        self.max_in_a_row = max_in_a_row
        self.report = report
        self.in_a_row = 0
        self.epoch_counts: Counter[str] = Counter()
        self.total_counts: Counter[str] = Counter()
        self.examples: dict[str, Skip] = {}

    def add(self, skip: Skip) -> None:
        self.epoch_counts[skip.kind] += 1
        self.total_counts[skip.kind] += 1
        n = self.total_counts[skip.kind]
        if not self.report:
            self.examples.setdefault(skip.kind, skip)
        elif skip.kind not in self.examples:
            self.examples[skip.kind] = skip
            logger.warning("skipping %s (%s): %s. Further '%s' skips are counted, not logged "
                           "(summary at the end of the epoch).", skip.item, skip.kind, skip.reason, skip.kind)
        elif self.log_every and n % self.log_every == 0:
            logger.warning("%d items skipped as '%s' so far (latest: %s)", n, skip.kind, skip.path)

    def add_invalid_records(self, errors) -> None:
        """Record the `RecordError`s a reader returned (kind "invalid_record")."""
        for err in errors:
            self.add(Skip(err.where, err.where, "invalid_record", str(err)))

    def add_batch(self, batch) -> None:
        """Record the skips a collated batch carries (`batch["skipped"]`), and check the run of
        dropped items (`batch["kept"]`, in the sampler's order)."""
        skips = list(batch.get("skipped", ()))
        for skip in skips:
            self.add(skip)
        for kept in batch.get("kept", ()):
            self.in_a_row = 0 if kept else self.in_a_row + 1
            if self.max_in_a_row and self.in_a_row >= self.max_in_a_row:
                last = skips[-1] if skips else next(iter(self.examples.values()))
                raise TooManySkips(
                    f"{self.in_a_row} items in a row could not be used (last: {last.path}: {last.reason}); "
                    "check the media root and the files")

    def metrics(self) -> dict[str, float]:
        """{"data/skipped": total, "data/skipped/<kind>": count} over the run so far."""
        out = {"data/skipped": float(sum(self.total_counts.values()))}
        out.update({f"data/skipped/{k}": float(v) for k, v in sorted(self.total_counts.items())})
        return out

    def end_epoch(self, epoch: int) -> str:
        """Log and return this epoch's summary, then start counting the next epoch."""
        if not self.epoch_counts:
            text = f"epoch {epoch}: no data skipped"
        else:
            parts = ", ".join(f"{k} {v}" for k, v in sorted(self.epoch_counts.items()))
            text = f"epoch {epoch}: skipped {sum(self.epoch_counts.values())} items ({parts})"
        if self.report:
            logger.warning(text) if self.epoch_counts else logger.debug(text)
        self.epoch_counts.clear()
        return text
