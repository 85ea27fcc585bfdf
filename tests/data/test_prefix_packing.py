"""Shared-prefix packing of QA records about one video (`geovr.data.packing`): a packed sequence
is the prefix once and every record's own suffix, token for token; a record whose prefix differs
goes alone and is counted; max_length starts a new sequence; a bad video drops every record of
its group, each counted once; suffix positions restart after the prefix."""
import dataclasses

import pytest
import torch

from geovr.data.chat import IGNORE_INDEX, VISION_END
from geovr.data.dataset import Dropped, VideoQADataset
from geovr.data.datasets import Turn, read_vsi590k
from geovr.data.packing import PADDING, pack_samples, prefix_length, restart_positions
from geovr.data.qwen_inputs import QwenTransform, collate


@pytest.fixture(scope="module")
def scene(synthetic_root):
    """Every record of the first scene (one video), in file order."""
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    return [r for r in recs if r.media == recs[0].media]


def dataset(records, tok, **transform):
    return VideoQADataset(records, backend="pyav", transform=QwenTransform(tok, **transform))


def test_a_packed_sequence_is_the_prefix_and_each_records_own_suffix(scene, tok):
    assert len(scene) >= 5
    ds = dataset(scene, tok)
    (packed,) = ds[(tuple(range(len(scene))), 3, 7)]
    alone = [ds[i] for i in range(len(scene))]
    end = tok.convert_tokens_to_ids(VISION_END)
    n = prefix_length(alone[0]["input_ids"], alone[0]["mm_token_type_ids"], end)
    assert packed["input_ids"][n - 1] == end and (packed["mm_token_type_ids"][n:] == 0).all()
    assert int((packed["mm_token_type_ids"] == 2).sum()) == int((alone[0]["mm_token_type_ids"] == 2).sum())
    assert packed["qa_ids"] == [r.id for r in scene] and packed["position"] == (3, 7)
    seg = packed["segments"]
    assert (seg[:n] == 0).all()
    for k, own in enumerate(alone, start=1):
        mine = seg == k
        assert int(mine.sum()) == len(own["input_ids"]) - n
        for key in ("input_ids", "labels", "mm_token_type_ids"):
            rebuilt = torch.cat([packed[key][:n], packed[key][mine]])
            assert torch.equal(rebuilt, own[key]), (k, key)
    assert (seg[1:] >= seg[:-1]).all()  # contiguous segments, in record order
    assert torch.equal(packed["pixel_values_videos"], alone[0]["pixel_values_videos"])
    assert packed["unshared"] == 0
    # answers of different lengths are packed (the sequence is not a repetition)
    assert len({int((own["labels"] != IGNORE_INDEX).sum()) for own in alone}) > 1


def test_a_record_with_another_prefix_goes_alone_and_is_counted(scene, tok):
    other = dataclasses.replace(scene[1], id="with-system", turns=(Turn("system", "You are a careful robot."),)
                                + scene[1].turns)
    records = [scene[0], other, scene[2]]
    items = dataset(records, tok)[((0, 1, 2), 0, 0)]
    assert [x["qa_ids"] for x in items] == [[scene[0].id, scene[2].id], ["with-system"]]
    assert items[0]["unshared"] == 1 and (items[1]["segments"] == 0).all()
    batch = collate(items, tok.pad_token_id)
    assert batch["qa_counts"] == [2, 1] and batch["unshared"] == 1
    assert (batch["segments"][1, len(items[1]["input_ids"]):] == PADDING).all()


def test_max_length_starts_a_new_sequence_and_keeps_every_record(scene, tok):
    alone = dataset(scene[:1], tok)[0]
    end = tok.convert_tokens_to_ids(VISION_END)
    n = prefix_length(alone["input_ids"], alone["mm_token_type_ids"], end)
    samples = [dataset(scene, tok)[i] for i in range(4)]
    suffix = [len(s["input_ids"]) - n for s in samples]
    limit = n + suffix[0] + suffix[1]  # the first two fit, the third does not
    packed, stats = pack_samples(samples, end, max_length=limit)
    assert [p["qa_ids"] for p in packed][0] == [scene[0].id, scene[1].id]
    assert sum(len(p["qa_ids"]) for p in packed) == 4 and stats.sequences == len(packed) >= 2
    assert all(len(p["input_ids"]) <= limit for p in packed)


def test_a_bad_video_drops_every_record_of_its_group_once(scene, tok, tmp_path):
    gone = [dataclasses.replace(r, media=str(tmp_path / "missing.mp4")) for r in scene[:3]]
    items = dataset(gone, tok)[((0, 1, 2), 1, 4)]
    assert len(items) == 3 and all(isinstance(x, Dropped) for x in items)
    batch = collate([items], tok.pad_token_id)
    assert batch["ids"] == [] and [s.item for s in batch["skipped"]] == [r.id for r in scene[:3]]
    assert batch["kept"] == [False] * 3 and batch["positions"] == [(1, 4)] * 3


def test_suffix_positions_restart_after_the_prefix():
    seg = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 3, PADDING])
    pos = torch.arange(10).expand(3, 10) + 5
    out = restart_positions(pos, seg)
    want = torch.tensor([5, 6, 7, 8, 9, 8, 9, 10, 8, 14])
    assert torch.equal(out, want.expand(3, 10))
    assert torch.equal(restart_positions(pos, torch.zeros(10, dtype=torch.long)), pos)


def test_a_record_without_media_has_no_prefix(tok):
    with pytest.raises(ValueError, match="without media tokens"):
        prefix_length(torch.tensor([1, 2, 3]), torch.zeros(3, dtype=torch.long), 7)
