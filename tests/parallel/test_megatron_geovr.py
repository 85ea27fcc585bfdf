"""One GeoVR training step on the Megatron backend equals the HF GeoVRModel's: every loss part
(text, pose, depth, alignment, scale) and the gradient of every trainable parameter (LLM shards
joined back, vision mergers, camera/scale tokens, heads, projectors), at TP=1, TP=2, PP=2 and
TP=2 x PP=2 on 4 gloo processes. At PP=2 the shallowest aligned layer's loss is computed on the
first stage (it reaches backward through AttachLoss) and the depth head's shallow layers ride in
the pipeline tensor. The tied-embedding case checks megatron-core's sum of the two copies' grads.
Sequence parallelism (TP=2, and TP=2 x PP=2 where the pipeline tensor carries each TP rank's slice)
and activation recompute (full: every layer; selective: core attention) give the same step."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("megatron.core")

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "model"))
LAYOUTS = "1,1;2,1;1,2;2,2;2,1,sp;2,2,sp,full;2,1,selective"
TOL = 2e-5


def _one_token_longer(batch: dict, pad_id: int) -> dict:
    """`batch` with one more answer token on its longest sample, so that the GeoVR sequence length
    changes parity (sequence parallelism must then pad it to a multiple of tp)."""
    from geovr.data.qwen_inputs import IGNORE_INDEX

    b = {k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()}
    lengths = b["attention_mask"].sum(1)
    i, n = int(lengths.argmax()), int(lengths.max())
    if n == b["input_ids"].shape[1]:  # widen by one padded column
        for key, value in (("input_ids", pad_id), ("attention_mask", 0), ("labels", IGNORE_INDEX),
                           ("mm_token_type_ids", 0)):
            b[key] = torch.cat([b[key], b[key].new_full((b[key].shape[0], 1), value)], dim=1)
    token = b["input_ids"][i, n - 1]  # repeat its last (text) token, as an answer token
    b["input_ids"][i, n], b["attention_mask"][i, n], b["labels"][i, n] = token, 1, token
    return b


def _case(tok, batch, targets, tokens, weights, tied: bool, layouts: str) -> dict:
    from model_helpers import small_heads

    from geovr.model import GeoVRModel
    from geovr.model.tiny import tiny_qwen3vl
    from geovr.train.objective import micro_loss
    from geovr.train.optim import freeze_vision

    torch.manual_seed(0)
    base = tiny_qwen3vl(tok)
    if tied:
        base.config.tie_word_embeddings = base.config.text_config.tie_word_embeddings = True
        base.tie_weights()
    geo = GeoVRModel(base, small_heads())
    freeze_vision(geo)
    out = geo(batch, num_items_in_batch=torch.tensor(float(tokens)))
    enabled = {"pose": True, "depth": True, "align": True, "scale": True}
    loss = micro_loss(out, targets, weights, 1.0, enabled)
    loss.total.backward()
    grads = {n: p.grad.clone() for n, p in geo.named_parameters() if p.requires_grad}
    return {"state": {k: v.clone() for k, v in geo.state_dict().items()}, "hf_config": base.config,
            "geo_cfg": geo.cfg, "parts": {k: float(v) for k, v in loss.parts.items()}, "grads": grads,
            "layouts": layouts, "batch": batch, "tokens": tokens}


@pytest.fixture(scope="module")
def report(batch, tok, synthetic_root, tmp_path_factory):
    from geovr.data.qwen_inputs import IGNORE_INDEX
    from geovr.teachers import SyntheticTeacher, TeacherRequest
    from geovr.train.config import LossConfig

    b, recs = batch
    teacher = SyntheticTeacher(synthetic_root, feature_dim=32, exact=False)
    targets = [teacher(TeacherRequest(r.id, b["teacher_frames"][i], b["frame_indices"][i], r.extra, r.media_rel))
               for i, r in enumerate(recs)]
    tokens = int((b["labels"][:, 1:] != IGNORE_INDEX).sum())
    weights = LossConfig()
    odd = _one_token_longer(b, tok.pad_token_id)
    odd_tokens = int((odd["labels"][:, 1:] != IGNORE_INDEX).sum())
    cases = {"untied": _case(tok, b, targets, tokens, weights, False, LAYOUTS),
             "tied": _case(tok, b, targets, tokens, weights, True, "1,2"),
             "odd": _case(tok, odd, targets, odd_tokens, weights, False, "2,1,sp")}
    tmp = tmp_path_factory.mktemp("mcore_geovr")
    torch.save({"targets": targets, "weights": weights, "cases": cases}, tmp / "in.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--master_port", "29532",
           str(HERE / "mcore_geovr_worker.py"), str(tmp / "in.pt"), str(tmp / "out.json")]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-4000:]
    out = json.loads((tmp / "out.json").read_text())
    out["_reference"] = {name: case["parts"] for name, case in cases.items()}
    return out


CASES = [("untied", layout) for layout in LAYOUTS.split(";")] + [("tied", "1,2"), ("odd", "2,1,sp")]


@pytest.mark.parametrize("name,layout", CASES, ids=lambda v: v.replace(",", "x") if "," in v else v)
def test_loss_parts_match_hf(report, name, layout):
    r, ref = report[name][layout], report["_reference"][name]
    assert r["finite"]
    assert set(ref) == {"text", "pose", "depth", "align", "scale"}
    for k, v in ref.items():
        assert r["parts"][k] == pytest.approx(v, rel=1e-5), k


@pytest.mark.parametrize("name,layout", CASES, ids=lambda v: v.replace(",", "x") if "," in v else v)
def test_gradients_match_hf(report, name, layout):
    r = report[name][layout]
    assert not r["missing"]
    # tied: HF lists the shared weight once (as the embedding); the join writes lm_head too
    assert set(r["extra"]) == ({"base.lm_head.weight"} if name == "tied" else set())
    assert r["ref_grad_max"] > 0.1
    worst = max(r["grad_max_diff"].items(), key=lambda kv: kv[1])
    assert worst[1] < TOL, worst
    # the GeoVR parts, the mergers and a shard-joined LLM weight are all among the compared
    names = set(r["grad_max_diff"])
    for needed in ("camera_embed.weight", "scale_head.net.0.weight", "depth_head.head.2.bias",
                   "base.model.visual.merger.linear_fc2.bias",
                   "base.model.language_model.layers.2.mlp.gate_proj.weight"):
        assert any(n.startswith(needed.rsplit(".", 1)[0]) for n in names), needed


@pytest.mark.parametrize("layout", ["2,1,sp", "2,2,sp,full", "2,1,selective", "2,2"])
def test_sequence_parallel_and_recompute_are_on(report, layout):
    """The layouts above really ran split sequences and recomputation (not silently ignored flags)."""
    r = report["untied"][layout]
    flags = layout.split(",")[2:]
    assert r["sequence_parallel"] == ("sp" in flags)
    # rank 0 reports: one checkpoint region per layer of its stage (full: the layer; selective: its
    # core attention)
    assert r["layers_here"] == (6 if layout.startswith("2,1") else 3)
    if "full" in flags or "selective" in flags:
        assert r["recomputed"] == r["layers_here"]
    else:
        assert r["recomputed"] == 0


def test_sequence_parallel_pads_an_odd_sequence(report):
    """The "odd" batch's GeoVR sequence has odd length; at TP=2 with SP it is padded by one token and
    still gives HF's step (test_gradients_match_hf[odd-2x1xsp])."""
    even, odd = report["untied"]["2,1,sp"]["geo_len"], report["odd"]["2,1,sp"]["geo_len"]
    assert even[0] % 2 == 0 and even[1] == even[0]
    assert odd[0] == even[0] + 1 and odd[1] == odd[0] + 1
