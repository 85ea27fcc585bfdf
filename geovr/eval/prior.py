"""Blind baselines: what answering without the video scores, learned from the training questions.

- The answer prior: every question answered with the best constant for its type. A student that
  does not beat it has learned nothing, from the frames or from the question.
- The question prior: the best constant for each distinct question text (the prompt, options
  left out) asked at least `QUESTION_PRIOR_SUPPORT` times in training, the answer prior otherwise.
  It knows what the question names (a lamp's size is the lamp's usual size) but not the video: a
  student above it has used the frames.

Best constant: for multiple choice the most frequent letter; for numeric the training ground truth
with the highest mean score over the training questions of the group (for MRA, roughly the value
closest to most answers, not the mean).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from .questions import Question
from .scoring import MRA_THRESHOLDS, aggregate, is_numeric, score_answer

QUESTION_PRIOR_SUPPORT = 5  # training questions a text needs before the question prior answers it apart


def _best_constant(qtype: str, qs: list[Question], scoring: str) -> str:
    if not is_numeric(qtype):
        return Counter(q.ground_truth for q in qs).most_common(1)[0][0]
    candidates = sorted({q.ground_truth for q in qs})
    return max(candidates, key=lambda c: (sum(score_answer(qtype, c, q.ground_truth, None, scoring).score
                                              for q in qs), c))


def fit_prior(train: list[Question], scoring: str) -> dict[str, str]:
    """{question_type: the constant answer} from the training questions."""
    by_type: dict[str, list[Question]] = defaultdict(list)
    for q in train:
        by_type[q.question_type].append(q)
    return {qtype: _best_constant(qtype, qs, scoring) for qtype, qs in by_type.items()}


def question_text(q: Question) -> str:
    """The prompt without its option lines: what a question asks, whatever order its options take."""
    options = set(q.options or ())
    return "\n".join(line for line in q.prompt.splitlines() if line.strip() not in options)


def fit_question_prior(train: list[Question], scoring: str, support: int = QUESTION_PRIOR_SUPPORT
                       ) -> dict[tuple[str, str], str]:
    """{(question_type, question_text): the constant answer} for texts asked `support`+ times."""
    by_text: dict[tuple[str, str], list[Question]] = defaultdict(list)
    for q in train:
        by_text[q.question_type, question_text(q)].append(q)
    return {key: _best_constant(key[0], qs, scoring) for key, qs in by_text.items() if len(qs) >= support}


def _report(test: list[Question], answer, scoring: str) -> dict:
    rows = []
    for q in test:
        s = score_answer(q.question_type, answer(q), q.ground_truth, list(q.options or []) or None, scoring)
        rows.append({"question_type": q.question_type, "score": s.score, "parsed": s.parsed,
                     "hits": s.hits or [False] * len(MRA_THRESHOLDS)})
    return aggregate(rows, scoring).to_dict()


def prior_report(train: list[Question], test: list[Question], scoring: str) -> dict:
    """The answer prior's scores on `test` as the harness reports a model's (`Report.to_dict()`),
    plus the constant answers under "answers". A test type absent from training is answered ""
    (scores 0)."""
    prior = fit_prior(train, scoring)
    return {**_report(test, lambda q: prior.get(q.question_type, ""), scoring), "answers": prior}


def question_prior_report(train: list[Question], test: list[Question], scoring: str,
                          support: int = QUESTION_PRIOR_SUPPORT) -> dict:
    """The question prior's scores on `test` (`Report.to_dict()`), plus "texts": how many question
    texts it answers apart and "answered_apart": how many test questions got such an answer."""
    prior, by_text = fit_prior(train, scoring), fit_question_prior(train, scoring, support)

    def answer(q: Question) -> str:
        return by_text.get((q.question_type, question_text(q)), prior.get(q.question_type, ""))

    apart = sum((q.question_type, question_text(q)) in by_text for q in test)
    return {**_report(test, answer, scoring), "texts": len(by_text), "answered_apart": apart}
