"""VSI-Bench scoring against hand-computed cases: the lenient reader, and where the three scorings
(lmms-eval, release, lenient) part ways. Per-sample identity with lmms-eval's own functions is
tests/eval/test_lmms_eval_parity.py."""
import math

import numpy as np
import pytest

from geovr.eval.scoring import (MRA_THRESHOLDS, MRA_TOLERANCES, aggregate, mra, mra_hits, parse_number,
                                parse_option, score_answer)


def test_thresholds_written_out():
    assert MRA_THRESHOLDS == (0.50, 0.55, 0.60, 0.65, 0.70, 0.75, 0.80, 0.85, 0.90, 0.95)
    assert np.allclose(MRA_TOLERANCES, 1 - np.array(MRA_THRESHOLDS))


@pytest.mark.parametrize("pred, truth, expected", [
    (10, 10, 1.0),      # exact
    (9.6, 10, 1.0),     # rel 0.04 < 0.05
    (9.5, 10, 0.9),     # rel 0.05: not < 0.05 (strict), < 0.10 ...
    (9.0, 10, 0.8),     # rel 0.10: passes 0.50 .. 0.15 (8 of 10)
    (5.5, 10, 0.1),     # rel 0.45: only tolerance 0.50
    (5.0, 10, 0.0),     # rel 0.50: not < 0.50
    (15.0, 10, 0.0),    # rel 0.50 above
    (14.9, 10, 0.1),
    (-10, 10, 0.0),     # rel 2
    (2.0, 2.1, 1.0),    # rel 0.0476
    (None, 10, 0.0),    # unparsable
    (float("nan"), 10, 0.0),
    (float("inf"), 10, 0.0),
    (0.0, 0.0, 1.0),    # y = 0: exact zero only
    (0.01, 0.0, 0.0),
    (None, 0.0, 0.0),
])
def test_mra_hand_computed(pred, truth, expected):
    assert mra(pred, truth) == pytest.approx(expected)


def test_mra_matches_an_independent_formula_away_from_boundaries():
    rng = np.random.default_rng(0)
    theta = np.linspace(0.5, 0.95, 10)
    for _ in range(2000):
        y = float(rng.uniform(0.1, 50))
        p = float(y * rng.uniform(0, 2))
        rel = abs(p - y) / y
        if np.min(np.abs(rel - (1 - theta))) < 1e-9:
            continue
        assert mra(p, y) == pytest.approx(float(np.mean(rel < 1 - theta)))


def test_mra_hits_are_per_threshold():
    assert mra_hits(9.0, 10) == [True] * 8 + [False] * 2


@pytest.mark.parametrize("text, value", [
    ("3", 3.0), ("3.", 3.0), ("2.5 meters", 2.5), ("about 1,5 m", 1.5), ("1e2", 100.0), ("-4", -4.0),
    (".5", 0.5), ("three", 3.0), ("There are twelve chairs.", 12.0), ("<think>maybe 7</think> 4", 4.0),
    ("<answer>6</answer>", 6.0), ("", None), ("no idea", None), ("A", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


OPTIONS = ["A. chair", "B. table", "C. sofa", "D. lamp"]


@pytest.mark.parametrize("text, letter", [
    ("B", "B"), ("B.", "B"), ("(C)", "C"), ("C)", "C"), ("**D**", "D"), ("D. lamp", "D"), ("B) table", "B"),
    ("Answer: A", "A"), ("The answer is C.", "C"), ("option b", "B"), ("b", "B"), (" [A] ", "A"),
    ("a chair", None), ("Based on the video", None), ("", None), ("42", None),
    ("table", "B"), ("Sofa.", "C"),
])
def test_parse_option(text, letter):
    assert parse_option(text, OPTIONS) == letter


def test_parse_option_without_options_does_not_guess_from_text():
    assert parse_option("table") is None


def test_score_answer_numeric_and_choice():
    s = score_answer("object_counting", "4", "4", scoring="lenient")
    assert s.score == 1.0 and s.parsed == 4.0 and len(s.hits) == 10
    assert score_answer("object_counting", "four chairs", "5", scoring="lenient").score == pytest.approx(0.6)  # rel 0.2: 6 of 10
    assert score_answer("room_size_estimation", "big", "20", scoring="lenient").score == 0.0
    assert score_answer("object_rel_direction_hard", "B.", "B", scoring="lenient").score == 1.0
    assert score_answer("route_planning", "(C)", "B", scoring="lenient").score == 0.0
    with pytest.raises(ValueError, match="question_type"):
        score_answer("object_colour", "B", "B")
    with pytest.raises(ValueError, match="non-numeric ground truth"):
        score_answer("object_counting", "3", "three", scoring="lenient")


def test_aggregate_merges_direction_levels_and_averages_tasks():
    rows = [
        {"question_type": "object_counting", "score": 1.0, "parsed": 3.0, "hits": [True] * 10},
        {"question_type": "object_counting", "score": 0.0, "parsed": None, "hits": [False] * 10},
        {"question_type": "object_rel_direction_easy", "score": 1.0, "parsed": "A"},
        {"question_type": "object_rel_direction_medium", "score": 0.0, "parsed": "B"},
        {"question_type": "object_rel_direction_medium", "score": 1.0, "parsed": "B"},
        {"question_type": "object_rel_direction_hard", "score": 0.0, "parsed": None},
        {"question_type": "route_planning", "score": 1.0, "parsed": "C"},
    ]
    r = aggregate(rows)
    assert r.scores["object_counting"] == 50.0
    # levels: easy 100, medium 50, hard 0 -> their mean, not the mean over the 4 questions (50)
    assert r.scores["object_rel_direction"] == pytest.approx(50.0)
    assert r.counts["object_rel_direction"] == 4
    assert r.overall == pytest.approx((50.0 + 50.0 + 100.0) / 3)
    assert r.unparsable["object_counting"] == 1 and r.unparsable["object_rel_direction"] == 1
    assert r.mra_by_threshold["object_counting"]["0.95"] == 50.0
    assert math.isnan(aggregate([]).overall)


@pytest.mark.parametrize("qtype, reply, truth, lmms, release, lenient", [
    ("object_counting", "9.5", "10", 1.0, 1.0, 0.9),        # rel 0.05 vs 1 - 0.95 = 0.05000000000000004 in
                                                            # floats: passes <= and <; not lenient's written 0.05
    ("object_counting", "5", "10", 0.1, 0.0, 0.0),          # rel 0.5: <= 0.5 only in lmms-eval
    ("object_counting", "3.0.", "3", 1.0, 0.0, 1.0),        # float("3.0.") fails in the release
    ("object_counting", " 3 ", "3", 1.0, 1.0, 1.0),
    ("object_counting", "2.5 meters", "2.5", 1.0, 0.0, 1.0),
    ("object_counting", "twenty-one", "21", 1.0, 0.0, 1.0),  # lenient reads "twenty": rel 0.048 < 0.05
    ("object_counting", "three hundred and two", "302", 1.0, 0.0, 0.0),
    ("object_counting", "1,5", "1.5", 0.4, 0.0, 1.0),        # lmms-eval reads 1: rel 1/3
    ("object_counting", "1e2", "100", 0.0, 1.0, 1.0),        # lmms-eval reads 1 (no exponents)
    ("object_counting", "0", "0", 1.0, 1.0, 1.0),
    ("object_counting", "no idea", "4", 0.0, 0.0, 0.0),
    ("route_planning", "B", "B", 1.0, 1.0, 1.0),
    ("route_planning", "B.", "B", 1.0, 1.0, 1.0),
    ("route_planning", "b", "B", 1.0, 0.0, 1.0),             # lmms-eval ignores case; the release does not
    ("route_planning", "B)", "B", 0.0, 1.0, 1.0),            # first token "B)" / first character "B"
    ("route_planning", "(B)", "B", 0.0, 0.0, 1.0),
    ("route_planning", " B", "B", 0.0, 1.0, 1.0),            # lmms-eval splits on one space first
    ("route_planning", "Because", "B", 0.0, 1.0, 0.0),       # the release's first character
    ("route_planning", "", "B", 0.0, 0.0, 0.0),
])
def test_the_three_scorings_part_ways(qtype, reply, truth, lmms, release, lenient):
    options = ["A. left", "B. right", "C. back"] if qtype == "route_planning" else None
    got = {s: score_answer(qtype, reply, truth, options, scoring=s).score for s in ("lmms-eval", "release", "lenient")}
    assert got == pytest.approx({"lmms-eval": lmms, "release": release, "lenient": lenient})


def test_default_scoring_is_lmms_eval_and_unknown_scoring_is_refused():
    assert score_answer("object_counting", "9.5", "10").score == 1.0
    with pytest.raises(ValueError, match="choose one of"):
        score_answer("object_counting", "9.5", "10", scoring="strict")


def test_release_aggregate_pools_direction_levels_and_divides_by_eight():
    rows = [
        {"question_type": "object_rel_direction_easy", "score": 1.0, "parsed": "A"},
        {"question_type": "object_rel_direction_medium", "score": 0.0, "parsed": "B"},
        {"question_type": "object_rel_direction_medium", "score": 1.0, "parsed": "B"},
        {"question_type": "object_rel_direction_hard", "score": 0.0, "parsed": "C"},
        {"question_type": "route_planning", "score": 1.0, "parsed": "C"},
    ]
    r = aggregate(rows, scoring="release")
    assert r.scores["object_rel_direction"] == pytest.approx(50.0)  # 2 of 4 questions, pooled
    assert r.overall == pytest.approx((50.0 + 100.0) / 8)  # six tasks missing count 0
    lm = aggregate(rows, scoring="lmms-eval")
    assert lm.scores["object_rel_direction"] == pytest.approx((100.0 + 50.0 + 0.0) / 3)
    assert lm.overall == pytest.approx((50.0 + 100.0) / 2)
    assert lm.to_dict()["scoring"] == "lmms-eval" and lm.to_dict()["lmms_eval_version"] == "0.7.3"
