"""`geovr.plan.prefill`: the prefill FLOPs of a VSI-Bench prompt whole and split as the harness's
`--share-prefix` runs it, counted on fake tensors, agree with a count on real tensors, and the two
ways sum to the same work for one question."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from geovr.plan.build import plan_tokenizer
from geovr.plan.prefill import count_prefill, prefill_table, prompt

FRAMES, TOKENS = 8, 300


@pytest.fixture(scope="module")
def counted():
    return count_prefill("tiny", FRAMES, TOKENS)


def test_one_question_costs_the_same_both_ways_and_many_cost_less_shared(counted):
    c = counted
    q = prompt(plan_tokenizer(), FRAMES, TOKENS)
    assert c.prefix_tokens + c.suffix_tokens == len(q.input_ids) and 0 < c.suffix_tokens < 200
    # the suffix's tokens attend each other fully over the cache (a causal kernel skips half): a sliver more
    assert c.whole <= c.prefix + c.suffix <= c.whole * 1.002
    assert c.per_video(18, shared=True) < 0.15 * c.per_video(18, shared=False)
    table = prefill_table({FRAMES: c}, "tiny", videos=2, per_video=3)
    assert f"| {FRAMES} frames | {c.prefix_tokens} + {c.suffix_tokens} |" in table


def test_the_fake_count_equals_a_real_one(counted):
    """The whole prompt's forward on real weights counts what the fake run counts."""
    from geovr.eval.shared_prefix import rope_index
    from geovr.plan.build import base_model
    from geovr.plan.parts import AttentionFormulas
    from geovr.plan.spec import StepSpec

    tok = plan_tokenizer()
    q = prompt(tok, FRAMES, TOKENS)
    net = base_model(StepSpec(model="tiny", frames=FRAMES, tokens_per_frame=TOKENS), tok).eval()
    pos, _ = rope_index(net, q, len(q.input_ids))
    counter = FlopCounterMode(display=False, custom_mapping=AttentionFormulas().mapping())
    with counter, torch.no_grad():
        net(input_ids=q.input_ids[None], position_ids=pos, mm_token_type_ids=q.mm_token_type_ids[None],
            pixel_values_videos=q.pixel_values_videos, video_grid_thw=q.video_grid_thw, logits_to_keep=1)
    assert counter.get_total_flops() == counted.whole
