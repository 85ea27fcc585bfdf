"""Smoke test of benchmarks/eval_prefix.py at its smallest: the timing mode answers every question
both ways with the same replies, and --count prints the prefill table, the release protocol's
paired frames included (timings are printed, never asserted)."""
from bench_helpers import load_benchmark


def test_seconds_per_question_both_ways(tmp_path, capsys):
    bench = load_benchmark("eval_prefix")
    bench.main(["--scenes", "1", "--qa-per-video", "3", "--max-new-tokens", "2", "--max-frames", "4",
                "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "same replies: 3 of 3" in out and "1 prefills" in out


def test_count_release_protocol_pairs_frames(capsys):
    bench = load_benchmark("eval_prefix")
    bench.main(["--count", "--model", "tiny", "--frames", "8", "--videos", "2", "--qa-per-video", "3"])
    bench.main(["--count", "--model", "tiny", "--frames", "8", "--videos", "2", "--qa-per-video", "3",
                "--protocol", "release"])
    rows = [line for line in capsys.readouterr().out.splitlines() if " frames (" in line]
    assert rows[0].startswith("| 8 frames (lmms-eval: <= 300 tokens a frame) |")
    assert rows[1].startswith("| 8 frames (release: two a patch, <= 384 tokens a frame) |")
    prefix = [int(r.split("|")[2].split("+")[0]) for r in rows]
    assert prefix[1] < prefix[0]  # half the temporal patches: about half the video tokens
