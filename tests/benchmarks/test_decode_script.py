"""Smoke test of benchmarks/decode.py on tiny clips: it runs every available backend and prints
its table (timings are printed, never asserted)."""
from bench_helpers import load_benchmark


def test_decode_benchmark_prints_a_row_per_backend(capsys, tmp_path):
    bench = load_benchmark("decode")
    assert bench.main(["--height", "64", "--width", "96", "--seconds", "2", "--fps", "10", "--frames", "8",
                       "--reps", "1", "--codecs", "h264", "vp9", "--gops", "5", "--cache", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    cells = {(r.split("|")[1].strip(), r.split("|")[3].strip()): r for r in rows}
    assert cells[("h264", "pyav")].split("|")[5].strip() not in ("", "-")
    assert cells[("vp9", "pyav")].split("|")[5].strip() not in ("", "-")
    from geovr.data.decode import available_backends
    if "dali-cpu" in available_backends():
        assert "codec not supported" in cells[("h264", "dali-cpu")]
        assert cells[("vp9", "dali-cpu")].split("|")[5].strip() not in ("", "-")
    assert "target DALI GPU" in out
