"""`python -m geovr.train.check_run`: a run's dataset and teacher-target cache checked from the run's
own config. The cache's coverage is exact (a cache filled for one of the two videos covers that one,
its records and nothing else; a full one covers both, and the trainer then asks the teacher for
nothing), a cache of another teacher fails naming the setting, a lost shard is not counted."""
import copy
import json

import pytest

from geovr.train.check_run import main
from geovr.train.config_io import dump_yaml
from train_helpers import small_config


@pytest.fixture
def run(synthetic_root, tmp_path):
    """(a run's config, its YAML file, the records of scene 0 in a file of their own)."""
    cfg = small_config(synthetic_root, tmp_path / "run", steps=2)
    cfg.data.media_root = str(synthetic_root)
    cfg.teacher.root = str(synthetic_root)
    cfg.teacher.cache = str(tmp_path / "cache")
    cfg.train.global_batch = 2
    cfg.train.micro_batch = 1
    lines = (synthetic_root / "train.jsonl").read_text().splitlines()
    scene0 = [x for x in lines if json.loads(x)["video"].endswith("scene_00000.mp4")]
    assert 0 < len(scene0) < len(lines)
    part = tmp_path / "scene0.jsonl"
    part.write_text("\n".join(scene0) + "\n")
    path = tmp_path / "run.yaml"
    path.write_text(dump_yaml(cfg))
    return cfg, path, part, len(scene0), len(lines)


def _check(path, tmp_path, *extra):
    out = tmp_path / "check.json"
    rc = main(["--config", str(path), "--no-progress", "--workers", "2", "--out", str(out), *extra])
    return rc, (json.loads(out.read_text()) if out.exists() else None)


def test_coverage_is_exact_and_the_trainer_then_hits_every_time(run, tmp_path, capsys):
    from geovr.train.cache_targets import fill_cache
    from geovr.train.loop import Trainer

    cfg, path, part, n0, n = run
    rc, report = _check(path, tmp_path)
    assert rc == 0 and report["cache"]["found"] is False
    assert "none there; every sample runs the teacher online" in capsys.readouterr().out

    one = copy.deepcopy(cfg)
    one.data.path = str(part)
    fill_cache(one, progress=False)
    rc, report = _check(path, tmp_path)
    c = report["cache"]
    assert rc == 0 and c["matches"] and c["cache_teacher"] == c["run_teacher"]
    assert (c["videos"], c["covered"], c["records"], c["records_covered"]) == (2, 1, n, n0)
    assert c["sources"] == {"videos": {"videos": 2, "covered": 1}}
    assert "covers 1 of 2 sampled videos (50.0%)" in capsys.readouterr().out

    fill_cache(cfg, progress=False)  # resumes: adds the other video
    rc, report = _check(path, tmp_path, "teacher.cache=/elsewhere", "--cache", cfg.teacher.cache)
    assert rc == 0 and (report["cache"]["covered"], report["cache"]["entries"]) == (2, 2)
    trainer = Trainer(cfg)
    summary = trainer.train()
    trainer.close()
    assert summary["teacher_cache_misses"] == 0 and summary["teacher_cache_hits"] > 0

    index = json.loads((tmp_path / "cache" / "index.json").read_text())
    shard = index["entries"][next(iter(index["entries"]))]
    (tmp_path / "cache" / shard).unlink()
    capsys.readouterr()
    rc, report = _check(path, tmp_path)
    lost = sum(v == shard for v in index["entries"].values())
    assert rc == 0 and report["cache"]["covered"] == 2 - lost and report["cache"]["missing_shards"] == [shard]
    assert "shard files are missing" in capsys.readouterr().out


def test_a_cache_of_another_teacher_fails_naming_the_setting(run, tmp_path, capsys):
    from geovr.train.cache_targets import fill_cache

    cfg, path, _, _, _ = run
    fill_cache(cfg, progress=False)
    capsys.readouterr()
    rc, report = _check(path, tmp_path, "teacher.feature_dim=32")
    c = report["cache"]
    assert rc == 1 and not c["matches"] and c["covered"] == 0 and c["covered_by_cache_teacher"] == 2
    err = capsys.readouterr().err
    assert "c64 in the cache, c32 here" in err and "the run would refuse it" in err
    rc, _ = _check(path, tmp_path, "teacher.exact=true")  # the synthetic teacher re-rendering: other targets
    assert rc == 1 and "resampled in the cache, exact here" in capsys.readouterr().err


def test_the_runs_own_settings_are_used_and_bad_input_is_a_usage_error(run, tmp_path, capsys):
    cfg, path, _, _, _ = run
    rc, report = _check(path, tmp_path, "model.geovr=off")
    assert rc == 0 and "cache" not in report and "no geometric loss is on" in capsys.readouterr().out
    # the run's sampling (the YAML's max_frames over the preset's) reaches the probe's verdict
    rc, report = _check(path, tmp_path, "data.min_frames=64", "data.max_frames=64")
    assert rc == 1 and report["total"]["records_lost"] == {"too_short": report["total"]["records"]}
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(path), "--workers", "0"])
    assert exit_.value.code == 2 and "argument --workers: must be >= 1, got 0" in capsys.readouterr().err
    assert main(["--config", str(path), "data.path=/nowhere/train.jsonl"]) == 2
    assert "data.path" in capsys.readouterr().err
    assert main(["--config", str(path), "teacher.name=vggt"]) == 2
    assert "vggt_weights" in capsys.readouterr().err
