"""`release` scoring: the GeoVR release's own `metric_result.py`, with which the paper's numbers
were computed.

The release strips the decoded reply before it stores it; so does this scorer.
- Multiple choice: the reply's first character, whitespace-stripped, equals the ground truth
  (case-sensitive; "B." counts, "(B)" and " B" do not). An empty reply scores 0 (the release
  would raise IndexError).
- Numeric: float() of the whole reply ("3", " 2.5 ", "1e2"; "2.5 meters" is unreadable and scores
  0); rel = |y^ - y| / y, counted when rel < 1 - theta (strict) with theta = round(0.5 + 0.05 i, 2);
  y = 0 counts only an exact 0.
- Aggregate: the three object_rel_direction levels pooled into one task (each question weighs
  the same), and the overall score is the sum of the eight task scores over 8, a missing task
  counting 0 (`scoring.aggregate`).
"""
from __future__ import annotations

import math

from .tasks import MRA_THRESHOLDS, NO_HITS, Scored, is_numeric, mra_scored

THETAS = tuple(round(0.5 + i * 0.05, 2) for i in range(10))
assert THETAS == MRA_THRESHOLDS


def mra_hits(pred: float, truth: float) -> list[bool]:
    if truth == 0:
        rel = 0.0 if pred == 0 else math.inf
    else:
        rel = abs(pred - truth) / truth
    return [rel < (1.0 - theta) for theta in THETAS]


def score(question_type: str, prediction: str, ground_truth: str, options: list[str] | None = None) -> Scored:
    """One reply scored as the release's metric_result.py scores it."""
    prediction = prediction.strip() if isinstance(prediction, str) else prediction
    if is_numeric(question_type):
        try:
            pred, truth = float(prediction), float(ground_truth)
        except (TypeError, ValueError):
            return mra_scored(None, list(NO_HITS))
        return mra_scored(pred, mra_hits(pred, truth))
    if not prediction:
        return Scored(0.0, None)
    first = str(prediction[0]).strip()
    return Scored(1.0 if first == str(ground_truth).strip() else 0.0, first or None)
