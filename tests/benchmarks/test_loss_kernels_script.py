"""Smoke test of benchmarks/loss_kernels.py on tiny shapes: the script runs and prints a full
table (timings are printed, never asserted)."""
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "loss_kernels.py"


def _load():
    spec = importlib.util.spec_from_file_location("loss_kernels", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["loss_kernels"] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    return bench


def test_benchmark_prints_a_row_per_loss_and_implementation(capsys):
    bench = _load()
    assert bench.main(["--shapes", "tiny", "--no-compile", "--cpu"]) == 0
    out = capsys.readouterr().out
    assert "CPU (no GPU: CPU paths only)" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    seen = {(r.split("|")[1].strip(), r.split("|")[3].strip()) for r in rows}
    for loss in ("depth", "align", "pose paper", "scale"):
        assert (loss, "eager reference") in seen and (loss, "release loop") in seen
    for loss in ("depth", "align"):
        assert (loss, "fused triton") in seen
    for mode in ("paper", "geodesic", "relative"):
        assert (f"pose {mode}", "extension") in seen and (f"pose {mode}", "eager reference") in seen
    assert "target pose relative B=8 T=32 [cpu]:" in out
    timed = [r for r in rows if "eager reference" in r]
    assert all(r.split("|")[5].strip() != "-" for r in timed)  # fwd+bwd ms was measured
    for r in timed:  # the 10th-90th percentile around the median
        lo, hi = map(float, r.split("|")[6].strip().split("-"))
        assert lo <= float(r.split("|")[5]) <= hi


def test_target_report():
    bench = _load()
    row = bench.Row
    rows = [
        row("depth", "s", "fused triton", 1.0, 2.0, 900.0, 90.0, 1.0),
        row("depth", "s", "release loop", 5.0, 12.0, 100.0, 10.0, 1.0),
        row("align", "s", "fused triton", 1.0, 2.0, 700.0, 70.0, 1.0),
        row("align", "s", "eager reference", 5.0, 4.0, 100.0, 10.0, 1.0),
    ]
    report = bench.target_report(rows, "cuda").splitlines()
    assert report[0] == ("target depth s [cuda]: 90.0% of copy BW (>= 85%: met), "
                         "6.0x release loop (>= 5x: met)")
    assert report[1] == ("target align s [cuda]: 70.0% of copy BW (>= 80%: NOT met), "
                         "2.0x eager reference (>= 3x: NOT met)")
    assert bench.target_report(rows, "cpu") == "targets: none evaluated on cpu"
