"""The VSI-Bench harness end to end with a tiny random Qwen3-VL and real (synthetic) videos."""
import json
import shutil

import pytest
import torch

from geovr.eval.generation import GenerationSettings
from geovr.eval.model_io import load_model, model_folder
from geovr.eval.questions import read_questions
from geovr.eval.vsibench import evaluate, main

CFG = {"model": "tiny", "data": "vsi"}


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir, torch.device("cpu"), torch.float32)


def _answers(output, task="vsibench"):
    rows = [json.loads(line) for line in (output / f"samples_{task}.jsonl").read_text().splitlines()]
    return {str(r["doc"]["id"]): r["resps"][0][0] for r in rows}, rows


def test_cli_scores_a_vsibench_folder(tiny_model_dir, vsibench_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--model", str(tiny_model_dir), "--data", str(vsibench_dir), "--output", str(out),
                 "--batch-size", "4", "--quiet", "--device", "cpu"]) == 0
    result = json.loads((out / "results.json").read_text())
    scores = result["results"]["vsibench"]
    assert result["n_samples"] == 6 and result["n_skipped"] == 0
    assert set(scores["scores"]) >= {"object_counting", "object_rel_direction", "object_rel_direction_easy",
                                     "route_planning", "room_size_estimation", "object_abs_distance"}
    tasks = ["object_counting", "object_abs_distance", "room_size_estimation", "object_rel_direction",
             "route_planning"]
    assert scores["overall"] == pytest.approx(sum(scores["scores"][t] for t in tasks) / 5)
    assert scores["thresholds"] == [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]
    _, rows = _answers(out)
    assert sorted(r["doc_id"] for r in rows) == list(range(6))
    for r in rows:
        assert {"doc", "target", "arguments", "resps", "filtered_resps"} <= set(r)
        assert ("MRA:.5:.95:.05" in r) != ("accuracy" in r)
        assert r["arguments"]["prompt"].startswith("These are frames of a video.\n")
    assert "| **overall**" in (out / "results.md").read_text()
    assert "overall" in capsys.readouterr().out
    empty = sum(not r["resps"][0][0].strip() for r in rows)
    assert result["n_empty_answers"] == empty
    assert (f"{empty} of 6 answers were empty" in (out / "results.md").read_text()) == (empty > 0)


def test_batched_generation_equals_one_by_one(loaded, vsibench_dir, tmp_path):
    model, tok = loaded
    qs = read_questions(str(vsibench_dir))
    settings = GenerationSettings(max_new_tokens=6)
    evaluate(model, tok, qs, tmp_path / "b6", CFG, settings, batch_size=6, progress=False)
    evaluate(model, tok, qs, tmp_path / "b1", CFG, settings, batch_size=1, progress=False)
    assert _answers(tmp_path / "b6")[0] == _answers(tmp_path / "b1")[0]


def test_resume_after_a_kill_loses_nothing_and_redoes_nothing(loaded, vsibench_dir, tmp_path):
    model, tok = loaded
    qs = read_questions(str(vsibench_dir))
    settings = GenerationSettings(max_new_tokens=4)
    full = evaluate(model, tok, qs, tmp_path / "full", CFG, settings, batch_size=2, progress=False)
    out = tmp_path / "killed"
    shutil.copytree(tmp_path / "full", out)
    (out / "results.json").unlink()
    lines = (out / "samples_vsibench.jsonl").read_text().splitlines(keepends=True)
    (out / "samples_vsibench.jsonl").write_text("".join(lines[:2]) + lines[2][:25])  # torn third line
    generated = []
    real = model.generate

    def counting(**kw):
        generated.append(kw["input_ids"].shape[0])
        return real(**kw)

    model.generate = counting
    try:
        resumed = evaluate(model, tok, qs, out, CFG, settings, batch_size=2, progress=False, share_prefix="off")
    finally:
        del model.generate
    assert sum(generated) == 4
    assert resumed["results"] == full["results"]
    assert _answers(out)[0] == _answers(tmp_path / "full")[0]
    assert len(_answers(out)[1]) == 6


def test_resume_refuses_another_runs_answers(loaded, vsibench_dir, tmp_path):
    model, tok = loaded
    qs = read_questions(str(vsibench_dir))[:2]
    evaluate(model, tok, qs, tmp_path, CFG, GenerationSettings(max_new_tokens=2), progress=False)
    with pytest.raises(ValueError, match="another run.*generation"):
        evaluate(model, tok, qs, tmp_path, {**CFG, "generation": "other"}, progress=False)
    evaluate(model, tok, qs, tmp_path, {**CFG, "generation": "other"}, overwrite=True, progress=False)


def test_unreadable_video_is_skipped_scored_zero_and_counted(loaded, vsibench_dir, tmp_path):
    model, tok = loaded
    root = tmp_path / "vsi"
    shutil.copytree(vsibench_dir, root)
    (root / "scannet" / "scene0011_00.mp4").write_bytes(b"\x00not a video" * 100)
    result = evaluate(model, tok, read_questions(str(root)), tmp_path / "out", CFG,
                      GenerationSettings(max_new_tokens=2), progress=False)
    assert result["n_skipped"] == 3 and result["n_samples"] == 6
    rows = _answers(tmp_path / "out")[1]
    skipped = [r for r in rows if r["skipped"]]
    assert {r["doc"]["scene_name"] for r in skipped} == {"scene0011_00"}
    assert all(r.get("accuracy", r.get("MRA:.5:.95:.05")) == 0.0 for r in skipped)


def test_synthetic_qa_and_a_geovr_checkpoint(tok, synthetic_root, tmp_path):
    from geovr.model.checkpoint import save_geovr
    from geovr.model.config import GeoVRConfig
    from geovr.model.geovr_model import GeoVRModel
    from geovr.model.tiny import tiny_qwen3vl

    ckpt = save_geovr(GeoVRModel(tiny_qwen3vl(tok, layers=4, hidden=64), GeoVRConfig.paper()), tmp_path / "ckpt",
                      tokenizer=tok)
    assert model_folder(ckpt) == ckpt / "base"
    out = tmp_path / "out"
    assert main(["--model", str(ckpt), "--data", str(synthetic_root / "train.jsonl"), "--output", str(out),
                 "--quiet", "--max-new-tokens", "3", "--device", "cpu"]) == 0
    result = json.loads((out / "results.json").read_text())
    n = len((synthetic_root / "train.jsonl").read_text().splitlines())
    assert result["n_samples"] == n and "spatial_qa" in result["results"]


def test_bad_model_path_is_a_clear_error(vsibench_dir, tmp_path, capsys):
    assert main(["--model", str(tmp_path), "--data", str(vsibench_dir), "--quiet"]) == 2
    assert "neither a HF Qwen3-VL folder" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--top-k", "-1"], ["--temperature", "0"], ["--top-p", "1.5"],
                                 ["--max-new-tokens", "0"]])
def test_impossible_generation_settings_are_usage_errors(tiny_model_dir, vsibench_dir, tmp_path, capsys, bad):
    """A value no run can use is argparse's usage error; one that only the protocol's sampling
    rules out (temperature 0 with sampling on) is the harness's, before the model loads."""
    try:
        code = main(["--model", str(tiny_model_dir), "--data", str(vsibench_dir), "--quiet", *bad])
    except SystemExit as exit_:
        code = exit_.code
        assert f"argument {bad[0]}: must be" in capsys.readouterr().err
    else:
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "sampling needs" in err
    assert code == 2


def test_scoring_is_recorded_and_a_finished_run_rescores_without_answering(loaded, vsibench_dir, tmp_path):
    from geovr.eval.scoring import score_answer

    model, tok = loaded
    qs = read_questions(str(vsibench_dir))
    out = tmp_path / "out"
    evaluate(model, tok, qs, out, CFG, GenerationSettings(max_new_tokens=2), progress=False)
    # plant replies on which the scorings disagree
    path = out / "samples_vsibench.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for r in rows:
        numeric = "MRA:.5:.95:.05" in r
        r["resps"] = [[f"{float(r['target'])}." if numeric else f"{r['target']})"]]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = {}
    for scoring in ("lmms-eval", "release", "lenient"):
        result = evaluate(None, tok, qs, out, CFG, GenerationSettings(max_new_tokens=2), progress=False,
                          scoring=scoring)  # model None: nothing may be answered again
        res = result["results"]["vsibench"]
        assert res["scoring"] == scoring and res["scoring_source"]
        assert ("lmms_eval_version" in res) == (scoring == "lmms-eval")
        assert f"--scoring {scoring}" in (out / "results.md").read_text()
        got[scoring] = res["scores"]
        for qtype in {r["doc"]["question_type"] for r in rows}:
            mine = [r for r in rows if r["doc"]["question_type"] == qtype]
            want = 100 * sum(score_answer(qtype, r["resps"][0][0], r["target"], scoring=scoring).score
                             for r in mine) / len(mine)
            assert res["scores"][qtype] == pytest.approx(want)
    # "3.0." reads as 3 in lmms-eval, not in the release; "B)" is wrong for lmms-eval, right for the release
    assert got["lmms-eval"]["object_counting"] == 100 and got["release"]["object_counting"] == 0
    assert got["lmms-eval"]["route_planning"] == 0 and got["release"]["route_planning"] == 100
    assert got["lenient"]["route_planning"] == 100 and got["lenient"]["object_counting"] == 100
