"""`lmms-eval` scoring: per-sample scores identical to lmms-eval's VSI-Bench task
(`lmms_eval/tasks/vsibench/utils.py` of lmms-eval LMMS_EVAL_VERSION), which most published
VSI-Bench numbers come from. Tested against lmms-eval's own functions
(tests/eval/test_lmms_eval_parity.py).

- Multiple choice: the reply's first token split on a single space, trailing "." removed, then
  surrounding whitespace; right when it equals the ground truth ignoring case ("B." and "b" count,
  "B)", "(B)" and " B" do not).
- Numeric: the first number in the reply, digits (an optional "-", digits, an optional ".digits":
  no exponent, no thousands separator) or a run of English number words ("three",
  "twenty-one", "three hundred and twenty-one"), whichever comes first; the ground truth by
  float(). MRA counts |y^ - y| / y <= 1 - theta (inclusive) with theta = numpy.linspace(0.5, 0.95, 10).
  An unreadable reply or ground truth scores 0.
- y = 0: lmms-eval divides by it and raises ZeroDivisionError (its scorer catches only TypeError),
  so no lmms-eval number has such a question; here an exact 0 scores 1 and anything else 0.
  VSI-Bench has none.
"""
from __future__ import annotations

import re

import numpy as np

from .tasks import NO_HITS, Scored, is_numeric, mra_scored

LMMS_EVAL_VERSION = "0.7.3"
__doc__ = __doc__.replace("LMMS_EVAL_VERSION", LMMS_EVAL_VERSION)

# 1 - theta as lmms-eval computes it (float64), so that boundaries fall the same way
TOLERANCES = 1.0 - np.linspace(0.50, 0.95, 10)

_DIGITS = re.compile(r"-?\d+(?:\.\d+)?")
_WORD = re.compile(r"[a-z]+")
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen".split())}
_NUMBER_WORDS.update({w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())})
_NUMBER_WORDS.update(hundred=100, thousand=1000)


def first_token(reply: str) -> str:
    """The multiple-choice reading of a reply."""
    return reply.split(" ")[0].rstrip(".").strip()


def _words_value(words: list[str]) -> float:
    total = current = 0
    for w in words:
        v = _NUMBER_WORDS[w]
        if v == 100:
            current = max(current, 1) * 100
        elif v == 1000:
            total, current = total + max(current, 1) * 1000, 0
        else:
            current += v
    return float(total + current)


def read_number(reply: str | None) -> float | None:
    """The first number in a reply, digits or number words, whichever starts first; None if none."""
    if reply is None:
        return None
    text = str(reply).strip().lower()
    digits = _DIGITS.search(text)
    run_start, run = None, []
    for m in _WORD.finditer(text):
        w = m.group(0)
        if w in _NUMBER_WORDS:
            run_start = m.start() if run_start is None else run_start
            run.append(w)
        elif run_start is not None and w != "and":
            break
    if digits is not None and (run_start is None or digits.start() < run_start):
        return float(digits.group(0))
    return _words_value(run) if run else None


def _float_or_none(x) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def mra_hits(pred: float | None, truth: float | None) -> list[bool]:
    if pred is None or truth is None:
        return list(NO_HITS)
    if truth == 0:
        return [pred == 0] * len(TOLERANCES)
    rel = abs(pred - truth) / truth
    return [bool(rel <= tol) for tol in TOLERANCES]


def score(question_type: str, prediction: str, ground_truth: str, options: list[str] | None = None) -> Scored:
    """One reply scored as lmms-eval scores it (`options` is unused: lmms-eval reads only the letter)."""
    if is_numeric(question_type):
        pred = read_number(prediction)
        return mra_scored(pred, mra_hits(pred, _float_or_none(ground_truth)))
    token = first_token(prediction)
    return Scored(1.0 if token.lower() == str(ground_truth).lower() else 0.0, token or None)
