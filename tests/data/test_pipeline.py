"""The whole data path on real files: synthetic dataset -> reader -> decoding in DataLoader
workers -> Qwen3-VL inputs -> collate -> a real HF Qwen3-VL forward; broken media skipped and
counted without stopping the epoch; deterministic shuffling that resumes mid-epoch exactly."""
from __future__ import annotations

import json
import logging
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from geovr.data.dataset import Sample, VideoQADataset
from geovr.data.datasets import read_vsi590k
from geovr.data.health import SkipLog
from geovr.data.qwen_inputs import QwenTransform, collate
from geovr.data.sampler import ResumableSampler, position_after

from clips import write_png


@pytest.fixture(scope="module")
def synthetic(synthetic_root):
    return synthetic_root


def with_bad_records(synthetic, bad_clips, tmp_path):
    """The synthetic jsonl plus one record per broken file, interleaved."""
    good = (synthetic / "train.jsonl").read_text().splitlines()
    lines = []
    for i, (fault, path) in enumerate(sorted(bad_clips.items())):
        lines.append(good[i % len(good)])
        rec = json.loads(good[0])
        rec.update(id=f"bad_{fault}", video=str(path))
        lines.append(json.dumps(rec))
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines + ["{broken json"]) + "\n")
    return path


def test_batches_feed_a_real_qwen3vl(synthetic, tok, tmp_path):
    """Two videos and an image (a LLaVA image record, png) in one batch."""
    from geovr.data.datasets import read_llava
    from geovr.model.tiny import tiny_qwen3vl

    png = tmp_path / "room.png"
    write_png(png, (np.random.default_rng(0).random((80, 120, 3)) * 255).astype(np.uint8))
    (tmp_path / "img.json").write_text(json.dumps([{"id": "img", "image": "room.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is this?"}, {"from": "gpt", "value": "a room"}]}]))
    res = read_vsi590k(str(synthetic / "train.jsonl"))
    ds = VideoQADataset(res.records + read_llava(str(tmp_path / "img.json")).records, backend="pyav",
                        transform=QwenTransform(tok))
    batch = collate([ds[0], ds[len(ds) - 1], ds[len(ds) - 2]], tok.pad_token_id)
    assert batch["video_grid_thw"][:, 0].tolist() == [8, 8]  # 4 s at 2 fps
    assert batch["image_grid_thw"].tolist() == [[1, 14, 20]]  # 80x120 is raised to min_pixels: 224x320
    assert int((batch["mm_token_type_ids"][1] == 1).sum()) == 14 * 20 // 4
    assert batch["teacher_frames"][0].shape == (8, 3, 392, 504)  # 96x128: 378 rounds to 392
    model = tiny_qwen3vl(tok, layers=2)
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"],
                mm_token_type_ids=batch["mm_token_type_ids"], pixel_values_videos=batch["pixel_values_videos"],
                video_grid_thw=batch["video_grid_thw"], pixel_values=batch["pixel_values"],
                image_grid_thw=batch["image_grid_thw"])
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0  # the pixels reached the model


def test_bad_media_is_skipped_counted_and_summarised(synthetic, bad_clips, tok, tmp_path, caplog):
    res = read_vsi590k(str(with_bad_records(synthetic, bad_clips, tmp_path)), media_root=str(synthetic))
    assert len(res.errors) == 1  # the broken json line
    log = SkipLog()
    log.add_invalid_records(res.errors)
    ds = VideoQADataset(res.records, backend="pyav", transform=QwenTransform(tok))
    sampler = ResumableSampler(len(ds), seed=0, shuffle=False)
    loader = DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2,
                        collate_fn=partial(collate, pad_token_id=tok.pad_token_id))
    seen = []
    with caplog.at_level(logging.WARNING, logger="geovr.data"):
        for batch in loader:
            log.add_batch(batch)
            seen += batch["ids"]
            assert not any(i.startswith("bad_") for i in batch["ids"])
        summary = log.end_epoch(0)
    # every good record exactly once (a bad one is dropped, not replaced): the epoch went on
    assert sorted(seen) == sorted(r.id for r in res.records if not r.id.startswith("bad_"))
    kinds = log.metrics()
    assert kinds["data/skipped"] == len(bad_clips) + 1 and kinds["data/skipped/invalid_record"] == 1
    assert kinds["data/skipped/missing"] == 2 and kinds["data/skipped/no_video"] == 1
    assert f"epoch 0: skipped {len(bad_clips) + 1} items" in summary
    first_logs = [r for r in caplog.records if "Further" in r.getMessage()]
    assert len(first_logs) == len([k for k in kinds if k.count("/") == 2])  # once per kind


def test_all_bad_raises_a_clear_error(bad_clips):
    from geovr.data.dataset import Dropped
    from geovr.data.datasets.records import Turn, VideoQA
    from geovr.data.health import TooManySkips

    recs = [VideoQA(f"r{i}", str(bad_clips["missing"]), "video", (Turn("user", "<video>"), Turn("assistant", "a")), "t")
            for i in range(5)]
    ds = VideoQADataset(recs, backend="pyav")
    items = [ds[i] for i in range(5)]
    assert all(isinstance(x, Dropped) and x.skip.kind == "missing" for x in items)
    log = SkipLog(max_in_a_row=5)
    log.add_batch(collate(items[:2]))  # 2 in a row
    log.add_batch({"ids": ["ok"], "kept": [True], "skipped": []})  # a good item resets the run
    log.add_batch(collate(items[:4]))
    with pytest.raises(TooManySkips, match="5 items in a row could not be used .*missing.mp4.* check the media root"):
        log.add_batch(collate(items[4:]))


def _neighbours(bad_clips, good_clips, tmp_path):
    """A real dataset of every broken file back to back, then four good clips (two records on one)."""
    from geovr.data.datasets.records import Turn, VideoQA

    turns = (Turn("user", "<video>\nHow many chairs?"), Turn("assistant", "2"))
    bad = [VideoQA(f"bad_{k}", str(v), "video", turns, "t") for k, v in sorted(bad_clips.items())]
    good = [VideoQA(f"good_{i}", str(good_clips[name]), "video", turns, "t")
            for i, name in enumerate(["h264.mp4", "vp9.webm", "h264.mp4", "hevc.mkv"])]
    return bad + good


@pytest.mark.parametrize("workers", [0, 2])
def test_neighbouring_bad_items_count_once_and_no_sample_repeats(bad_clips, good_clips, tmp_path, tok, workers):
    """k bad records in a row are k skips, and the good records after them are delivered once
    each: through the DataLoader (with and without workers) and the collate the trainer uses."""
    recs = _neighbours(bad_clips, good_clips, tmp_path)
    n_bad = len(bad_clips)
    assert n_bad >= 7
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    loader = DataLoader(ds, batch_size=3, sampler=ResumableSampler(len(ds), shuffle=False),
                        num_workers=workers, collate_fn=partial(collate, pad_token_id=tok.pad_token_id))
    log = SkipLog(max_in_a_row=n_bad + 1)
    ids, positions, empty = [], [], 0
    for batch in loader:
        log.add_batch(batch)
        ids += batch["ids"]
        positions += batch["positions"]
        empty += not batch["ids"]
        if batch["ids"]:
            assert batch["input_ids"].shape[0] == len(batch["ids"]) == sum(batch["kept"])
    assert sorted(ids) == ["good_0", "good_1", "good_2", "good_3"]  # each once
    assert sorted(positions) == [(0, i) for i in range(len(recs))]  # the resume point passes every item
    assert empty == 2  # the first two batches held only bad items
    assert log.end_epoch(0).startswith(f"epoch 0: skipped {n_bad} items (")
    assert log.metrics()["data/skipped"] == n_bad
    with pytest.raises(RuntimeError, match="items in a row"):  # one fewer allowed: the same run stops
        guard = SkipLog(max_in_a_row=n_bad)
        for batch in DataLoader(ds, batch_size=3, sampler=ResumableSampler(len(ds), shuffle=False),
                                collate_fn=partial(collate, pad_token_id=tok.pad_token_id)):
            guard.add_batch(batch)


def test_sampler_is_deterministic_sharded_and_resumes_exactly(synthetic):
    s = ResumableSampler(11, seed=3)
    a, b = list(s), list(ResumableSampler(11, seed=3))
    assert a == b and sorted(k[0] for k in a) == list(range(11))
    assert [k[0] for k in a] != list(range(11))
    s.set_epoch(1)
    assert [k[0] for k in s] != [k[0] for k in a]
    ranks = [ResumableSampler(11, seed=3, rank=r, world_size=3) for r in range(3)]
    keys = [list(r) for r in ranks]
    assert all(len(k) == 4 for k in keys)
    assert set(k[0] for ks in keys for k in ks) == set(range(11))
    # resume through a DataLoader with workers: consume 3 batches, checkpoint, resume in a new sampler
    res = read_vsi590k(str(synthetic / "train.jsonl"))
    ds = VideoQADataset(res.records, backend="pyav")

    def ids(loader, limit=None):
        out, last = [], None
        for n, batch in enumerate(loader):
            if limit is not None and n == limit:
                break
            out += [smp.record.id for smp in batch]
            last = position_after([smp.position for smp in batch])
        return out, last

    def loader(sampler):
        return DataLoader(ds, batch_size=2, sampler=sampler, num_workers=2, collate_fn=list)

    full, _ = ids(loader(ResumableSampler(len(ds), seed=7)))
    first, pos = ids(loader(ResumableSampler(len(ds), seed=7)), limit=3)
    state = ResumableSampler(len(ds), seed=7).state_dict(pos)
    resumed = ResumableSampler(len(ds), seed=7)
    resumed.load_state_dict(json.loads(json.dumps(state)))
    rest, _ = ids(loader(resumed))
    assert first + rest == full and len(first) == 6
    with pytest.raises(ValueError, match="cannot resume"):
        ResumableSampler(len(ds), seed=8).load_state_dict(state)
    assert isinstance(ds[0], Sample)
