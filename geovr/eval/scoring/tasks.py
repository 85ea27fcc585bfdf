"""VSI-Bench's tasks and what every scorer returns.

Eight tasks: four numeric (scored by Mean Relative Accuracy over ten thresholds theta) and four
multiple choice (scored 1 for the right option letter). object_rel_direction comes in three
levels (easy / medium / hard), each its own question type.
"""
from __future__ import annotations

from dataclasses import dataclass, field

# The ten MRA thresholds theta, written out; each scorer compares the relative error with
# 1 - theta its own way (see its module).
MRA_THRESHOLDS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95)

NUMERIC_TASKS = ("object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation")
CHOICE_TASKS = ("object_rel_distance", "object_rel_direction", "route_planning", "obj_appearance_order")
TASKS = NUMERIC_TASKS + CHOICE_TASKS  # VSI-Bench's eight tasks, in its table order
DIRECTION_LEVELS = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard")


def task_of(question_type: str) -> str:
    """The task a question type is scored under (the rel_direction levels -> object_rel_direction)."""
    return "object_rel_direction" if question_type in DIRECTION_LEVELS else question_type


def is_numeric(question_type: str) -> bool:
    t = task_of(question_type)
    if t in NUMERIC_TASKS:
        return True
    if t in CHOICE_TASKS:
        return False
    raise ValueError(f"unknown VSI-Bench question_type {question_type!r}; expected one of "
                     f"{list(NUMERIC_TASKS + CHOICE_TASKS + DIRECTION_LEVELS)}")


@dataclass
class Scored:
    """One scored answer: score in [0, 1]; parsed: the number or option read (None: unparsable);
    hits: the MRA threshold hits, in MRA_THRESHOLDS order (numeric questions)."""

    score: float
    parsed: float | str | None
    hits: list[bool] = field(default_factory=list)


def mra_scored(pred: float | None, hits: list[bool]) -> Scored:
    return Scored(sum(hits) / len(hits), pred, hits)


NO_HITS = [False] * len(MRA_THRESHOLDS)
