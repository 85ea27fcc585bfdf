"""Smoke test of benchmarks/loss_kernels.py on tiny shapes: the script runs and prints a full
table (timings are printed, never asserted)."""
from bench_helpers import load_benchmark


def _load():
    return load_benchmark("loss_kernels")


def test_benchmark_prints_a_row_per_loss_and_implementation(capsys):
    bench = _load()
    assert bench.main(["--shapes", "tiny", "--cpu"]) == 0  # tiny: no torch.compile unless asked
    out = capsys.readouterr().out
    assert "CPU (no GPU: CPU paths only)" in out and "compiled reference" not in out
    assert "targets: not judged on the tiny smoke-test shapes" in out and "NOT met" not in out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    seen = {(r.split("|")[1].strip(), r.split("|")[3].strip()) for r in rows}
    for loss in ("depth", "align", "pose paper", "scale"):
        assert (loss, "eager reference") in seen and (loss, "release loop") in seen
    for loss in ("depth", "align"):
        assert (loss, "fused triton") in seen
    for mode in ("paper", "geodesic", "relative"):
        assert (f"pose {mode}", "extension") in seen and (f"pose {mode}", "eager reference") in seen
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
    # a ratio just under its goal is not printed rounded up to it
    near = [row("depth", "s", "fused triton", 1.0, 1.0, 900.0, 84.96, 1.0),
            row("depth", "s", "release loop", 5.0, 4.96, 100.0, 10.0, 1.0)]
    assert bench.target_report(near, "cuda") == ("target depth s [cuda]: 84.96% of copy BW (>= 85%: NOT met), "
                                                 "4.96x release loop (>= 5x: NOT met)")
    assert bench.judged(5.0, 5.0, "x") == "5.0x" and bench.judged(4.99996, 5.0) == "4.99996"


def test_a_row_timed_faster_with_backward_says_so_and_copy_bandwidth_is_per_size():
    import torch

    bench = _load()
    calls = []

    def forward():  # forward slower than forward + backward: only host noise can do that
        calls.append(torch.is_grad_enabled())
        x = torch.ones(3, requires_grad=True)
        if not torch.is_grad_enabled():
            import time

            time.sleep(0.003)
        return (x * 2).sum()

    row, _ = bench._measure("t", "s", "i", forward, [], 12, torch.device("cpu"), 1.0, reps=3)
    assert row.fwd_ms > row.fwd_bwd_ms and row.note == "noisy: fwd+bwd timed below fwd"
    assert calls[:2 * bench.WARMUP] == [False, True] * bench.WARMUP  # both warmed up before timing
    assert calls[2 * bench.WARMUP:] == [False, True] * 3  # then timed alternately
    small, large = (bench.copy_bandwidth_gbps(torch.device("cpu"), n) for n in (2**20, 64 * 2**20))
    assert small > 0 and large > 0


def test_a_path_that_failed_its_check_is_not_timed(monkeypatch):
    import torch

    bench = _load()
    monkeypatch.setattr(bench, "FAILED", {"depth_loss": "mismatch: trainer fp32: loss outside rtol"})
    cuda = torch.device("cuda")
    assert bench._triton(lambda: None, cuda, "depth_loss") == (
        "fused triton", None, "not timed: failed its check here (mismatch: trainer fp32: loss outside rtol)")
    name, fn, note = bench._triton(lambda: None, cuda, "align_loss")
    assert fn is not None and note == ""
