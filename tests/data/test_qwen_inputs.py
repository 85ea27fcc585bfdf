"""Frames -> Qwen3-VL inputs: pixel patches against an independent loop and HF's own code,
prompt expansion against HF's processor code, assistant-only labels, collate, and a real HF
Qwen3-VL model consuming a batch built from a synthetic video."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from geovr.data.chat import IGNORE_INDEX, SampleRejected, tokenize_conversation, video_placeholder
from geovr.data.datasets.records import Turn
from geovr.data.qwen_inputs import collate
from geovr.data.qwen_pixels import patchify, resize_uint8, to_qwen_pixels, to_teacher_frames
from geovr.data.sampling import QwenVision


def test_pixels_match_an_independent_patch_loop():
    """At a size smart_resize keeps (256x320), every row of pixel_values_videos is one 16x16
    patch, duplicated over the temporal patch, in merge-block order."""
    rng = np.random.default_rng(0)
    frames = torch.from_numpy(rng.integers(0, 256, (2, 3, 256, 320), dtype=np.uint8))
    pv, grid = to_qwen_pixels(frames)
    assert grid.tolist() == [2, 16, 20]
    x = (frames.double() / 255 - 0.5) / 0.5
    rows = []
    for t in range(2):
        for bh in range(8):
            for bw in range(10):
                for mh in range(2):
                    for mw in range(2):
                        r, c = (bh * 2 + mh) * 16, (bw * 2 + mw) * 16
                        p = x[t, :, r:r + 16, c:c + 16]
                        rows.append(torch.stack([p, p], 1).reshape(-1))  # (C, temporal, 16, 16)
    torch.testing.assert_close(pv.double(), torch.stack(rows), atol=1e-6, rtol=0)


def test_patchify_equals_hf():
    hf = pytest.importorskip("transformers.models.qwen3_vl.video_processing_qwen3_vl",
                             reason="HF's Qwen3-VL video module needs transformers and pillow")
    x = torch.randn(6, 3, 64, 96)
    ref = hf.Qwen3VLVideoProcessor.patchify(None, x[None], 16, 2, 2)[0][0]
    assert torch.equal(patchify(x, QwenVision()), ref)


def test_resize_and_teacher_frames():
    frames = torch.full((3, 3, 480, 640), 77, dtype=torch.uint8)
    assert torch.equal(resize_uint8(frames, (480, 640)), frames.float())
    assert torch.all(resize_uint8(frames, (240, 320)) == 77)
    teacher = to_teacher_frames(frames)
    assert teacher.shape == (3, 3, 392, 504) and teacher.dtype == torch.float32
    torch.testing.assert_close(teacher, torch.full_like(teacher, 77 / 255))
    noisy = torch.randint(0, 256, (2, 3, 100, 140), dtype=torch.uint8)
    t2 = to_teacher_frames(noisy)
    assert t2.shape == (2, 3, 364, 504) and t2.min() >= 0 and t2.max() <= 1
    with pytest.raises(ValueError, match="uint8"):
        to_qwen_pixels(noisy.float())


@pytest.mark.parametrize("h,w", [(480, 640), (97, 131), (720, 1280)])
def test_teacher_frames_follow_vggt_loader(h, w):
    """VGGT's loader resizes with PIL's bicubic to uint8 and divides by 255: our teacher frames
    stay within 2 levels of it (torch's uint8 kernel and PIL's round their fixed point apart)."""
    pil = pytest.importorskip("PIL.Image")
    img = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
    ours = to_teacher_frames(torch.from_numpy(img).permute(2, 0, 1)[None])[0]
    oh, ow = ours.shape[-2:]
    ref = np.asarray(pil.fromarray(img).resize((ow, oh), pil.Resampling.BICUBIC), dtype=np.float32) / 255
    diff = (ours.permute(1, 2, 0).numpy() - ref).__abs__()
    assert diff.max() <= 2 / 255 + 1e-6 and diff.mean() < 0.1 / 255
    assert torch.equal(ours * 255, (ours * 255).round())  # uint8 levels, as PIL's


def test_video_placeholder_equals_hf_processor_code():
    """HF's own replace_video_token (called on a namespace holding the attributes it reads)."""
    mod = pytest.importorskip("transformers.models.qwen3_vl.processing_qwen3_vl")
    from transformers.video_utils import VideoMetadata

    proc = mod.Qwen3VLProcessor
    fps, idx = 5.0, [0, 9, 21, 40]
    meta = VideoMetadata(total_num_frames=41, fps=fps, frames_indices=[i for i in idx for _ in range(2)])
    ns = SimpleNamespace(video_processor=SimpleNamespace(merge_size=2, temporal_patch_size=2),
                         video_token="<|video_pad|>", vision_start_token="<|vision_start|>",
                         vision_end_token="<|vision_end|>")
    ns._calculate_timestamps = lambda *a: proc._calculate_timestamps(ns, *a)
    grid = torch.tensor([[4, 6, 8]])
    ref = proc.replace_video_token(ns, {"video_grid_thw": grid, "video_metadata": [meta]}, 0)
    assert video_placeholder(grid[0], [i / fps for i in idx]) == ref


def test_labels_cover_assistant_replies_only(tok):
    turns = (Turn("system", "You are a spatial assistant."), Turn("user", "<video>\nHow many chairs?"),
             Turn("assistant", "3"), Turn("user", "And the <b>tables</b>?"), Turn("assistant", "2 tables"))
    out = tokenize_conversation(tok, turns, [2, 4, 6], [0.0, 0.5])
    ids, labels, mm = out["input_ids"], out["labels"], out["mm_token_type_ids"]
    assert ids.shape == labels.shape == mm.shape and ids.dtype == torch.long
    kept = labels != IGNORE_INDEX
    assert torch.equal(labels[kept], ids[kept])
    assert tok.decode(ids[kept]) == "3<|im_end|>2 tables<|im_end|>"
    assert int((mm == 2).sum()) == 2 * 4 * 6 // 4 and torch.all(ids[mm == 2] == tok.convert_tokens_to_ids("<|video_pad|>"))
    text = tok.decode(ids)
    assert text.count("<0.0 seconds><|vision_start|>") == 1 and text.count("<0.5 seconds><|vision_start|>") == 1
    assert "How many chairs?" in text and "<video>" not in text


def test_placeholder_position_and_too_long(tok):
    mid = (Turn("user", "Look: <video> and count."), Turn("assistant", "4"))
    text = tok.decode(tokenize_conversation(tok, mid, [1, 2, 2], [0.0])["input_ids"])
    assert text.index("Look:") < text.index("<|video_pad|>") < text.index("and count.")
    with pytest.raises(SampleRejected) as err:
        tokenize_conversation(tok, mid, [1, 2, 2], [0.0], max_length=5)
    assert err.value.kind == "too_long"
    with pytest.raises(ValueError, match="one timestamp per temporal patch"):
        tokenize_conversation(tok, mid, [2, 2, 2], [0.0])


def test_collate_pads(tok):
    a = tokenize_conversation(tok, (Turn("user", "<video>\nQ?"), Turn("assistant", "long answer here")), [1, 2, 2], [0.0])
    b = tokenize_conversation(tok, (Turn("user", "<video>\nQ?"), Turn("assistant", "A")), [2, 2, 4], [0.0, 1.0])
    samples = []
    for text, grid in ((a, [1, 2, 2]), (b, [2, 2, 4])):
        n = grid[0] * grid[1] * grid[2]
        samples.append({**text, "pixel_values_videos": torch.randn(n, 1536), "video_grid_thw": torch.tensor([grid]),
                        "teacher_frames": torch.rand(grid[0], 3, 28, 28), "frame_indices": [0], "timestamps_s": [0.0],
                        "id": "x", "position": (0, 3), "skipped": []})
    batch = collate(samples, pad_token_id=tok.pad_token_id)
    la, lb = len(a["input_ids"]), len(b["input_ids"])
    assert batch["input_ids"].shape == (2, max(la, lb))
    short = 1 if lb < la else 0
    n = min(la, lb)
    assert batch["attention_mask"][short].sum() == n and torch.all(batch["labels"][short, n:] == IGNORE_INDEX)
    assert torch.all(batch["input_ids"][short, n:] == tok.pad_token_id) and torch.all(batch["mm_token_type_ids"][short, n:] == 0)
    assert batch["pixel_values_videos"].shape == (4 + 16, 1536) and batch["video_grid_thw"].tolist() == [[1, 2, 2], [2, 2, 4]]
    with pytest.raises(ValueError, match="empty"):
        collate([])


def test_image_size_rule_equals_hf():
    hf = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl",
                             reason="HF's Qwen image processor (PIL) needs transformers and pillow")
    from geovr.data.sampling import QwenImageVision, qwen_image_size

    rng = np.random.default_rng(2)
    for _ in range(300):
        h, w = int(rng.integers(10, 5000)), int(rng.integers(10, 5000))
        if max(h, w) / min(h, w) > 200:
            continue
        lo, hi = int(rng.integers(1, 200)) * 1024, int(rng.integers(200, 20000)) * 1024
        vision = QwenImageVision(min_pixels=lo, max_pixels=hi)
        assert qwen_image_size(h, w, vision) == hf.smart_resize(h, w, 32, lo, hi), (h, w, lo, hi)


def test_image_pixels_equal_hf_image_processor():
    """HF's PIL image processor with Qwen3-VL's settings, at a size needing no resize."""
    hf = pytest.importorskip("transformers.models.qwen2_vl.image_processing_pil_qwen2_vl")
    from geovr.data.qwen_pixels import to_qwen_image_pixels

    proc = hf.Qwen2VLImageProcessorPil(patch_size=16, merge_size=2, temporal_patch_size=2, image_mean=[0.5] * 3,
                                       image_std=[0.5] * 3, size={"shortest_edge": 65536, "longest_edge": 16777216})
    img = np.random.default_rng(3).integers(0, 256, (256, 352, 3), dtype=np.uint8)
    ref = proc(images=[img], return_tensors="pt")
    pv, grid = to_qwen_image_pixels(torch.from_numpy(img).permute(2, 0, 1)[None])
    assert grid.tolist() == ref["image_grid_thw"][0].tolist() == [1, 16, 22]
    torch.testing.assert_close(pv, ref["pixel_values"], atol=1e-6, rtol=0)


def test_image_conversation_tokens(tok):
    turns = (Turn("user", "<image>\nWhat colour is the ball?"), Turn("assistant", "red"))
    out = tokenize_conversation(tok, turns, [1, 4, 6], None)
    ids, mm = out["input_ids"], out["mm_token_type_ids"]
    assert int((mm == 1).sum()) == 6 and int((mm == 2).sum()) == 0
    assert torch.all(ids[mm == 1] == tok.convert_tokens_to_ids("<|image_pad|>"))
    assert tok.decode(ids[out["labels"] != IGNORE_INDEX]) == "red<|im_end|>"
    assert "seconds" not in tok.decode(ids)
