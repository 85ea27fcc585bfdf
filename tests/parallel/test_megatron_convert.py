"""HF <-> Megatron weight conversion as pure functions: exact round trips at every TP x PP split,
the documented shard layouts, padded vocabularies and clear errors; the M-RoPE angles against HF's
own rotary embedding."""
import pytest
import torch

pytest.importorskip("megatron.core")

from geovr.parallel.megatron.config import TextDims, check_parallel, padded_vocab  # noqa: E402
from geovr.parallel.megatron.convert import HF_TEXT, hf_to_mcore, mcore_to_hf, stage_layers  # noqa: E402
from geovr.parallel.megatron.rope import mrope_angles  # noqa: E402


@pytest.fixture(scope="module")
def hf(tok):
    from geovr.model.tiny import tiny_qwen3vl

    model = tiny_qwen3vl(tok, layers=4)
    return model.config, {k: v.clone() for k, v in model.state_dict().items() if "visual" not in k}


def test_fixture_norms_are_not_all_ones(hf, tok):
    """Under norms at exactly 1 (HF's init) a conversion that mixes two norms up gives the same
    outputs, so every fixture's norms are random (`tiny_qwen3vl(random_norms=True)`), and there are
    two DeepStack mergers, so a swap of them shows."""
    from geovr.model.tiny import tiny_qwen3vl

    _, state = hf
    norms = [k for k in state if "norm" in k and k.endswith(".weight")]
    assert len(norms) == 4 * 4 + 1  # q, k, input, post-attention per layer; the final norm
    assert all(state[k].std() > 0.1 for k in norms)
    assert len({round(float(state[k].sum()), 4) for k in norms}) == len(norms)  # no two alike
    visual = tiny_qwen3vl(tok, layers=4).model.visual
    assert len(visual.deepstack_merger_list) == 2
    assert all(m.norm.bias.abs().max() > 0 for m in visual.deepstack_merger_list)


def _shards(state, dims, tp, pp):
    return {(p, t): hf_to_mcore(state, dims, tp, t, pp, p) for p in range(pp) for t in range(tp)}


@pytest.mark.parametrize("tp,pp", [(1, 1), (2, 1), (1, 2), (2, 2), (1, 4), (2, 4)])
@pytest.mark.parametrize("tied", [False, True])
def test_roundtrip_is_exact(hf, tp, pp, tied):
    config, state = hf
    dims = TextDims.from_hf(config)
    if tied:
        dims = TextDims(**{**dims.__dict__, "tied": True})
        state = {**state, "lm_head.weight": state[HF_TEXT + "embed_tokens.weight"]}
    back = mcore_to_hf(_shards(state, dims, tp, pp), dims, tp, pp)
    assert set(back) == set(state)
    for k in state:
        assert torch.equal(back[k], state[k]), k


def test_shard_layouts(hf):
    config, state = hf
    dims = TextDims.from_hf(config)
    d, r = dims.head_dim, dims.heads_per_group
    shard = hf_to_mcore(state, dims, tp=2, tp_rank=1, pp=2, pp_rank=1)
    src = f"{HF_TEXT}layers.2."  # the first layer of stage 1 is local layer 0
    qkv = shard["decoder.layers.0.self_attention.linear_qkv.weight"]
    q = state[src + "self_attn.q_proj.weight"]
    k = state[src + "self_attn.k_proj.weight"]
    group = 1  # TP rank 1 of 2 holds the second of the 2 key/value groups
    assert qkv.shape == ((r + 2) * d, dims.hidden)
    assert torch.equal(qkv[:r * d], q[group * r * d:(group + 1) * r * d])
    assert torch.equal(qkv[r * d:(r + 1) * d], k[group * d:(group + 1) * d])
    fc1 = shard["decoder.layers.0.mlp.linear_fc1.weight"]
    f = dims.ffn // 2
    assert torch.equal(fc1[:f], state[src + "mlp.gate_proj.weight"][f:])
    assert torch.equal(fc1[f:], state[src + "mlp.up_proj.weight"][f:])
    assert "embedding.word_embeddings.weight" not in shard  # stage 1 of 2 has no embedding
    assert shard["output_layer.weight"].shape == (padded_vocab(dims.vocab, 2) // 2, dims.hidden)
    assert list(stage_layers(dims, 2, 1)) == [2, 3]


def test_padded_vocab_rows_are_zero_and_cut_off(hf):
    config, state = hf
    dims = TextDims(**{**TextDims.from_hf(config).__dict__, "vocab": 1000})
    state = {**state, HF_TEXT + "embed_tokens.weight": state[HF_TEXT + "embed_tokens.weight"][:1000],
             "lm_head.weight": state["lm_head.weight"][:1000]}
    assert padded_vocab(1000, 2) == 1024 and padded_vocab(1024, 2) == 1024 and padded_vocab(151936, 8) == 152576
    shards = _shards(state, dims, 2, 1)
    assert torch.count_nonzero(shards[(0, 1)]["embedding.word_embeddings.weight"][-24:]) == 0
    back = mcore_to_hf(shards, dims, 2, 1)
    assert torch.equal(back[HF_TEXT + "embed_tokens.weight"], state[HF_TEXT + "embed_tokens.weight"])


def test_clear_errors(hf):
    config, state = hf
    dims = TextDims.from_hf(config)
    with pytest.raises(ValueError, match="num_key_value_heads=2 is not divisible by tensor parallel size 4"):
        check_parallel(dims, 4, 1)
    with pytest.raises(ValueError, match="num_hidden_layers=4 is not divisible by pipeline parallel size 3"):
        hf_to_mcore(state, dims, 1, 0, 3, 0)
    broken = {k: v for k, v in state.items() if "layers.1.mlp.up_proj" not in k}
    with pytest.raises(KeyError, match="layers.1.mlp.up_proj.weight"):
        hf_to_mcore(broken, dims, 1, 0, 1, 0)
    with pytest.raises(ValueError, match=r"ranks \(pp, tp\) \[\(0, 1\)\] are missing"):
        mcore_to_hf({(0, 0): hf_to_mcore(state, dims, 2, 0)}, dims, 2, 1)


def test_mrope_angles_match_hf_rotary(hf):
    from transformers.models.qwen3_vl.modeling_qwen3_vl import Qwen3VLTextRotaryEmbedding

    config, _ = hf
    text = config.text_config
    dims = TextDims.from_hf(config)
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 500, (3, 2, 17), generator=g)
    cos, sin = Qwen3VLTextRotaryEmbedding(text)(torch.zeros(1, dtype=torch.float32), pos)  # [B, S, D]
    angles = mrope_angles(pos, dims.head_dim, dims.rope_theta, dims.mrope_section)  # [S, B, 1, D]
    assert angles.shape == (17, 2, 1, dims.head_dim)
    torch.testing.assert_close(angles.squeeze(2).transpose(0, 1).cos(), cos, rtol=0, atol=1e-6)
    torch.testing.assert_close(angles.squeeze(2).transpose(0, 1).sin(), sin, rtol=0, atol=1e-6)
    # the axes interleave: frequency 1 follows the height, 2 the width, 0 and 3 the time
    ang = angles[:, :, 0]
    inv = 1.0 / dims.rope_theta ** (torch.arange(0, dims.head_dim, 2).float() / dims.head_dim)
    for j, axis in ((0, 0), (1, 1), (2, 2), (3, 0)):
        torch.testing.assert_close(ang[..., j], pos[axis].t().float() * inv[j])


def test_text_only_positions_and_bad_sections():
    pos = torch.arange(5)[None]
    a = mrope_angles(pos, 16, 1e4, (2, 3, 3))
    b = mrope_angles(pos[None].expand(3, -1, -1), 16, 1e4, (2, 3, 3))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="must sum to head_dim/2"):
        mrope_angles(pos, 16, 1e4, (2, 2, 2))


class _Recording:
    """Wraps a lazy state and records the keys read."""

    def __init__(self, inner):
        self.inner, self.read = inner, []

    def __getitem__(self, key):
        self.read.append(key)
        return self.inner[key]

    def __iter__(self):
        return iter(self.inner)

    def __contains__(self, key):
        return key in self.inner


@pytest.mark.parametrize("sharded", [False, True])
def test_lazy_checkpoint_reads_only_the_stage(tok, tmp_path, sharded):
    """A saved HF folder (one file, or shards with an index) as a lazy state dict: rank (pp 1 of 2,
    tp 1 of 2) reads only its stage's tensors (no vision tower, no embedding, no layer 0/1), and gets
    the same shard as from the in-memory state dict."""
    from geovr.model.tiny import tiny_qwen3vl
    from geovr.parallel.megatron.convert import visual_state
    from geovr.parallel.megatron.lazy_state import SafetensorsState

    model = tiny_qwen3vl(tok, layers=4)
    model.save_pretrained(tmp_path, max_shard_size="200KB" if sharded else "10GB")
    assert (tmp_path / "model.safetensors.index.json").is_file() == sharded
    full = model.state_dict()
    lazy = SafetensorsState(tmp_path)
    assert set(lazy) == set(full)  # untied: lm_head is stored
    dims = TextDims.from_hf(model.config)
    seen = _Recording(lazy)
    shard = hf_to_mcore(seen, dims, tp=2, tp_rank=1, pp=2, pp_rank=1)
    want = hf_to_mcore(full, dims, tp=2, tp_rank=1, pp=2, pp_rank=1)
    assert set(shard) == set(want) and all(torch.equal(shard[k], want[k]) for k in want)
    assert seen.read and all(k.startswith((HF_TEXT + "layers.2.", HF_TEXT + "layers.3.", HF_TEXT + "norm.",
                                           "lm_head.")) for k in seen.read), seen.read
    assert lazy.reads == len(seen.read)
    vis = _Recording(lazy)
    tower = visual_state(vis)
    assert tower and all(k.startswith("model.visual.") for k in vis.read)
    assert torch.equal(tower["merger.linear_fc2.bias"], full["model.visual.merger.linear_fc2.bias"])


def test_lazy_checkpoint_errors(tmp_path):
    from geovr.parallel.megatron.lazy_state import SafetensorsState

    with pytest.raises(FileNotFoundError, match="neither model.safetensors nor model.safetensors.index.json"):
        SafetensorsState(tmp_path)
