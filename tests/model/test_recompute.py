"""Activation recompute of the LLM's decoder layers (`geovr.model.recompute`): every setting gives
the gradients of no recompute, keep="attention" skips exactly the attention kernels' forward in
the recompute, and `layers` checkpoints exactly the first k layers (counted FLOPs: each
checkpointed layer adds its forward once)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from model_helpers import tiny_qwen3vl
from geovr.model.recompute import enable_recompute
from geovr.plan.parts import AttentionFormulas

aten = torch.ops.aten


def _base(tok, depth=4, **recompute):
    torch.manual_seed(0)
    base = tiny_qwen3vl(tok, layers=depth).train()
    if recompute:
        enable_recompute(base, **recompute)
    return base


def _ids(tok, n=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(10, len(tok) - 10, (2, n), generator=g)


def _step(base, ids):
    """loss and {name: grad}; FLOPs of the forward and of the backward (the recompute included),
    and the attention kernels' forward FLOPs."""
    formulas_fwd, formulas_all = AttentionFormulas(), AttentionFormulas()
    with FlopCounterMode(display=False, custom_mapping=formulas_all.mapping()) as both:
        with FlopCounterMode(display=False, custom_mapping=formulas_fwd.mapping()) as fwd:
            loss = base(input_ids=ids, labels=ids).loss
        loss.backward()
    grads = {n: p.grad.clone() for n, p in base.named_parameters() if p.grad is not None}
    attention = fwd.get_flop_counts()["Global"].get(aten._scaled_dot_product_flash_attention_for_cpu, 0)
    total_fwd = fwd.get_total_flops()
    return loss.detach(), grads, total_fwd, both.get_total_flops() - total_fwd, attention


@pytest.fixture(scope="module")
def runs(tok):
    ids = _ids(tok)
    settings = {"none": {}, "nothing": {"keep": "nothing"}, "attention": {"keep": "attention"},
                "first1": {"keep": "nothing", "layers": 1}, "zero": {"keep": "nothing", "layers": 0}}
    return {name: _step(_base(tok, **kw), ids) for name, kw in settings.items()}


def test_every_setting_gives_the_gradients_of_no_recompute(runs):
    loss, grads = runs["none"][:2]
    assert len(grads) > 10
    for name in ("nothing", "attention", "first1", "zero"):
        other_loss, other = runs[name][:2]
        assert torch.equal(other_loss, loss), name
        assert other.keys() == grads.keys(), name
        for k in grads:
            assert torch.equal(other[k], grads[k]), (name, k)


def test_keep_attention_skips_exactly_the_attention_forward_in_the_recompute(runs):
    _, _, fwd, bwd_none, attention = runs["none"]
    bwd_nothing, bwd_attention = runs["nothing"][3], runs["attention"][3]
    assert attention > 0 and runs["nothing"][2] == runs["attention"][2] == fwd
    layers_fwd = bwd_nothing - bwd_none  # the recompute of every decoder layer
    assert 0 < layers_fwd < fwd
    assert bwd_nothing - bwd_attention == attention


def test_layers_checkpoints_the_first_k(tok, runs):
    bwd_none, bwd_all, bwd_first1, bwd_zero = (runs[k][3] for k in ("none", "nothing", "first1", "zero"))
    assert bwd_zero == bwd_none
    assert (bwd_first1 - bwd_none) * 4 == bwd_all - bwd_none  # 1 of 4 identical layers
    base = _base(tok, keep="nothing", layers=3)
    flags = [layer.gradient_checkpointing for layer in base.model.language_model.layers]
    assert flags == [True, True, True, False]


def test_bad_settings_name_the_choices(tok):
    base = tiny_qwen3vl(tok, layers=2)
    with pytest.raises(ValueError, match=r"keep='all'.*attention.*nothing"):
        enable_recompute(base, keep="all")
    with pytest.raises(ValueError, match=r"layers=3: the LLM has 2 decoder layers"):
        enable_recompute(base, layers=3)


def test_config_checks_the_options():
    from geovr.train.config import ConfigError, tiny, validate

    cfg = tiny()
    cfg.model.checkpoint_keep = "all"
    with pytest.raises(ConfigError, match="model.checkpoint_keep"):
        validate(cfg)
    cfg = tiny()
    cfg.model.checkpoint_layers = -1
    with pytest.raises(ConfigError, match="model.checkpoint_layers"):
        validate(cfg)
    cfg = tiny()
    cfg.model.checkpoint_layers = 2
    validate(cfg)
    cfg.parallel.backend, cfg.parallel.tp = "megatron", 2
    with pytest.raises(ConfigError, match="model.checkpoint_layers: is the ddp backend's"):
        validate(cfg, world_size=2)
