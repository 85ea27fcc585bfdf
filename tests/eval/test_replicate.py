"""The replication script: its two configs differ only in the geometric losses, and a small run
trains, scores and probes end to end."""
import copy
import json

import numpy as np
import pytest

from geovr.eval.replicate import _train_args, main
from geovr.train.main import parse_config


def test_the_two_runs_differ_only_in_the_geometric_losses(tmp_path):
    text, _ = parse_config(_train_args("text_only", 3, 50, tmp_path, False))
    geo, _ = parse_config(_train_args("geovr", 3, 50, tmp_path, False))
    a, b = text.to_dict(), geo.to_dict()
    assert a["model"].pop("geovr") == "off" and b["model"].pop("geovr") == "paper"
    a["train"].pop("output"), b["train"].pop("output")
    assert a == b
    assert text.train.seed == 3 and text.train.steps == 50 and text.data.synthetic_scenes == 256
    assert text.data.synthetic_colour_by_category and not text.model.freeze_vision
    assert parse_config(_train_args("geovr", 0, None, tmp_path, False))[0].train.steps == 2000  # the config's


def test_small_replication_end_to_end(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["--out", str(out), "--work", str(work), "--steps", "2", "--train-scenes", "2",
                 "--test-scenes", "3", "--frame-size", "96x128", "--quiet", "--jobs", "2"]) == 0
    assert {p.name for p in (work / "runs").glob("*.log")} == {"text_only_seed0.log", "geovr_seed0.log"}
    res = json.loads((out / "results.json").read_text())
    assert set(res["results"]) == {"init", "text_only", "geovr"}
    for runs in res["results"].values():
        assert len(runs) == 1
        assert set(runs[0]["probe"]) == {str(k) for k in range(7)}  # 6 layers: hidden states 0..6
        assert "overall" in runs[0]["qa"]
    report = (out / "results.md").read_text()
    assert "| **overall** |" in report and "GeoVR minus text-only" in report
    assert "| planted token_rgb_shuffled |" in report and "Median chosen penalty" in report
    assert "| task | answer prior | question prior | init | text_only | geovr |" in report
    assert ("| task | text_only - prior | geovr - prior | text_only - question prior | geovr - question prior "
            "| geovr - text_only |") in report
    assert res["question_prior"]["texts"] >= 0 and "overall" in res["question_prior"]
    assert 0 <= res["prior"]["overall"] <= 100 and res["prior"]["answers"]  # 2 training scenes: some types only
    assert (out / "probe.png").stat().st_size > 1000 and (out / "pca.png").stat().st_size > 1000
    # finished runs are reused: a second call trains nothing
    assert main(["--out", str(out), "--work", str(work), "--steps", "2", "--train-scenes", "2",
                 "--test-scenes", "3", "--frame-size", "96x128", "--quiet"]) == 0
    assert json.loads((out / "results.json").read_text())["results"] == res["results"]


def test_interval95_by_hand():
    from geovr.eval.replicate import interval95

    m, half = interval95([1.0, 2.0, 3.0])  # sd 1, n 3: t(0.975, 2) = 4.303
    assert m == 2.0 and half == pytest.approx(4.303 / 3 ** 0.5)
    assert interval95([0.5, 0.5])[1] == 0.0
    assert np.isnan(interval95([0.7])[1]) and interval95([0.7])[0] == 0.7


def test_a_failed_training_run_names_its_log(tmp_path, monkeypatch):
    import geovr.eval.replicate as rep

    monkeypatch.setattr(rep.sys, "executable", "false")  # every training process exits 1
    with pytest.raises(RuntimeError, match=r"training (geovr|text_only)_seed0 failed with exit code 1; its log: \S*/runs/(geovr|text_only)_seed0\.log"):
        rep.train_all([("geovr", 0), ("text_only", 0)], 1, tmp_path, False, ("data.synthetic_scenes=1",), parallel=2)
    assert (tmp_path / "train_world" / "train.jsonl").is_file()  # written once, before the runs


def test_qa_differences_against_the_prior_by_hand():
    from geovr.eval.replicate import qa_difference_lines

    def run(size: float, count: float, room: float = 50.0) -> dict:
        return {"qa": {"scores": {"object_counting": count, "object_size_estimation": size, "room_size_estimation": room},
                       "overall": (size + count) / 2}}

    results = {"text_only": [run(50, 80, 40), run(55, 80, 41), run(60, 80, 42)],  # size - prior: 20, 25, 30
               "geovr": [run(70, 81), run(70, 79), run(70, 80)]}
    prior = {"scores": {"object_counting": 80.0, "object_size_estimation": 30.0, "room_size_estimation": 50.0},
             "overall": 55.0}
    rows = {r.split(" | ")[0].strip("| *"): r for r in qa_difference_lines(results, prior) if r.startswith("| ")}
    half = 4.303 * 5 / 3 ** 0.5  # sd 5, n 3: 12.4
    assert rows["object_size_estimation"] == ("| object_size_estimation | **+25.0 [+12.6, +37.4]** "
                                              "| **+40.0 [+40.0, +40.0]** | **+15.0 [+2.6, +27.4]** |")
    assert f"{25 - half:.1f}" == "12.6"
    # counting: text-only ties the prior exactly (interval [0, 0], not bold); GeoVR's interval straddles 0
    assert "| +0.0 [+0.0, +0.0] | +0.0 [-2.5, +2.5] |" in rows["object_counting"]
    assert rows["room_size_estimation"].startswith("| room_size_estimation | **-9.0 [-11.5, -6.5]** | +0.0 [+0.0, +0.0] |")
    assert rows["overall"].count("**") == 8  # the label's bold and three significant differences
    assert qa_difference_lines(results, None) == []
    # the question prior's columns sit between: text-only and GeoVR minus it
    question = {"scores": {"object_counting": 80.0, "object_size_estimation": 60.0, "room_size_estimation": 50.0},
                "overall": 70.0}
    rows = {r.split(" | ")[0].strip("| *"): r for r in qa_difference_lines(results, prior, question) if r.startswith("| ")}
    assert rows["object_size_estimation"] == ("| object_size_estimation | **+25.0 [+12.6, +37.4]** "
                                              "| **+40.0 [+40.0, +40.0]** | -5.0 [-17.4, +7.4] "
                                              "| **+10.0 [+10.0, +10.0]** | **+15.0 [+2.6, +27.4]** |")


def test_an_interrupted_run_continues_from_its_last_checkpoint(tmp_path):
    import shutil

    import geovr.eval.replicate as rep

    extra = ("data.synthetic_scenes=2",)  # two conversations: one micro-batch
    rep.train_all([("text_only", 0)], 2, tmp_path, False, extra)
    run = tmp_path / "runs" / "text_only_seed0"
    shutil.rmtree(run / "final")  # killed after its last checkpoint, before the export
    rep.train_all([("text_only", 0)], 3, tmp_path, False, extra)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_at"] == 2 and summary["steps"] == 3
    assert (run / "final" / "geovr_config.json").is_file()


def test_each_ablation_is_the_geovr_run_with_one_geometric_loss(tmp_path):
    from geovr.eval.replicate import ABLATIONS, GEOMETRIC_LOSSES

    geo = parse_config(_train_args("geovr", 1, 50, tmp_path, False))[0].to_dict()
    assert set(ABLATIONS) == {"pose_only", "depth_only", "align_only", "scale_only"}
    for variant, kept in ABLATIONS.items():
        cfg = parse_config(_train_args(variant, 1, 50, tmp_path, False))[0]
        assert cfg.train.output == str(tmp_path / "runs" / f"{variant}_seed1")
        d = cfg.to_dict()
        assert {k: d["loss"][k] for k in GEOMETRIC_LOSSES} == {k: (geo["loss"][k] if k == kept else 0.0)
                                                                for k in GEOMETRIC_LOSSES}
        assert geo["loss"][kept] > 0
        g = copy.deepcopy(geo)
        for part in (d, g):
            part["train"].pop("output")
            for k in GEOMETRIC_LOSSES:
                part["loss"].pop(k)
        assert d == g  # nothing else differs


def test_ablation_rows_pair_each_run_with_its_seeds_text_only_by_hand(tmp_path, monkeypatch):
    from geovr.eval.replicate import ablation_lines

    def run(seed: int, depth: float, size: float) -> dict:
        probe = {str(k): {p: {"r2": depth if p == "depth" else 0.1} for p in
                          ("depth", "pose_translation", "pose_rotation", "scale")} for k in range(3)}
        probe["0"]["depth"]["r2"] = 9.0  # the embeddings are not in the 1..L mean
        return {"seed": seed, "probe": probe, "qa": {"scores": {"object_size_estimation": size}, "overall": size}}

    results = {"text_only": [run(0, 0.1, 50), run(1, 0.2, 60), run(2, 0.3, 70)],
               "geovr": [run(0, 0.5, 50), run(1, 0.6, 61), run(2, 0.7, 72)],
               "depth_only": [run(1, 0.45, 66)]}  # one seed, the second: paired with text-only's seed 1
    assert ablation_lines({k: v for k, v in results.items() if k != "depth_only"}) == []
    rows = {r.split(" | ")[0].strip("| "): r for r in ablation_lines(results) if r.startswith("| ")}
    assert rows["geovr"].startswith("| geovr | 3 | **+0.40 [+0.40, +0.40]** | +0.00 [+0.00, +0.00] |")
    assert rows["depth_only"] == "| depth_only | 1 | +0.25 | +0.00 | +0.00 | +0.00 | +6.0 | +6.0 |"
    # the pictures: probe.png has the main runs over every seed, ablation.png the ablation's seed only
    import geovr.eval.probe as probe

    from geovr.eval.replicate import plots

    drawn, real_plot = [], probe.plot
    monkeypatch.setattr(probe, "plot", lambda runs, path, title, colours:
                        (drawn.append((path.name, runs)), real_plot(runs, path, title, colours))[1])
    paths = plots(results, tmp_path, [1])
    assert [p.name for p in paths] == ["probe.png", "ablation.png"] and all(p.stat().st_size > 1000 for p in paths)
    (_, main_runs), (_, alone) = drawn
    assert set(main_runs) == {"text_only", "geovr"} and "lo" in main_runs["geovr"]["1"]["depth"]
    assert set(alone) == {"text_only", "geovr", "depth_only"}
    assert alone["geovr"]["1"]["depth"] == {"r2": 0.6}  # seed 1 alone, no band


def test_ablation_seeds_must_be_among_the_seeds(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--work", str(tmp_path), "--seeds", "0", "--ablation", "1"])
    assert "--ablation seeds [1] are not in --seeds [0]" in capsys.readouterr().err


def test_the_grouping_arm_trains_the_same_questions_grouped_or_not(tmp_path):
    """Each variant on the per-question file: one question a sample (micro-batch 2) and grouped by
    video (4 a sequence, micro-batch 1); nothing else differs from the variant's own config."""
    from geovr.eval.replicate import GROUP_K, GROUPING

    assert set(GROUPING) == {"text_only_questions", "text_only_grouped", "geovr_questions", "geovr_grouped"}
    for name, (variant, arm) in GROUPING.items():
        cfg = parse_config(_train_args(name, 2, 50, tmp_path, False))[0]
        base = parse_config(_train_args(variant, 2, 50, tmp_path, False))[0]
        assert cfg.data.path == str(tmp_path / "train_world" / "train.jsonl")
        assert cfg.data.group_by_video == (GROUP_K if arm == "grouped" else 0)
        assert cfg.train.global_batch == GROUP_K  # a sequence can hold every question of a step
        d, b = cfg.to_dict(), base.to_dict()
        for part in (d, b):
            part["train"].pop("output"), part["data"].pop("path"), part["data"].pop("group_by_video")
            part["train"].pop("micro_batch")
        assert d == b


def test_grouping_rows_by_hand():
    from geovr.eval.replicate import grouping_lines

    def run(seed: int, depth: float, qa: float) -> dict:
        probe = {str(k): {p: {"r2": depth if p == "depth" else 0.2} for p in
                          ("depth", "pose_translation", "pose_rotation", "scale")} for k in range(3)}
        return {"seed": seed, "probe": probe, "qa": {"scores": {"object_counting": qa}, "overall": qa}}

    results = {"text_only_questions": [run(0, 0.1, 40)], "text_only_grouped": [run(0, 0.15, 38)],
               "geovr_questions": [run(0, 0.5, 41)], "geovr_grouped": [run(0, 0.4, 45)]}
    rows = {r.split(" | ")[0].strip("| "): r for r in grouping_lines(results) if r.startswith("| ")}
    assert rows["text_only grouped - one a sample"] == ("| text_only grouped - one a sample | 1 | +0.05 | +0.00 | "
                                                        "+0.00 | +0.00 | -2.0 | -2.0 |")
    assert rows["geovr - text_only, grouped"].startswith("| geovr - text_only, grouped | 1 | +0.25 |")
    assert grouping_lines({k: v for k, v in results.items() if k != "geovr_grouped"}) == []


def test_grouping_only_end_to_end(tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(["--out", str(out), "--work", str(work), "--steps", "2", "--train-scenes", "2", "--test-scenes", "3",
                 "--frame-size", "96x128", "--quiet", "--grouped", "0", "--grouping-only"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["results"]) == {"init", "text_only_questions", "text_only_grouped", "geovr_questions",
                                   "geovr_grouped"}
    report = (out / "results.md").read_text()
    assert "| geovr grouped - one a sample | 1 |" in report and "| **overall** |" in report
    summary = json.loads((work / "runs" / "geovr_grouped_seed0" / "summary.json").read_text())
    assert summary["samples_seen"] == 8  # 2 steps of 4 questions, grouped
    with pytest.raises(SystemExit):
        main(["--work", str(work), "--grouping-only"])
