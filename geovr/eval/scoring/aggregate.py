"""Per-task and overall VSI-Bench scores from scored samples, in percent.

Per question type, the mean score. The task object_rel_direction is made from its three levels:
- `lmms-eval` and `lenient`: the mean of the three level scores (as lmms-eval; it raises when a
  level has no question, here the levels present are averaged);
- `release`: all their questions pooled.
The overall score: `lmms-eval` and `lenient`, the mean of the task scores present; `release`,
the sum of the eight task scores over 8 (a missing task counts 0).
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from .lmms_eval import LMMS_EVAL_VERSION
from .tasks import DIRECTION_LEVELS, MRA_THRESHOLDS, TASKS, is_numeric


@dataclass
class Report:
    """scores: per task and per rel_direction level, in percent; overall: the overall score;
    counts: questions per task / level; mra_by_threshold: per numeric task, the hit rate (percent)
    at each theta; unparsable: per task, answers that could not be read; scoring: how the samples
    were scored, and source: what that scoring follows."""

    scores: dict[str, float]
    overall: float
    counts: dict[str, int]
    mra_by_threshold: dict[str, dict[str, float]]
    unparsable: dict[str, int]
    scoring: str = "lmms-eval"
    source: str = ""

    def to_dict(self) -> dict:
        return {"overall": self.overall, "scores": self.scores, "counts": self.counts,
                "mra_by_threshold": self.mra_by_threshold, "unparsable": self.unparsable,
                "thresholds": list(MRA_THRESHOLDS), "scoring": self.scoring, "scoring_source": self.source,
                **({"lmms_eval_version": LMMS_EVAL_VERSION} if self.scoring == "lmms-eval" else {})}


def _mean(xs: list[float]) -> float:
    return 100.0 * sum(xs) / len(xs)


def aggregate_rows(rows: list[dict], scoring: str, source: str) -> Report:
    """rows: dicts with `question_type`, `score` (0..1), `parsed`, and `hits` for numeric ones."""
    pooled = scoring == "release"
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_type[r["question_type"]].append(r)
    scores, counts, unparsable, thresholds = {}, {}, {}, {}
    for qtype, rs in by_type.items():
        scores[qtype] = _mean([r["score"] for r in rs])
        counts[qtype] = len(rs)
        unparsable[qtype] = sum(r.get("parsed") is None for r in rs)
        if is_numeric(qtype):
            thresholds[qtype] = {f"{t:.2f}": _mean([r["hits"][j] for r in rs]) for j, t in enumerate(MRA_THRESHOLDS)}
    levels = [lv for lv in DIRECTION_LEVELS if lv in scores]
    if levels and "object_rel_direction" not in scores:
        direction = [r for lv in levels for r in by_type[lv]]
        scores["object_rel_direction"] = (_mean([r["score"] for r in direction]) if pooled
                                          else sum(scores[lv] for lv in levels) / len(levels))
        counts["object_rel_direction"] = len(direction)
        unparsable["object_rel_direction"] = sum(unparsable[lv] for lv in levels)
    tasks = [t for t in TASKS if t in scores]
    if pooled:
        overall = sum(scores.get(t, 0.0) for t in TASKS) / len(TASKS)
    else:
        overall = sum(scores[t] for t in tasks) / len(tasks) if tasks else float("nan")
    return Report(scores, overall, counts, thresholds, unparsable, scoring, source)
