"""`--scoring lmms-eval` against lmms-eval's own VSI-Bench scorer (lmms-eval 0.7.3,
lmms_eval/tasks/vsibench/utils.py): the same per-sample scores and the same aggregate, on
hand-made and random replies (every MRA boundary, y = 0, "3.0.", "B)", number words, unparsable and
chain-of-thought text).

lmms-eval is installed for tests only (`.ci/torchvision_env`: `--no-deps` plus the modules its
scorer imports: datasets, pandas, pyyaml, loguru); its VSI-Bench utils are loaded from the file,
without the package's heavy `__init__`. Skipped where lmms-eval is not installed."""
import importlib.util
import math
import random
from pathlib import Path

import numpy as np
import pytest

from geovr.eval.scoring import (DIRECTION_LEVELS, LMMS_EVAL_VERSION, NUMERIC_TASKS, aggregate, is_numeric,
                                score_answer)


def _lmms_vsibench():
    spec = importlib.util.find_spec("lmms_eval")
    if spec is None:
        pytest.skip("lmms-eval is not installed")
    path = Path(spec.submodule_search_locations[0]) / "tasks" / "vsibench" / "utils.py"
    mod_spec = importlib.util.spec_from_file_location("lmms_eval_vsibench_utils", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


lmms = pytest.fixture(scope="module")(lambda: _lmms_vsibench())


def test_the_version_we_mirror_is_installed():
    from importlib.metadata import version

    if importlib.util.find_spec("lmms_eval") is None:
        pytest.skip("lmms-eval is not installed")
    assert version("lmms-eval") == LMMS_EVAL_VERSION


CHOICE_TYPES = ("object_rel_distance", "route_planning", "obj_appearance_order") + DIRECTION_LEVELS
TOLERANCES = [1 - t for t in np.linspace(0.5, 0.95, 10)]


def _lmms_score(lmms, qtype, reply, truth):
    doc = lmms.vsibench_process_results({"question_type": qtype, "ground_truth": truth}, [reply])["vsibench_overall"]
    return doc["MRA:.5:.95:.05" if is_numeric(qtype) else "accuracy"], doc


def _numeric_replies(rng: random.Random, y: float) -> list[str]:
    out = []
    for tol in TOLERANCES:  # both sides of every boundary, and the boundary itself
        for v in (y * (1 + tol), y * (1 - tol), y + tol * y, y - tol * y):
            out += [repr(v), f"{v:.3f}", f"{v:g} meters"]
    out += [str(y), f"{y}.", f"{y:.1f}.", f"about {y} m", f"-{y}", f"{int(y)},5", f"{y:e}", "1e2", ".5",
            "three", "Three chairs.", "twenty-one", "three hundred and twenty-one", "two thousand and five",
            "one apple, room 2", "room 2, one apple", "", " ", "no idea", "none", "A", "<think>maybe 7</think> 4",
            "Let me think step by step. The table is 1.2 m wide, so the answer is 3.", "9" * 400, "N/A", "0", "0.0"]
    out += [f"{rng.uniform(0, 3 * y):.{rng.randint(0, 4)}f}" for _ in range(40)]
    return out


def _choice_replies(rng: random.Random) -> list[str]:
    out = []
    for letter in "ABCD":
        for fmt in ("{}", "{}.", "{})", "({})", " {}", "{} ", "{}. chair", "{}.. ", "**{}**", "Answer: {}",
                    "The answer is {}.", "{}\n", "{}\nbecause", "[{}]"):
            out += [fmt.format(letter), fmt.format(letter.lower())]
    out += ["", " ", "chair", "Based on the video, B", "<think>A or B</think> B", "42", "B.C.", "\tB"]
    out += ["".join(rng.choice("ABCDabcd .)(") for _ in range(rng.randint(1, 4))) for _ in range(60)]
    return out


def test_per_sample_scores_equal_lmms_evals(lmms):
    rng = random.Random(0)
    rows, docs, n = [], [], 0
    for qtype in NUMERIC_TASKS:
        for y in (1.0, 2.0, 3.0, 10.0, 0.7, 4.35, 17.0, 123.4):
            for reply in _numeric_replies(rng, y):
                want, doc = _lmms_score(lmms, qtype, reply, str(y))
                got = score_answer(qtype, reply, str(y), scoring="lmms-eval")
                assert got.score == pytest.approx(want, abs=1e-12), (qtype, reply, y, got, want)
                rows.append({"question_type": qtype, "score": got.score, "parsed": got.parsed, "hits": got.hits})
                docs.append(doc)
                n += 1
    for qtype in CHOICE_TYPES:
        for truth in "ABCD":
            for reply in _choice_replies(rng):
                want, doc = _lmms_score(lmms, qtype, reply, truth)
                got = score_answer(qtype, reply, truth, ["A. a", "B. b", "C. c", "D. d"], scoring="lmms-eval")
                assert got.score == want, (qtype, reply, truth)
                rows.append({"question_type": qtype, "score": got.score, "parsed": got.parsed, "hits": got.hits})
                docs.append(doc)
                n += 1
    assert n > 5000
    # at least some boundary cases really are on a boundary, and both ways
    assert any(0 < d.get("MRA:.5:.95:.05", 0) < 1 for d in docs)
    # the aggregate: per task, the rel_direction levels averaged, overall
    theirs = lmms._compute_all_subscores(docs)
    ours = aggregate(rows, scoring="lmms-eval")
    for key, value in theirs.items():
        if key == "overall":
            assert ours.overall / 100 == pytest.approx(value, abs=1e-12)
            continue
        task = key.rsplit("_MRA", 1)[0] if "_MRA" in key else key.rsplit("_accuracy", 1)[0]
        assert ours.scores[task] / 100 == pytest.approx(value, abs=1e-12), key
    assert round(ours.overall / 100, 6) == lmms.vsibench_aggregate_overall(docs)


def test_number_reading_equals_extract_number(lmms):
    from geovr.eval.scoring.lmms_eval import read_number

    rng = random.Random(1)
    words = list(lmms._NUMBER_WORDS) + ["and", "apple", "-", " ", "1", "2.5", ".", "x3", "3x", "-7", "A"]
    texts = [" ".join(rng.choice(words) for _ in range(rng.randint(0, 6))) for _ in range(3000)]
    texts += ["twenty-one", "Twenty One", "one hundred", "hundred", "thousand and one", "a thousand", None, ""]
    for t in texts:
        assert read_number(t) == lmms.extract_number(t), t


def test_zero_ground_truth(lmms):
    """lmms-eval raises ZeroDivisionError for y = 0 (it catches only TypeError); geovr scores an
    exact 0 as right, anything else wrong (VSI-Bench has no such question)."""
    with pytest.raises(ZeroDivisionError):
        _lmms_score(lmms, "object_counting", "1", "0")
    assert score_answer("object_counting", "0", "0").score == 1.0
    assert score_answer("object_counting", "1", "0").score == 0.0
    # an unreadable ground truth scores 0 in both
    assert _lmms_score(lmms, "object_counting", "3", "three")[0] == 0.0
    assert score_answer("object_counting", "3", "three").score == 0.0
    assert not math.isnan(score_answer("object_counting", "9" * 400, "3").score)
