"""`lenient` scoring: geovr's own reading of free-form answers, for models that do not answer in
VSI-Bench's format (chain-of-thought, "2.5 meters", "(B)").

- Numeric: the first number in the reply ("2.5 meters", "1,5", "1e2") or a number word up to
  twenty; MRA counts |y^ - y| / |y| < 1 - theta (strict) with the tolerances 1 - theta written out,
  so that a boundary such as a relative error of exactly 0.45 is decided as the decimal says. y = 0
  counts only an exact 0.
- Multiple choice: the option letter read leniently ("B", "B.", "(B)", "**B**", "Answer: B", or
  the text of exactly one option).
`<think>` blocks and an `<answer>` wrapper are dropped first.
"""
from __future__ import annotations

import math
import re

from .tasks import MRA_THRESHOLDS, Scored, is_numeric, mra_scored

MRA_TOLERANCES = (0.50, 0.45, 0.40, 0.35, 0.30, 0.25, 0.20, 0.15, 0.10, 0.05)
assert len(MRA_TOLERANCES) == len(MRA_THRESHOLDS)

_NUMBER = re.compile(r"[-+]?(?:\d+(?:[.,]\d+)?|\.\d+)(?:[eE][-+]?\d+)?")
_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty".split())}
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_LETTER = re.compile(r"^[\s*_`'\"(\[{<]*(?:(?:the\s+)?(?:answer|option)\s*(?:is)?\s*[:\-]?\s*)?"
                     r"[(\[{<]?([A-Za-z])(?:[)\]}>.:,;!*_`'\"]|\s|$)", re.I)


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


def score(question_type: str, prediction: str, ground_truth: str, options: list[str] | None = None) -> Scored:
    """Score one prediction against its ground truth (a number, or an option letter)."""
    if is_numeric(question_type):
        try:
            truth = float(ground_truth)
        except (TypeError, ValueError):
            raise ValueError(f"numeric question ({question_type}) with a non-numeric ground truth "
                             f"{ground_truth!r}") from None
        pred = parse_number(prediction)
        hits = mra_hits(pred, truth)
        return mra_scored(pred, hits)
    letter = parse_option(prediction, options)
    truth_letter = parse_option(str(ground_truth), options)
    if truth_letter is None:
        raise ValueError(f"multiple-choice question ({question_type}) whose ground truth "
                         f"{ground_truth!r} is not an option letter")
    return Scored(float(letter == truth_letter), letter)


