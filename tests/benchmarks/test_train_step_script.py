"""Smoke test of benchmarks/train_step.py --time on the CPU at tiny size: real steps of the three
runs (release, geovr online, geovr cached) through `geovr.plan.timing`, a table with samples/s and
the ratios (timings are printed, never asserted; the figures mean something on a GPU only)."""
import pytest

from bench_helpers import load_benchmark


def test_time_mode_prints_samples_per_second_for_each_run(capsys):
    bench = load_benchmark("train_step")
    bench.main(["--time", "--device", "cpu", "--models", "tiny", "--frames", "2", "--steps", "1",
                "--tokens-per-frame", "16", "--teacher-longest", "112"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].split("|")[2:5] == [" release ", " geovr online ", " geovr cache "]
    speed = next(line for line in lines if "samples/s" in line).split("|")[2:5]
    assert "(1.00x)" in speed[0] and all(float(c.split("**")[1]) > 0 for c in speed)


def test_a_fake_step_is_counted_on_the_cpu():
    from geovr.plan.spec import StepSpec
    from geovr.plan.step import build_step

    with pytest.raises(ValueError, match="fake step is counted on the CPU"):
        build_step(StepSpec(model="tiny"), fake=True, device="cuda")
