"""VSI-Bench scoring, three ways (`scoring=`):

- `lmms-eval` (the default): identical per-sample scores to lmms-eval's VSI-Bench task, which most
  published numbers use (`lmms_eval.py`);
- `release`: the GeoVR release's metric_result.py, with which the paper's numbers were computed
  (`release.py`);
- `lenient`: geovr's forgiving reader of free-form replies (`lenient.py`).

They differ in how a reply is read ("B)", "2.5 meters"), at the MRA boundaries (<= or <), and in
how the object_rel_direction levels and missing tasks enter the overall score (`aggregate.py`).
"""
from __future__ import annotations

from . import lenient, lmms_eval, release
from .aggregate import Report, aggregate_rows
from .lenient import MRA_TOLERANCES, mra, mra_hits, parse_number, parse_option, strip_reasoning
from .lmms_eval import LMMS_EVAL_VERSION
from .tasks import (CHOICE_TASKS, DIRECTION_LEVELS, MRA_THRESHOLDS, NUMERIC_TASKS, TASKS, Scored, is_numeric,
                    task_of)

SCORERS = {"lmms-eval": lmms_eval.score, "release": release.score, "lenient": lenient.score}
SCORINGS = tuple(SCORERS)
DEFAULT_SCORING = "lmms-eval"
SOURCES = {"lmms-eval": f"lmms-eval {LMMS_EVAL_VERSION}, lmms_eval/tasks/vsibench/utils.py",
           "release": "GeoVR release, metric_result.py",
           "lenient": "geovr's lenient reader (geovr.eval.scoring.lenient)"}


def _check(scoring: str) -> None:
    if scoring not in SCORERS:
        raise ValueError(f"scoring {scoring!r}: choose one of {list(SCORINGS)}")


def score_answer(question_type: str, prediction: str, ground_truth: str, options: list[str] | None = None,
                 scoring: str = DEFAULT_SCORING) -> Scored:
    """Score one reply against its ground truth (a number, or an option letter)."""
    _check(scoring)
    return SCORERS[scoring](question_type, prediction, ground_truth, options)


def aggregate(rows: list[dict], scoring: str = DEFAULT_SCORING) -> Report:
    """rows: dicts with `question_type`, `score` (0..1), `parsed`, and `hits` for numeric ones."""
    _check(scoring)
    return aggregate_rows(rows, scoring, SOURCES[scoring])


__all__ = ["CHOICE_TASKS", "DEFAULT_SCORING", "DIRECTION_LEVELS", "LMMS_EVAL_VERSION", "MRA_THRESHOLDS",
           "MRA_TOLERANCES", "NUMERIC_TASKS", "Report", "SCORINGS", "Scored", "TASKS", "aggregate", "is_numeric",
           "mra", "mra_hits", "parse_number", "parse_option", "score_answer", "strip_reasoning", "task_of"]
