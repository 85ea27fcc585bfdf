"""Packed sequences through GeoVRModel (tiny Qwen3-VL, random norms, DeepStack, every GeoVR part
on, fp32): each question's text loss and the video's geometric predictions equal those of the
questions as separate samples; the segment rule by hand; flex_attention's forward equals the
SDPA mask path."""
import copy

import pytest
import torch
import torch.nn.functional as F

from model_helpers import small_heads, tiny_qwen3vl
from geovr.data.dataset import VideoQADataset
from geovr.data.datasets import read_vsi590k
from geovr.data.packing import PADDING
from geovr.data.qwen_inputs import QwenTransform, collate
from geovr.model.attention import resolve_attention, segment_mask
from geovr.model.geovr_model import GeoVRModel


@pytest.fixture(scope="module")
def data(synthetic_root, tok):
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    by_video: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        by_video.setdefault(r.media, []).append(i)
    return ds, list(by_video.values())


@pytest.fixture(scope="module")
def model(tok):
    torch.manual_seed(0)
    return GeoVRModel(tiny_qwen3vl(tok), small_heads()).eval()


def per_question_text_losses(model, batch) -> list[float]:
    """Summed next-token cross-entropy per question: per packed segment, or per plain sample."""
    geo = model.plan(batch)
    with torch.no_grad():
        out = model(batch, geo=geo)
    ce = F.cross_entropy(out.logits.float(), geo.text_targets, reduction="none")
    rows, cols = geo.text_positions[:, 0], geo.text_positions[:, 1]
    if geo.segments is None:
        keys = rows.tolist()
    else:
        keys = list(zip(rows.tolist(), geo.segments[rows, cols].tolist()))
    sums: dict = {}
    for key, v in zip(keys, ce.tolist()):
        sums[key] = sums.get(key, 0.0) + v
    return [sums[k] for k in sorted(sums)], out


@pytest.mark.parametrize("k", [1, 2, 5])
def test_each_question_and_the_geometry_equal_separate_samples(data, model, tok, k):
    ds, videos = data
    idx = videos[0][:k]
    packed = collate([ds[(tuple(idx), 0, 0)]], tok.pad_token_id)
    alone = collate([ds[i] for i in idx], tok.pad_token_id)
    assert packed["qa_counts"] == [k] and packed["input_ids"].shape[1] < alone["input_ids"].shape[1] * k or k == 1
    got, out_p = per_question_text_losses(model, packed)
    want, out_a = per_question_text_losses(model, alone)
    assert len(got) == len(want) == k
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=0)
    for j in range(k):  # every separate sample holds the same video: one prediction to match
        torch.testing.assert_close(out_p.pose[0], out_a.pose[j], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out_p.depth[0], out_a.depth[j], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out_p.scale[0], out_a.scale[j], rtol=1e-5, atol=1e-6)
        for g in out_p.features:
            torch.testing.assert_close(out_p.features[g][0], out_a.features[g][j], rtol=1e-5, atol=1e-6)


def test_two_packed_videos_with_padding_in_one_micro_batch(data, model, tok):
    ds, videos = data
    a, b = videos[0][:2], videos[1][:4]
    packed = collate([ds[(tuple(a), 0, 0)], ds[(tuple(b), 0, 1)]], tok.pad_token_id)
    assert (packed["segments"] == PADDING).any()  # the shorter sequence is padded
    alone = collate([ds[i] for i in a + b], tok.pad_token_id)
    got, out_p = per_question_text_losses(model, packed)
    want, out_a = per_question_text_losses(model, alone)
    torch.testing.assert_close(torch.tensor(got), torch.tensor(want), rtol=1e-5, atol=0)
    torch.testing.assert_close(out_p.pose[1], out_a.pose[2], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out_p.depth[1], out_a.depth[5], rtol=1e-5, atol=1e-6)


def test_the_segment_rule_by_hand():
    seg = torch.tensor([[0, 0, 1, 1, 2, PADDING], [0, 1, 2, 2, 3, 3]])
    m = segment_mask(seg)[:, 0].int()
    want0 = torch.tensor([[1, 0, 0, 0, 0, 0],
                          [1, 1, 0, 0, 0, 0],
                          [1, 1, 1, 0, 0, 0],
                          [1, 1, 1, 1, 0, 0],
                          [1, 1, 0, 0, 1, 0],
                          [1, 1, 0, 0, 0, 0]])  # padding sees the prefix only
    want1 = torch.tensor([[1, 0, 0, 0, 0, 0],
                          [1, 1, 0, 0, 0, 0],
                          [1, 0, 1, 0, 0, 0],
                          [1, 0, 1, 1, 0, 0],
                          [1, 0, 0, 0, 1, 0],
                          [1, 0, 0, 0, 1, 1]])
    assert torch.equal(m[0], want0) and torch.equal(m[1], want1)
    unpacked = segment_mask(torch.zeros(1, 4, dtype=torch.long))[0, 0]
    assert torch.equal(unpacked, torch.ones(4, 4, dtype=torch.bool).tril())


def test_attention_choice():
    assert resolve_attention("auto", "cpu") == "sdpa" and resolve_attention("auto", "cpu", packed=False) is None
    assert resolve_attention("sdpa", "cuda") == "sdpa" and resolve_attention("flex", "cpu") == "flex"
    with pytest.raises(ValueError, match="choose from"):
        resolve_attention("flash", "cpu")


def test_flex_forward_equals_the_sdpa_mask_path(data, model, tok):
    """flex_attention (the GPU path; torch 2.13 has no CPU backward) against SDPA, forward only."""
    ds, videos = data
    batch = collate([ds[(tuple(videos[0][:3]), 0, 0)], ds[(tuple(videos[1][:2]), 0, 1)]], tok.pad_token_id)
    flex = copy.deepcopy(model)
    flex.use_attention("flex")
    with torch.no_grad():
        ref, got = model(batch), flex(batch)
    torch.testing.assert_close(got.logits, ref.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.pose[1], ref.pose[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got.depth[0], ref.depth[0], rtol=1e-5, atol=1e-6)
