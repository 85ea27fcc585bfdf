"""The first lines of a run name what it trains: the model (folder or tiny random, parameters,
dtype), the teacher (online, cache, none) and each data file with its record count."""
import logging

import pytest

from geovr.data.datasets import read_vsi590k
from geovr.train.loop import Trainer
from train_helpers import small_config


def _lines(caplog, cfg) -> tuple[list[str], Trainer]:
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="geovr.train"):
        trainer = Trainer(cfg)
    lines = [r.getMessage() for r in caplog.records if r.name == "geovr.train"]
    trainer.close()
    return lines, trainer


def _one(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


def test_the_tiny_run_names_its_model_teacher_and_every_data_file(synthetic_root, tmp_path, caplog):
    path = str(synthetic_root / "train.jsonl")
    n = len(read_vsi590k(path).records)
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1)
    cfg.data.path = f"{path},{path}"
    lines, trainer = _lines(caplog, cfg)
    params = sum(p.numel() for p in trainer.geo.parameters())
    model = _one(lines, "model: ")
    assert model.startswith("model: tiny random Qwen3-VL (4 layers, hidden 64; model.path=tiny)")
    assert f"{params / 1e6:.1f}M parameters, fp32" in model
    assert _one(lines, "teacher: ") == (f"teacher: synthetic (the world's ground truth under {synthetic_root}), "
                                        "online (no teacher.cache)")
    assert [line for line in lines if line.startswith("data: ")] == [f"data: {path} (vsi590k): {n:,} records"] * 2
    # the description comes before the first step's work: right after the kernels' routing
    assert lines.index(model) < next(i for i, line in enumerate(lines) if line.startswith("trainable parameters"))


def test_plain_fine_tuning_says_no_teacher_and_a_cache_is_named(synthetic_root, tmp_path, caplog):
    cfg = small_config(synthetic_root, tmp_path / "off", steps=1)
    cfg.model.geovr = "off"
    lines, _ = _lines(caplog, cfg)
    assert _one(lines, "teacher: ") == "teacher: none (model.geovr=off: plain fine-tuning)"
    cfg = small_config(synthetic_root, tmp_path / "zero", steps=1)
    cfg.loss.pose = cfg.loss.depth = cfg.loss.align = cfg.loss.scale = 0.0
    lines, _ = _lines(caplog, cfg)
    assert _one(lines, "teacher: ") == "teacher: none (every geometric loss weight is 0: plain fine-tuning)"
    cfg = small_config(synthetic_root, tmp_path / "cached", steps=1)
    cfg.teacher.cache = str(tmp_path / "cache")
    lines, _ = _lines(caplog, cfg)
    assert _one(lines, "teacher: ").startswith(f"teacher: cache {tmp_path / 'cache'} (0 entries); a miss runs "
                                               "synthetic (the world's ground truth")


def test_a_model_folder_is_named_with_its_invalid_records(synthetic_root, tok, tmp_path, caplog):
    from geovr.model.tiny import tiny_qwen3vl

    folder = tmp_path / "hf_model"
    base = tiny_qwen3vl(tok, layers=4, hidden=32, seed=1)
    base.save_pretrained(folder)
    tok.save_pretrained(folder)
    data = tmp_path / "data.jsonl"
    good = (synthetic_root / "train.jsonl").read_text().splitlines()
    data.write_text("\n".join(good + ["{not json"]) + "\n")
    cfg = small_config(synthetic_root, tmp_path / "run", steps=1)
    cfg.model.path, cfg.data.path = str(folder), str(data)
    cfg.teacher.root = str(synthetic_root)
    cfg.model.lora_rank = 0
    lines, trainer = _lines(caplog, cfg)
    model = _one(lines, "model: ")
    assert model.startswith(f"model: {folder}, ") and "tiny random" not in model
    assert f"{sum(p.numel() for p in trainer.geo.parameters()) / 1e6:.1f}M parameters" in model
    assert _one(lines, "data: ") == f"data: {data} (vsi590k): {len(good):,} records, 1 invalid"


@pytest.mark.parametrize("n, label", [(74_512, "74.5K"), (412_000, "0.4M"), (2_127_532_032, "2.13B")])
def test_count_labels(n, label):
    from geovr.train.describe import count_label

    assert count_label(n) == label
