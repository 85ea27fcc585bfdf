"""The answer prior: the score of answering every question with the best constant for its type,
learned from the training questions and never looking at the video. A student that does not beat
it has learned nothing from the frames.

Per question type: multiple choice answers the training set's most frequent letter; numeric answers
the training ground truth with the highest mean score over the training questions of that type
(for MRA, roughly the value closest to most answers, not the mean).
"""
from __future__ import annotations

from collections import Counter, defaultdict

from .questions import Question
from .scoring import MRA_THRESHOLDS, aggregate, is_numeric, score_answer


def fit_prior(train: list[Question], scoring: str) -> dict[str, str]:
    """{question_type: the constant answer} from the training questions."""
    by_type: dict[str, list[Question]] = defaultdict(list)
    for q in train:
        by_type[q.question_type].append(q)
    prior = {}
    for qtype, qs in by_type.items():
        if not is_numeric(qtype):
            prior[qtype] = Counter(q.ground_truth for q in qs).most_common(1)[0][0]
            continue
        candidates = sorted({q.ground_truth for q in qs})
        prior[qtype] = max(candidates, key=lambda c: (sum(score_answer(qtype, c, q.ground_truth, None, scoring).score
                                                          for q in qs), c))
    return prior


def prior_report(train: list[Question], test: list[Question], scoring: str) -> dict:
    """The prior's scores on `test` as the harness reports a model's (`Report.to_dict()`), plus the
    constant answers under "answers". A test type absent from training is answered "" (scores 0)."""
    prior = fit_prior(train, scoring)
    rows = []
    for q in test:
        s = score_answer(q.question_type, prior.get(q.question_type, ""), q.ground_truth,
                         list(q.options or []) or None, scoring)
        rows.append({"question_type": q.question_type, "score": s.score, "parsed": s.parsed,
                     "hits": s.hits or [False] * len(MRA_THRESHOLDS)})
    return {**aggregate(rows, scoring).to_dict(), "answers": prior}
