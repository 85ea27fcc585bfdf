"""VSI-Bench scoring: answer parsing, MRA for numeric answers, option-letter accuracy, and the
per-task / overall aggregate.

Numeric tasks score Mean Relative Accuracy over ten confidence thresholds theta:
    MRA(y^, y) = (1/10) sum_theta 1[ |y^ - y| / |y| < 1 - theta ],
    theta in {0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95}.
An unparsable answer scores 0. y = 0 has no relative error: the answer scores 1 when it is
exactly 0, else 0. Multiple-choice tasks score 1 when the parsed option letter equals the
ground truth's. The overall score is the unweighted mean of the eight task scores, with the three
object_rel_direction levels (easy/medium/hard) first averaged into one task, as lmms-eval does.
Scores are reported in percent.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass, field

# The ten thresholds, and the relative-error tolerances 1 - theta they imply, written out (not
# computed) so that a boundary case such as |y^ - y| / y == 0.45 is decided exactly.
MRA_THRESHOLDS = (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
MRA_TOLERANCES = (0.50, 0.45, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.10, 0.05)

NUMERIC_TASKS = ("object_counting", "object_abs_distance", "object_size_estimation", "room_size_estimation")
CHOICE_TASKS = ("object_rel_distance", "object_rel_direction", "route_planning", "obj_appearance_order")
TASKS = NUMERIC_TASKS + CHOICE_TASKS  # VSI-Bench's eight tasks, in its table order
DIRECTION_LEVELS = ("object_rel_direction_easy", "object_rel_direction_medium", "object_rel_direction_hard")

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_LETTER = re.compile(r"^[\s*_`'\"(\[{<]*(?:(?:the\s+)?(?:answer|option)\s*(?:is)?\s*[:\-]?\s*)?"
                     r"[(\[{<]?([A-Za-z])(?:[)\]}>.:,;!*_`'\"]|\s|$)", re.I)


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


def strip_reasoning(text: str) -> str:
    """Drop `<think>...</think>` blocks and an `<answer>` wrapper; keep the answer text."""
    text = _THINK.sub("", text)
    m = re.search(r"<answer>(.*?)(?:</answer>|$)", text, re.S | re.I)
    return (m.group(1) if m else text).strip()


def parse_number(text: str) -> float | None:
    """The first number in the answer ("3", "2.5 meters", "about 1,5 m", "1e2"), or a number word
    from zero to twenty ("three"); None when there is none or it is not finite."""
    text = strip_reasoning(text)
    m = _NUMBER.search(text)
    if m:
        value = float(m.group(0).replace(",", "."))
        return value if math.isfinite(value) else None
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _WORDS:
            return float(_WORDS[word])
    return None


def parse_option(text: str, options: list[str] | None = None) -> str | None:
    """The option letter of an answer: "B", "B.", "(B)", "**B**", "B) chair", "Answer: B", or,
    when `options` ("A. chair", ...) are given, the text of exactly one option ("chair").
    A lower-case letter counts only when it is the whole answer ("b", not "a chair"). None when
    no letter can be read."""
    text = strip_reasoning(text)
    m = _LETTER.match(text)
    if m:
        letter = m.group(1)
        rest = text[m.end():].strip()
        if letter.isupper() or not rest:
            return letter.upper()
    if options:
        norm = text.strip().rstrip(".").strip().lower()
        hits = [o for o in options if _option_body(o).lower() == norm]
        if len(hits) == 1:
            return hits[0].strip()[0].upper()
    return None


def _option_body(option: str) -> str:
    m = re.match(r"^\s*[A-Za-z][.)]\s*(.*)$", option)
    return (m.group(1) if m else option).strip().rstrip(".")


def mra(pred: float | None, truth: float) -> float:
    """Mean relative accuracy of one numeric answer (0 when unparsable)."""
    return sum(mra_hits(pred, truth)) / len(MRA_TOLERANCES)


def mra_hits(pred: float | None, truth: float) -> list[bool]:
    """Per threshold theta (MRA_THRESHOLDS order): |pred - truth| / |truth| < 1 - theta."""
    if pred is None or not math.isfinite(pred):
        return [False] * len(MRA_TOLERANCES)
    if truth == 0:
        return [pred == 0] * len(MRA_TOLERANCES)
    rel = abs(pred - truth) / abs(truth)
    return [rel < tol for tol in MRA_TOLERANCES]


@dataclass
class Scored:
    """One scored answer: score in [0, 1]; parsed: the number or letter read (None: unparsable);
    hits: the MRA threshold hits (numeric questions)."""

    score: float
    parsed: float | str | None
    hits: list[bool] = field(default_factory=list)


def score_answer(question_type: str, prediction: str, ground_truth: str,
                 options: list[str] | None = None) -> Scored:
    """Score one prediction against its ground truth (a number, or an option letter)."""
    if is_numeric(question_type):
        try:
            truth = float(ground_truth)
        except (TypeError, ValueError):
            raise ValueError(f"numeric question ({question_type}) with a non-numeric ground truth "
                             f"{ground_truth!r}") from None
        pred = parse_number(prediction)
        hits = mra_hits(pred, truth)
        return Scored(sum(hits) / len(hits), pred, hits)
    letter = parse_option(prediction, options)
    truth_letter = parse_option(str(ground_truth), options)
    if truth_letter is None:
        raise ValueError(f"multiple-choice question ({question_type}) whose ground truth "
                         f"{ground_truth!r} is not an option letter")
    return Scored(float(letter == truth_letter), letter)


@dataclass
class Report:
    """scores: per task and per rel_direction level, in percent; overall: mean of the task
    scores present; counts: questions per task / level; mra_by_threshold: per numeric task, the
    hit rate (percent) at each theta; unparsable: per task, answers that could not be read."""

    scores: dict[str, float]
    overall: float
    counts: dict[str, int]
    mra_by_threshold: dict[str, dict[str, float]]
    unparsable: dict[str, int]

    def to_dict(self) -> dict:
        return {"overall": self.overall, "scores": self.scores, "counts": self.counts,
                "mra_by_threshold": self.mra_by_threshold, "unparsable": self.unparsable,
                "thresholds": list(MRA_THRESHOLDS)}


def aggregate(rows: list[dict]) -> Report:
    """rows: dicts with `question_type`, `score` (0..1), `parsed`, and `hits` for numeric ones."""
    by_type: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_type[r["question_type"]].append(r)
    mean = lambda xs: 100.0 * sum(xs) / len(xs)  # noqa: E731
    scores, counts, unparsable, thresholds = {}, {}, {}, {}
    for qtype, rs in by_type.items():
        scores[qtype] = mean([r["score"] for r in rs])
        counts[qtype] = len(rs)
        unparsable[qtype] = sum(r.get("parsed") is None for r in rs)
        if is_numeric(qtype):
            thresholds[qtype] = {f"{t:.2f}": mean([r["hits"][j] for r in rs]) for j, t in enumerate(MRA_THRESHOLDS)}
    levels = [lv for lv in DIRECTION_LEVELS if lv in scores]
    if levels and "object_rel_direction" not in scores:
        scores["object_rel_direction"] = sum(scores[lv] for lv in levels) / len(levels)
        counts["object_rel_direction"] = sum(counts[lv] for lv in levels)
        unparsable["object_rel_direction"] = sum(unparsable[lv] for lv in levels)
    tasks = [t for t in TASKS if t in scores]
    overall = sum(scores[t] for t in tasks) / len(tasks) if tasks else float("nan")
    return Report(scores, overall, counts, thresholds, unparsable)
