"""Smoke test of benchmarks/grouped_training.py at its smallest: the questions file has exactly K
questions per video, both runs train, and the table prints seconds per question and the ratio
(timings are printed, never asserted)."""
import json

from bench_helpers import load_benchmark


def test_grouped_and_ungrouped_seconds_per_question(tmp_path, capsys):
    bench = load_benchmark("grouped_training")
    bench.main(["--scenes", "2", "--steps", "2", "--qa-per-video", "3", "--out", str(tmp_path)])
    recs = [json.loads(x) for x in (tmp_path / "world" / "train_3_per_video.jsonl").read_text().splitlines()]
    assert len(recs) == 6 and len({r["id"] for r in recs}) == 6 and len({r["video"] for r in recs}) == 2
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[2:4] == [" one question a sample ", " grouped, K=3 "]
    per_seq = next(line for line in lines if "questions per sequence" in line).split("|")[2:4]
    assert [float(c) for c in per_seq] == [1.0, 3.0]
    loop = next(line for line in lines if "whole loop" in line).split("|")[2:4]
    assert "(1.00x)" in loop[0] and float(loop[1].split()[0]) > 0
