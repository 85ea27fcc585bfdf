"""GeoVRModel on a tiny random Qwen3-VL and real synthetic batches: plain Qwen3-VL when off (bit
for bit), token placement and M-RoPE positions, only the needed taps, heads' shapes, and gradients
reaching the LLM from each of the four losses against the synthetic teacher's targets."""
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from model_helpers import small_heads, tiny_qwen3vl
from geovr.losses import align_loss, depth_loss, pose_loss, scale_loss
from geovr.model.config import GeoVRConfig
from geovr.model.geovr_model import GeoVRModel
from geovr.model.taps import tap_layers
from geovr.model.tokens import CAMERA_FIRST, CAMERA_LATER, IGNORE_INDEX, SCALE
from geovr.teachers import SyntheticTeacher, TeacherRequest


def hf_forward(base, b, **kw):
    return base(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"],
                mm_token_type_ids=b["mm_token_type_ids"], pixel_values_videos=b["pixel_values_videos"],
                video_grid_thw=b["video_grid_thw"], **kw)


def test_all_parts_off_is_plain_qwen3vl_bit_for_bit(tok, batch):
    b, _ = batch
    base = tiny_qwen3vl(tok)
    out = GeoVRModel(base, dataclasses.replace(GeoVRConfig.off(), text_logits="all"))(b)
    ref = hf_forward(base, b)
    assert torch.equal(out.logits, ref.logits) and torch.equal(out.loss_text, ref.loss)
    assert out.taps == 0 and not out.pose and out.scale is None


def test_token_placement_positions_and_labels(tok, batch):
    b, _ = batch
    base = tiny_qwen3vl(tok)
    model = GeoVRModel(base, small_heads())
    inputs, geo = model.build_inputs(b)
    plans = geo.plans
    rope = base.model.get_rope_index(b["input_ids"], b["mm_token_type_ids"], None, b["video_grid_thw"],
                                     b["attention_mask"])[0]
    for i, p in enumerate(plans):
        t = int(b["video_grid_thw"][i][0])
        kinds = p.kind.tolist()
        assert kinds.count(CAMERA_FIRST) == 1 and kinds.count(CAMERA_LATER) == t - 1 and kinds.count(SCALE) == 1
        mm = b["mm_token_type_ids"][i]
        for pos in p.camera_positions().tolist():
            assert mm[p.src[pos]] == 2 and mm[p.src[pos] + 1] != 2  # right after a frame's last visual token
            assert p.kind[pos - 1] == 0 and mm[p.src[pos - 1]] == 2
        s = p.scale_positions()[0]
        assert p.kind[s - 1] == CAMERA_LATER  # after the last camera token
        first = p.camera_positions()[0]
        assert p.kind[first] == CAMERA_FIRST and first < p.camera_positions()[1]
        m = len(p.src)
        pos = inputs["position_ids"][:, i, :m]
        orig = p.original
        assert torch.equal(pos[:, orig], rope[:, i, : int(b["attention_mask"][i].sum())])  # originals unmoved
        assert torch.equal(pos[:, p.camera_positions()], rope[:, i, p.src[p.camera_positions()]])  # copy last patch
        assert torch.all(inputs["labels"][i, :m][~orig] == IGNORE_INDEX)
        assert torch.equal(inputs["labels"][i, :m][orig], b["labels"][i, : int(b["attention_mask"][i].sum())])
        emb = inputs["inputs_embeds"][i, :m]
        assert torch.equal(emb[first], model.camera_embed.weight[0]) and torch.equal(emb[s], model.scale_embed.weight[0])


def test_taps_follow_the_layer_map_and_keep_only_those(tok, batch):
    b, _ = batch
    base = tiny_qwen3vl(tok, layers=6)
    model = GeoVRModel(base, small_heads())
    assert model.layer_map == {4: 1, 11: 3, 17: 4, 23: 6}
    out = model(b)
    assert out.taps == 4  # of the 7 hidden states
    # the tap semantics: after DeepStack injection, before the final norm
    lm = base.model.language_model
    with tap_layers(lm.layers, lm.norm, [0, 1, 2, 3, 6]) as store:
        ref = hf_forward(base, b, output_hidden_states=True)
    hs = ref.hidden_states
    assert len(base.config.vision_config.deepstack_visual_indexes) == 2  # injected after layers 0 and 1
    assert torch.equal(store[0], hs[0]) and torch.equal(store[3], hs[3])
    visual = b["mm_token_type_ids"] == 2
    for k in (1, 2):  # HF's hidden state k is before layer k-1's injection, the tap after it
        assert torch.equal(store[k][~visual], hs[k][~visual]) and not torch.equal(store[k][visual], hs[k][visual])
    torch.testing.assert_close(lm.norm(store[6]), hs[6], rtol=0, atol=0)


def test_heads_and_gradients_from_each_loss(tok, batch, synthetic_root):
    b, recs = batch
    base = tiny_qwen3vl(tok)
    base.train()
    model = GeoVRModel(base, small_heads())
    out = model(b)
    teacher = SyntheticTeacher(synthetic_root, feature_dim=32, exact=False)
    targets = [teacher(TeacherRequest(r.id, b["teacher_frames"][i], b["frame_indices"][i], r.extra, r.media_rel))
               for i, r in enumerate(recs)]
    t = [int(g[0]) for g in b["video_grid_thw"]]
    assert [p.shape for p in out.pose] == [(n, 9) for n in t]
    assert [d.shape for d in out.depth] == [tuple(x.depth.shape) for x in targets]
    assert out.scale.shape == (2,) and torch.all(out.scale > 0)
    pooled = [{g: F.avg_pool2d(f.permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1) for g, f in x.features.items()}
              for x in targets]
    assert [f.shape for f in out.features[4]] == [pooled[i][4].shape for i in range(2)]
    losses = {
        "pose": pose_loss(out.pose, [x.pose_enc for x in targets])[0],
        "depth": depth_loss(out.depth, [x.depth for x in targets])[0],
        "scale": scale_loss(out.scale, torch.stack([x.scale for x in targets])),
        "align": align_loss([[f.reshape(-1, 32) for f in out.features[g]] for g in (4, 11, 17, 23)],
                            [[pooled[i][g].reshape(-1, 32) for i in range(2)] for g in (4, 11, 17, 23)]),
    }
    llm_first = base.model.language_model.layers[0].mlp.down_proj.weight
    for name, loss in losses.items():
        assert torch.isfinite(loss), name
        base.zero_grad(set_to_none=True)
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        assert llm_first.grad is not None and llm_first.grad.abs().sum() > 0, name  # reached the LLM
    model.zero_grad(set_to_none=True)
    out.loss_text.backward()  # the answer tokens attend to the camera and scale tokens before them
    assert model.camera_embed.weight.grad.abs().sum() > 0 and model.scale_embed.weight.grad.abs().sum() > 0


def test_layer_map_needs_enough_llm_layers(tok):
    with pytest.raises(ValueError, match="repeated LLM states"):
        GeoVRModel(tiny_qwen3vl(tok, layers=2), small_heads())
