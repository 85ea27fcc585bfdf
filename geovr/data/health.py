"""`SkipLog`: bad data is skipped, logged once per kind, counted, and summarised each epoch.

Samples are skipped inside DataLoader workers (other processes), so the dataset attaches its
`Skip` events to the sample it returns instead; the collate gathers them into the batch and the
training loop feeds them to the main process's `SkipLog` (`log.add_batch(batch)`).
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


class SkipLog:
    """Counts skips by kind; logs the first skip of each kind (and every `log_every`-th after)."""

    def __init__(self, log_every: int = 1000):
        self.log_every = log_every
        self.epoch_counts: Counter[str] = Counter()
        self.total_counts: Counter[str] = Counter()
        self.examples: dict[str, Skip] = {}

    def add(self, skip: Skip) -> None:
        self.epoch_counts[skip.kind] += 1
        self.total_counts[skip.kind] += 1
        n = self.total_counts[skip.kind]
        if skip.kind not in self.examples:
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
        """Record the skips a collated batch carries (`batch["skipped"]`)."""
        for skip in batch.get("skipped", ()):
            self.add(skip)

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
        logger.warning(text) if self.epoch_counts else logger.info(text)
        self.epoch_counts.clear()
        return text
