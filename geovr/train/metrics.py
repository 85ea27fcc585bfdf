"""`MetricsLogger`: the progress bar (loss parts, samples/s, ETA), TensorBoard event files,
`metrics.jsonl` (one record per logged step; a resumed run first drops the records after its
checkpoint, so every step appears once) and the end-of-run summary over the whole run. Only
rank 0 writes."""
from __future__ import annotations

import json
import logging
import resource
import sys
import time
from pathlib import Path

import torch

logger = logging.getLogger("geovr.train")


def peak_memory_gb(device: torch.device) -> float:
    """Peak allocated GPU memory, or this process's peak resident memory on a CPU (GiB)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return rss / 2**20


def _keep_until(path: Path, step: int) -> list[dict]:
    """The records of `path` up to `step` (a resumed run's; the file is rewritten without the
    later ones, which a killed run logged after its last checkpoint and the resumed run logs
    again), oldest first. Nothing when starting at step 0."""
    if step == 0 or not path.is_file():
        if path.is_file():
            path.unlink()  # a fresh run in an old folder: its curves start anew
        return []
    kept = []
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:  # a line cut by the kill
            continue
        if rec.get("step", 0) <= step:
            kept.append(rec)
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return kept


class MetricsLogger:
    """output: the run folder; total_steps: for the bar's ETA; start_step: where a resumed run begins."""

    def __init__(self, output: Path, total_steps: int, start_step: int, enabled: bool, progress: bool = True,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.history: list[dict] = []
        self.bar = None
        self.tb = None
        self.t0 = time.perf_counter()
        if not enabled:
            return
        output.mkdir(parents=True, exist_ok=True)
        self.history = _keep_until(output / "metrics.jsonl", start_step)
        self.jsonl = open(output / "metrics.jsonl", "a")
        if progress:
            from ..progress import progress as progress_display

            self.bar = progress_display(total=total_steps, initial=start_step, desc="train", unit="steps",
                                        dynamic_ncols=True)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.warning("tensorboard is not installed (pip install tensorboard): no event files")
            else:
                self.tb = SummaryWriter(str(output / "tensorboard"), purge_step=start_step + 1 if start_step else None)

    def log(self, record: dict) -> None:
        """record: {"step", "loss", "loss/<part>", "lr/<group>", "grad_norm", ...} (floats)."""
        if not self.enabled:
            return
        self.history.append(record)
        self.jsonl.write(json.dumps(record) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.tb.add_scalar(key, value, record["step"])
        if self.bar is not None:
            parts = {k.split("/", 1)[1]: v for k, v in record.items() if k.startswith("loss/")}
            post = {"loss": f"{record['loss']:.3f}", **{k: f"{v:.3f}" for k, v in parts.items()},
                    "samples/s": f"{record.get('samples_per_s', 0):.2f}"}
            self.bar.set_postfix(post, refresh=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def note(self, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(message)
        else:
            print(message, file=sys.stderr)

    def summary(self, extra: dict) -> dict:
        """Mean of each loss part over the first and last tenth of the logged steps, and `extra`."""
        out = dict(extra)
        if self.history:
            k = max(1, len(self.history) // 10)
            for key in sorted({x for r in self.history for x in r if x == "loss" or x.startswith("loss/")}):
                first = [r[key] for r in self.history[:k] if key in r]
                last = [r[key] for r in self.history[-k:] if key in r]
                if first and last:
                    out[f"{key} first"] = sum(first) / len(first)
                    out[f"{key} last"] = sum(last) / len(last)
        out["wall_s"] = time.perf_counter() - self.t0
        return out

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        self.jsonl.close()
