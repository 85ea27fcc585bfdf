"""The replication script: its two configs differ only in the geometric losses, and a small run
trains, scores and probes end to end."""
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
                 "--test-scenes", "3", "--frame-size", "96x128", "--quiet"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["results"]) == {"init", "text_only", "geovr"}
    for runs in res["results"].values():
        assert len(runs) == 1
        assert set(runs[0]["probe"]) == {str(k) for k in range(7)}  # 6 layers: hidden states 0..6
        assert "overall" in runs[0]["qa"]
    report = (out / "results.md").read_text()
    assert "| **overall** |" in report and "GeoVR minus text-only" in report
    assert "| planted token_rgb_shuffled |" in report and "Median chosen penalty" in report
    assert "| task | answer prior | init | text_only | geovr |" in report
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
