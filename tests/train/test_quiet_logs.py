"""Logs that are not a terminal hold whole lines only: no progress-bar fragments (geovr's own bars
become lines, transformers' are off around geovr's loads and saves) and no library warnings geovr
expects (use_cache under gradient checkpointing), from train, export and the planner."""
import io
import os
import subprocess
import sys

from geovr.progress import LineProgress, hf_bars_on_terminal, progress
from train_helpers import overrides, small_config

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
NOISE = ("\r", "Writing model shards", "Loading weights", "[transformers]", "use_cache", "it/s]")


def _run(module: str, *args: str) -> str:
    res = subprocess.run([sys.executable, "-m", module, *args], env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return res.stdout + res.stderr


def _clean(text: str) -> None:
    for noise in NOISE:
        assert noise not in text, (noise, text)


def test_train_export_and_plan_logs_are_whole_lines(synthetic_root, tok, tmp_path):
    from geovr.model.tiny import tiny_qwen3vl

    folder = tmp_path / "hf_model"
    tiny_qwen3vl(tok, layers=4, hidden=64, seed=1).save_pretrained(folder)
    tok.save_pretrained(folder)
    cfg = small_config(synthetic_root, tmp_path / "run", steps=2)
    cfg.model.path, cfg.model.gradient_checkpointing = str(folder), True  # loads weights; HF's use_cache warning
    cfg.teacher.root = str(synthetic_root)
    cfg.checkpoint.export, cfg.metrics.progress = True, True
    log = _run("geovr.train", *overrides(cfg))
    _clean(log)
    assert "train: 1/2 steps (50%)" in log and "train: 2/2 steps (100%)" in log
    assert f"model: {folder}, " in log
    log = _run("geovr.export", "--ckpt", str(tmp_path / "run" / "final"), "--out", str(tmp_path / "plain"))
    _clean(log)
    log = _run("geovr.plan", "--model", "tiny", "--frames", "4", "--gpus", "1", "--gpu-memory", "1",
               "--no-recompute-search")
    _clean(log)
    assert "Command (fill in the <...> placeholders):" in log


def test_line_progress_prints_whole_lines(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    bar = progress(total=10, desc="media", unit="files", initial=2)
    assert isinstance(bar, LineProgress)
    bar.every_s = 0.0
    bar.set_postfix({"loss": "1.000"}, refresh=False)
    for _ in range(8):
        bar.update()
    bar.close()
    lines = err.getvalue().splitlines()
    assert "\r" not in err.getvalue() and len(lines) == 9  # one per unit here (every_s 0), one at the close
    assert lines[0].startswith("media: 3/10 files (30%), 0m00s, about 0m00s left; loss 1.000")
    assert lines[-1].startswith("media: 10/10 files (100%)") and "left" not in lines[-1]
    assert list(progress(range(3), enabled=False)) == [0, 1, 2]
    quiet = progress(total=3, enabled=False)
    quiet.update()
    quiet.close()
    assert err.getvalue().count("\n") == 9  # a disabled display prints nothing


def test_hf_bars_are_restored_after_the_block(monkeypatch):
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert hf_logging.is_progress_bar_enabled()
    with hf_bars_on_terminal():
        assert not hf_logging.is_progress_bar_enabled()
    assert hf_logging.is_progress_bar_enabled()
