"""Every command and benchmark refuses impossible values before any work: argparse's one `error:`
line naming the option, exit 2, no traceback, within seconds (`geovr.cli`'s argument types and
`check_output`). The planner's and the synthetic world's own cases: tests/plan, tests/data."""
import importlib
import importlib.util
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _main(target: str):
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(f"bench_{Path(target).stem}", BENCHMARKS / target)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main
    return importlib.import_module(target).main


@pytest.fixture
def places(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    return {"FILE": str(tmp_path / "file"), "UNDER_FILE": str(tmp_path / "file" / "sub"),
            "FOLDER": str(tmp_path / "folder"), "NEW": str(tmp_path / "new" / "out")}


M, D = ["--model", "m"], ["--data", "d.jsonl"]
CASES = [
    ("geovr.train.main", ["--tp", "0"], "argument --tp: must be >= 1, got 0"),
    ("geovr.train.main", ["--pp", "two"], "argument --pp: expected an integer, got 'two'"),
    ("geovr.export", ["--ckpt", "c", "--out", "UNDER_FILE"], "is a file, so the folder cannot be created"),
    ("geovr.export", ["--ckpt", "c", "--out", "FILE"], "--out FILE is a file, not a folder"),
    ("geovr.eval.vsibench", [*M, *D, "--top-p", "1.5"], "argument --top-p: must be a share in (0, 1], got 1.5"),
    ("geovr.eval.vsibench", [*M, *D, "--batch-size", "0"], "argument --batch-size: must be >= 1, got 0"),
    ("geovr.eval.vsibench", [*M, *D, "--temperature", "-1"], "argument --temperature: must be >= 0, got -1"),
    ("geovr.eval.vsibench", [*M, *D, "--min-frames", "8", "--max-frames", "4"], "--min-frames: 8 exceeds --max-frames"),
    ("geovr.eval.vsibench", [*M, *D, "--output", "FILE"], "--output FILE is a file, not a folder"),
    ("geovr.eval.probe", [*M, "--data", "w", "--folds", "1"], "argument --folds: must be >= 2, got 1"),
    ("geovr.eval.probe", [*M, "--data", "w", "--videos", "2"], "argument --videos: must be >= 3, got 2"),
    ("geovr.eval.probe", [*M, "--data", "w", "--fps", "nan"], "argument --fps: must be a finite number"),
    ("geovr.eval.replicate", ["--jobs", "0"], "argument --jobs: must be >= 1, got 0"),
    ("geovr.eval.replicate", ["--test-scenes", "2"], "argument --test-scenes: must be >= 3, got 2"),
    ("geovr.eval.replicate", ["--work", "UNDER_FILE"], "--work UNDER_FILE: "),
    ("geovr.teachers.cache", ["--data", "FILE", "--out", "NEW", "--teacher-longest", "500"], "must be a multiple of 28"),
    ("geovr.teachers.cache", ["--data", "FILE", "--out", "NEW", "--min-frames", "40"], "--min-frames: 40 exceeds --max-frames 32"),
    ("geovr.teachers.cache", ["--data", "FILE", "--out", "FILE"], "--out FILE is a file, not a folder"),
    ("geovr.teachers.cache", ["--data", "NEW", "--out", "FOLDER"], "--data NEW: no such file"),
    ("geovr.plan.__main__", ["--data", "FILE,NEW"], "--data NEW: no such file"),
    ("geovr.plan.__main__", ["--data", "FOLDER"], "(a folder: give its annotation file)"),
    ("geovr.data.check", [*D, "--workers", "0"], "argument --workers: must be >= 1, got 0"),
    ("geovr.data.check", [*D, "--max-missing", "2"], "argument --max-missing: must be in [0, 1], got 2"),
    ("geovr.data.check", [*D, "--out", "FOLDER"], "--out FOLDER is a folder, not a file"),
    ("geovr.train.check_run", ["--clean", "UNDER_FILE"], "--clean UNDER_FILE: "),
    ("geovr.doctor.__main__", ["--timeout", "0"], "argument --timeout: must be > 0, got 0"),
    ("geovr.data.synthetic.__main__", ["--out", "NEW", "--fps", "-4"], "argument --fps: must be > 0, got -4"),
    ("geovr.kernels.aot", ["--arch", "90", "0"], "argument --arch: must be an SM version >= 70"),
    ("geovr.kernels.aot", ["--num-warps", "3"], "argument --num-warps: must be a power of two from 1 to 32, got 3"),
    ("decode.py", ["--frames", "0"], "argument --frames: must be >= 1, got 0"),
    ("decode.py", ["--height", "8"], "argument --height: must be >= 16, got 8"),
    ("train_step.py", ["--mfu", "0"], "argument --mfu: must be a share in (0, 1], got 0"),
    ("train_step.py", ["--gpus", "0"], "argument --gpus: must be >= 1, got 0"),
    ("checkpoint_hash.py", ["--size-gb", "-1"], "argument --size-gb: must be > 0, got -1"),
    ("grouped_training.py", ["--steps", "0"], "argument --steps: must be >= 1, got 0"),
    ("eval_prefix.py", ["--qa-per-video", "0"], "argument --qa-per-video: must be >= 1, got 0"),
    ("eval_prefix.py", ["--frames", "32", "0"], "argument --frames: must be >= 1, got 0"),
]


@pytest.mark.parametrize("target, argv, message", CASES, ids=[f"{c[0]} {' '.join(c[1][-2:])}" for c in CASES])
def test_an_impossible_value_is_a_usage_error(target, argv, message, places, capsys):
    main = _main(target)
    argv = [",".join(places.get(part, part) for part in a.split(",")) for a in argv]
    for name, path in places.items():
        message = message.replace(f" {name}", f" {path}")
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and time.perf_counter() - t0 < 5  # before any work
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err
