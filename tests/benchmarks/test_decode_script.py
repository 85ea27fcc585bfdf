"""Smoke test of benchmarks/decode.py on tiny clips: it runs every available backend and prints
its table (timings are printed, never asserted)."""
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "decode.py"


def test_decode_benchmark_prints_a_row_per_backend(capsys, tmp_path):
    spec = importlib.util.spec_from_file_location("decode_bench", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["decode_bench"] = bench
    spec.loader.exec_module(bench)
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
