"""`python -m geovr.data.check` on a dataset of two sources, real clips and broken files of every
kind the decoders meet: the counts are exact, each bad file is reported once with its kind, a
stopped check goes on from its state, and the clean file holds exactly the good records and trains."""
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from geovr.data.check import main
from geovr.data.video_writer import write_video

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))
from train_helpers import small_config  # noqa: E402

BAD = {"truncated": "truncated.mp4", "zero_bytes": "empty.mp4", "garbage": "garbage.mp4", "audio_only": "audio.mp4",
       "directory": "a_directory.mp4", "missing": "missing.mp4"}
# as the decoders classify them: an mp4 cut in half has lost its index (moov), so it cannot be demuxed
KIND = {"truncated": "corrupt", "zero_bytes": "corrupt", "garbage": "corrupt", "audio_only": "no_video",
        "directory": "missing", "missing": "missing"}


@pytest.fixture
def dataset(tmp_path, synthetic_root, bad_clips):
    """tmp/data: the synthetic world's records (source videos/) and the same scene-1 video under a
    second source (scannet/), which also holds one broken file of each kind, two questions each; a
    too-short video, an image item, a malformed line and a record without conversations."""
    root = tmp_path / "data"
    (root / "videos").mkdir(parents=True)
    (root / "scannet").mkdir()
    for v in (synthetic_root / "videos").iterdir():
        os.symlink(v, root / "videos" / v.name)
    os.symlink(synthetic_root / "geometry", root / "geometry")
    shutil.copy(synthetic_root / "scenes.jsonl", root / "scenes.jsonl")
    os.symlink(synthetic_root / "videos" / "scene_00001.mp4", root / "scannet" / "scene_00001.mp4")
    for kind, name in BAD.items():
        if kind == "directory":
            (root / "scannet" / name).mkdir()
        elif kind != "missing":
            shutil.copy(bad_clips[kind], root / "scannet" / name)
    write_video(root / "videos" / "short.mp4", np.zeros((2, 32, 32, 3), np.uint8), fps=10.0)
    world = [json.loads(x) for x in (synthetic_root / "train.jsonl").read_text().splitlines()]
    lines = [json.dumps(r) for r in world]
    second = [dict(r, id=r["id"] + "_scannet", video="scannet/scene_00001.mp4") for r in world
              if r["video"].endswith("scene_00001.mp4")]
    lines += [json.dumps(r) for r in second]
    template = world[0]
    for kind, name in BAD.items():
        for q in range(2):
            lines.append(json.dumps(dict(template, id=f"bad_{kind}_{q}", video=f"scannet/{name}")))
    lines.append(json.dumps(dict(template, id="short", video="videos/short.mp4")))
    lines.append(json.dumps({"id": "img", "image": "videos/frame.png", "conversations": template["conversations"]}))
    lines.append('{"id": "broken", "video": ')
    lines.append(json.dumps({"id": "noconv", "video": "videos/scene_00000.mp4"}))
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    return root, world, second


def test_counts_kinds_state_and_the_clean_file_that_trains(dataset, tmp_path, capsys):
    from geovr.train.loop import Trainer

    root, world, second = dataset
    args = ["--data", str(root / "train.jsonl"), "--format", "vsi590k", "--workers", "3", "--no-progress",
            "--out", str(tmp_path / "report.json"), "--clean", str(root / "clean.jsonl"),
            "--state", str(tmp_path / "state.jsonl"), "--max-missing", "0.5"]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "report.json").read_text())
    total, src = report["total"], report["sources"]
    n_world = len(world)
    per_video = [sum(r["video"].endswith(f"scene_0000{i}.mp4") for r in world) for i in (0, 1)]
    assert total["records"] == n_world + len(second) + 2 * len(BAD) + 1
    assert total["usable"] == n_world + len(second)
    assert total["invalid_records"] == 2 and total["filtered"] == 1
    want_media = {"corrupt": 3, "no_video": 1, "missing": 2}
    assert want_media == {k: list(KIND.values()).count(k) for k in set(KIND.values())}
    assert src["scannet"]["media_problems"] == want_media  # each bad file once, by its kind
    assert src["scannet"]["records_lost"] == {k: 2 * v for k, v in want_media.items()}
    assert src["videos"]["media_problems"] == {"too_short": 1} and src["videos"]["records_lost"] == {"too_short": 1}
    assert src["videos"]["videos"] == 2 and src["scannet"]["videos"] == 1
    assert src["videos"]["questions_per_video"]["max"] == max(per_video)
    assert total["questions_per_video"]["max"] == max(per_video)
    assert "missing: e.g. " in out and ".mp4: file not found" in out
    probed = [json.loads(x)["path"] for x in (tmp_path / "state.jsonl").read_text().splitlines()]
    assert len(probed) == len(set(probed)) == 2 + 1 + len(BAD) + 1  # every distinct file once

    # a second run reads every probe from the state: nothing is opened again
    from geovr.data import check

    calls = []
    real = check.check_media
    check.check_media = lambda *a, **k: calls.append(a) or real(*a, **k)
    try:
        assert main(args) == 0
    finally:
        check.check_media = real
    assert calls == []

    clean = [json.loads(x) for x in (root / "clean.jsonl").read_text().splitlines()]
    assert [r["id"] for r in clean] == [r["id"] for r in world] + [r["id"] for r in second]
    cfg = small_config(root, tmp_path / "run", steps=1)
    cfg.data.path, cfg.data.media_root = str(root / "clean.jsonl"), str(root)
    trainer = Trainer(cfg)
    summary = trainer.train()
    trainer.close()
    assert summary["steps"] == 1 and summary["data/skipped"] == 0


def test_too_much_missing_media_or_none_usable_exits_1(dataset, tmp_path, capsys):
    root, _, _ = dataset
    base = ["--data", str(root / "train.jsonl"), "--format", "vsi590k", "--no-progress", "--no-decode"]
    assert main(base + ["--max-missing", "0.01"]) == 1
    assert "lose their media, more than --max-missing=0.01" in capsys.readouterr().err
    bad_only = root / "bad.jsonl"
    bad_only.write_text("".join(x + "\n" for x in (root / "train.jsonl").read_text().splitlines() if '"bad_' in x))
    assert main(["--data", str(bad_only), "--format", "vsi590k", "--no-progress"]) == 1
    assert "no record is usable" in capsys.readouterr().err


def test_sampling_overrides_are_read_and_a_run_config_is_sent_to_check_run(dataset, tmp_path, capsys):
    from geovr.data.check import data_overrides

    assert data_overrides(["data.fps=1.0", "data.max_frames=16"]) == {"fps": 1.0, "max_frames": 16}
    with pytest.raises(ValueError, match="only data.field=value"):
        data_overrides(["model.path=/m"])
    root, _, _ = dataset
    base = ["--data", str(root / "train.jsonl"), "--no-progress", "--no-decode", "--max-missing", "1",
            "--out", str(tmp_path / "r.json")]
    assert main(base + ["data.min_frames=9", "data.max_frames=9"]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["inputs"]["sampling"] == {"fps": 2.0, "min_frames": 9, "max_frames": 9}
    for bad, says in [(["--config", "run.yaml"], "geovr.train.check_run"), (["data.backend=pyav"], "not read"),
                      (["data.min_frames=0"], "min_frames")]:
        with pytest.raises(SystemExit) as exc:
            main(base + bad)
        assert exc.value.code == 2 and says in capsys.readouterr().err
