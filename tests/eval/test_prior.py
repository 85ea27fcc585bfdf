"""The answer prior: the best constant answer per question type, by hand."""
import pytest

from geovr.eval.prior import fit_prior, prior_report, question_prior_report, question_text
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


def test_the_question_prior_answers_each_often_asked_text_apart():
    def sized(name: str, truth: str) -> Question:
        return Question(f"{name}-{truth}", "object_size_estimation", f"How long is the {name}?", truth, "v.mp4")

    train = [sized("bed", "200")] * 5 + [sized("ball", "30")] * 4 + [sized("ball", "40")] + [sized("lamp", "150")] * 4
    test = [sized("bed", "200"), sized("ball", "30"), sized("lamp", "150")]
    # the type's best constant is 200 (5 exact, lamp's 150 within 25 %); lamp (4 < 5 questions) gets it
    plain = prior_report(train, test, "lenient")
    r = question_prior_report(train, test, "lenient")
    assert r["texts"] == 2 and r["answered_apart"] == 2
    assert plain["answers"]["object_size_estimation"] == "200"
    # bed and ball exact; lamp answered 200: |200 - 150| / 150 = 0.33 passes 4 of the 10 MRA thresholds
    assert r["scores"]["object_size_estimation"] == pytest.approx(100 * (1 + 1 + 0.4) / 3)
    assert plain["scores"]["object_size_estimation"] < r["scores"]["object_size_estimation"]
    assert question_prior_report(train, test, "lenient", support=4)["scores"]["object_size_estimation"] == 100.0
    # multiple choice: the same question with its options shuffled is one text
    a = Question("1", "object_rel_distance", "Which is closest?\nA. x\nB. y", "A", "v.mp4", ("A. x", "B. y"))
    b = Question("2", "object_rel_distance", "Which is closest?\nA. y\nB. x", "B", "v.mp4", ("A. y", "B. x"))
    assert question_text(a) == question_text(b) == "Which is closest?"
