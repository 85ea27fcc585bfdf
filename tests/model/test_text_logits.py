"""The LM head on the supervised positions only (`text_logits="supervised"`, the default): the
text loss and every gradient equal HF's full-logit forward, with and without `num_items_in_batch`,
the logits are HF's rows at those positions, and the positions come from the labels, off by one
(position j predicts the label of j + 1)."""
import dataclasses

import torch

from model_helpers import small_heads, tiny_qwen3vl
from geovr.model.config import GeoVRConfig
from geovr.model.geo_inputs import supervised_positions
from geovr.model.geovr_model import GeoVRModel
from geovr.model.tokens import IGNORE_INDEX


def _pair(tok, cfg: GeoVRConfig) -> tuple[GeoVRModel, GeoVRModel]:
    base = tiny_qwen3vl(tok).double()
    full = GeoVRModel(base, dataclasses.replace(cfg, text_logits="all")).double()
    torch.manual_seed(0)
    cut = GeoVRModel(base, dataclasses.replace(cfg, text_logits="supervised")).double()
    cut.load_state_dict(full.state_dict())
    return full, cut


def _doubled(b: dict) -> dict:
    return {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in b.items()}


def test_supervised_positions_are_the_labels_shifted_by_one():
    labels = torch.full((2, 6), IGNORE_INDEX)
    labels[0, 3:5] = torch.tensor([7, 8])
    labels[1, 5] = 9
    pos, tgt = supervised_positions(labels)
    assert pos.tolist() == [[0, 2], [0, 3], [1, 4]] and tgt.tolist() == [7, 8, 9]
    empty_pos, empty_tgt = supervised_positions(torch.full((1, 4), IGNORE_INDEX))
    assert empty_pos.shape == (0, 2) and empty_tgt.numel() == 0


def test_loss_logits_and_gradients_equal_hf_full_logits(tok, batch):
    b = _doubled(batch[0])
    for cfg in (GeoVRConfig.off(), small_heads()):
        full, cut = _pair(tok, cfg)
        for count in (None, torch.tensor(13.0, dtype=torch.float64)):
            ref, got = full(b, num_items_in_batch=count), cut(b, num_items_in_batch=count)
            torch.testing.assert_close(got.loss_text, ref.loss_text, rtol=1e-12, atol=0)
            geo = cut.plan(b)
            pos = geo.text_positions
            assert got.logits.shape == (len(pos), ref.logits.shape[-1]) and len(pos) > 0
            torch.testing.assert_close(got.logits, ref.logits[pos[:, 0], pos[:, 1]], rtol=1e-12, atol=1e-12)
            ref_grads = torch.autograd.grad(ref.loss_text, [p for p in full.parameters() if p.requires_grad],
                                            allow_unused=True)
            got_grads = torch.autograd.grad(got.loss_text, [p for p in cut.parameters() if p.requires_grad],
                                            allow_unused=True)
            for (name, _), r, g in zip(full.named_parameters(), ref_grads, got_grads):
                if r is None:
                    assert g is None or not g.any(), name
                    continue
                torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12, msg=name)


def test_split_invariance_with_num_items_in_batch(tok, batch):
    """Two micro-batches of one sample each, normalised by the step's token count, sum to the
    two-sample batch's loss (the trainer's accumulation)."""
    b = _doubled(batch[0])
    _, cut = _pair(tok, small_heads())
    whole_geo = cut.plan(b)
    count = torch.tensor(float(len(whole_geo.text_targets)), dtype=torch.float64)
    whole = cut(b, num_items_in_batch=count).loss_text
    parts = 0.0
    for i in range(2):
        n = int(b["attention_mask"][i].sum())
        one = {"input_ids": b["input_ids"][i:i + 1, :n], "attention_mask": b["attention_mask"][i:i + 1, :n],
               "labels": b["labels"][i:i + 1, :n], "mm_token_type_ids": b["mm_token_type_ids"][i:i + 1, :n],
               "teacher_frames": b["teacher_frames"][i:i + 1]}
        grid = b["video_grid_thw"][i:i + 1]
        start = int(b["video_grid_thw"][:i].prod(-1).sum())
        one["video_grid_thw"] = grid
        one["pixel_values_videos"] = b["pixel_values_videos"][start:start + int(grid.prod())]
        parts = parts + cut(one, num_items_in_batch=count).loss_text
    torch.testing.assert_close(parts, whole, rtol=1e-7, atol=0)  # the rotary tables are fp32 in HF


def test_a_plan_made_on_the_cpu_is_what_forward_makes(tok, batch):
    b = batch[0]
    _, cut = _pair(tok, small_heads())
    cut = cut.float()
    geo = cut.plan(b)
    a, c = cut(b).loss_text, cut(b, geo=geo).loss_text
    assert torch.equal(a, c)
