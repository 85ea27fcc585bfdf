"""The heads run once per micro-batch (per group of video samples with equal grids), and each
sample's prediction equals the head run on that sample alone."""
import dataclasses

import torch

from model_helpers import small_heads, tiny_qwen3vl
from geovr.model.geovr_model import GeoVRModel
from geovr.model.heads.batching import groups, per_frame_batched


def test_groups_and_per_frame_batching_keep_sample_order():
    assert groups(["a", "b", "a", "c", "b"]) == [[0, 2], [1, 4], [3]]
    calls = []

    def head(xs, key):
        calls.append((key, xs[0].shape[0]))
        return xs[0] * 10 + xs[1] + key

    inputs = [[torch.full((n, 2), float(i)), torch.ones(n, 2)] for i, n in enumerate((3, 1, 2))]
    out = per_frame_batched(head, inputs, [5, 7, 5])
    assert calls == [(5, 5), (7, 1)]  # samples 0 and 2 in one call
    for i, (x, one) in enumerate(inputs):
        assert torch.equal(out[i], x * 10 + one + (7 if i == 1 else 5))


def test_one_head_call_per_micro_batch_equals_per_sample_calls(tok, batch):
    b, _ = batch
    base = tiny_qwen3vl(tok).double()
    model = GeoVRModel(base, dataclasses.replace(small_heads(), teacher_dim=32)).double().eval()
    b = {k: (v.double() if torch.is_tensor(v) and v.is_floating_point() else v) for k, v in b.items()}
    seen = {}
    hooks = [m.register_forward_hook(lambda mod, args, out, name=name: seen.setdefault(name, []).append((args, out)))
             for name, m in (("depth", model.depth_head), ("camera", model.camera_head), ("scale", model.scale_head),
                             *((f"proj{g}", p) for g, p in model.projectors.items()))]
    with torch.no_grad():
        out = model(b)
    for h in hooks:
        h.remove()
    assert len(out.depth) == 2 and all(len(calls) == 1 for calls in seen.values())  # one call each, two samples
    (grids, size), _ = seen["depth"][0]
    frames = [d.shape[0] for d in out.depth]
    with torch.no_grad():
        for i, part in enumerate(zip(*(g.split(frames) for g in grids))):
            torch.testing.assert_close(model.depth_head(list(part), size), out.depth[i], rtol=1e-12, atol=1e-12)
        (tokens,), _ = seen["camera"][0]
        for i, part in enumerate(tokens.split(frames)):
            torch.testing.assert_close(model.camera_head(part), out.pose[i], rtol=1e-12, atol=1e-12)
        for g, proj in model.projectors.items():
            (grid, psize), _ = seen[f"proj{g}"][0]
            for i, part in enumerate(grid.split(frames)):
                torch.testing.assert_close(proj(part, psize), out.features[int(g)][i], rtol=1e-12, atol=1e-12)
    assert out.scale.shape == (2,)
