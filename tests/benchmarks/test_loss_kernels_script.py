"""Smoke test of benchmarks/loss_kernels.py on tiny shapes: the script runs and prints a full
table (timings are printed, never asserted)."""
import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "loss_kernels.py"


def test_benchmark_prints_a_row_per_loss_and_implementation(capsys):
    spec = importlib.util.spec_from_file_location("loss_kernels", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    sys.modules["loss_kernels"] = bench  # dataclasses look their module up there
    spec.loader.exec_module(bench)
    assert bench.main(["--shapes", "tiny", "--no-compile", "--cpu"]) == 0
    out = capsys.readouterr().out
    assert "CPU (no GPU: CPU paths only)" in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    seen = {(r.split("|")[1].strip(), r.split("|")[3].strip()) for r in rows}
    for loss in ("depth", "align", "pose", "scale"):
        assert (loss, "eager reference") in seen and (loss, "release loop") in seen
    for loss in ("depth", "align"):
        assert (loss, "fused triton") in seen
    timed = [r for r in rows if "eager reference" in r]
    assert all(r.split("|")[5].strip() != "-" for r in timed)  # fwd+bwd ms was measured
