"""The answer prior: the best constant answer per question type, by hand."""
import pytest

from geovr.eval.prior import fit_prior, prior_report
from geovr.eval.questions import Question


def q(qtype: str, truth: str, options=None) -> Question:
    return Question(f"{qtype}-{truth}", qtype, "?", truth, "v.mp4", options)


OPTS = ("A. x", "B. y", "C. z", "D. w")
TRAIN = [q("object_rel_distance", "A", OPTS), q("object_rel_distance", "B", OPTS), q("object_rel_distance", "B", OPTS),
         q("object_counting", "2"), q("object_counting", "2"), q("object_counting", "3"), q("object_counting", "9")]


def test_the_prior_is_the_most_frequent_letter_and_the_best_scoring_number():
    prior = fit_prior(TRAIN, "lenient")
    assert prior == {"object_rel_distance": "B", "object_counting": "2"}  # 2 scores 1, 1, ~0.6, 0 on the training


def test_the_prior_scores_test_questions_like_a_model():
    test = [q("object_rel_distance", "B", OPTS), q("object_rel_distance", "C", OPTS), q("object_counting", "2"),
            q("room_size_estimation", "20")]
    r = prior_report(TRAIN, test, "lenient")
    assert r["scores"]["object_rel_distance"] == pytest.approx(50.0)
    assert r["scores"]["object_counting"] == pytest.approx(100.0)
    assert r["scores"]["room_size_estimation"] == 0.0  # no training question of the type
    assert r["answers"]["object_counting"] == "2" and set(r["scores"]) >= {"object_counting", "object_rel_distance"}
