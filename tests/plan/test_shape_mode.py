"""ShapeMode keeps integer metadata real (so data-dependent code runs) while floats are fake, and
counts every stand-in it takes; LiveBytes follows storages to the peak and splits it."""
import torch

from geovr.plan.memory import LiveBytes
from geovr.plan.shape_mode import ShapeMode


def test_integer_metadata_keeps_its_values_floats_are_fake():
    with ShapeMode() as mode:
        grid = torch.tensor([[4, 6, 8]])
        lengths = (grid[:, 1] * grid[:, 2]).repeat_interleave(grid[:, 0])  # data-dependent output shape
        assert lengths.tolist() == [48, 48, 48, 48]
        x = torch.randn(int(lengths.sum()), 16)
        parts = torch.split(x, lengths.tolist())
        assert [p.shape[0] for p in parts] == [48] * 4
        ids = torch.zeros(10, dtype=torch.long)
        ids[3:7] = 5  # a constant written by constants stays one
        assert torch.nonzero(ids == 5).flatten().tolist() == [3, 4, 5, 6]
        assert mode.fallbacks == {}
        y = x.sum()
        assert float(y) == 1.0 and mode.fallbacks["item"] == 1  # a float's value: the stand-in
        kept = x[x > 0]  # a float-derived mask keeps every element (the upper bound)
        assert kept.shape == (192 * 16,) and mode.fallbacks["nonzero"] == 1
    assert type(x).__name__ == "FakeTensor" and not isinstance(lengths, torch.nn.Parameter)


def test_live_bytes_peak_and_split():
    w = torch.zeros(1000)  # 4000 B, made before: tracked
    live = LiveBytes()
    live.track(w)
    with live:
        a = torch.ones(2000)  # 8000 B
        b = a * 2  # 8000 B: the peak holds w, a, b
        del a
        c = b + 1  # a died first: no new peak
        del b
    assert live.peak == 4000 + 16000
    split = live.classify({"weights": [w]})
    assert split == {"weights": 4000, "activations": 16000}
    assert live.live == 4000 + 8000 and c.numel() == 2000
    top = live.largest_at_peak(1)[0]
    assert top[0] == 8000 and top[2] == (2000,)


def test_live_bytes_phase_peaks_are_over_their_start():
    live = LiveBytes()
    with live:
        keep = torch.ones(100)
        with live.phase("teacher"):
            tmp = torch.ones(1000)
            del tmp
        after = torch.ones(10)
    assert live.phase_start["teacher"] == 400 and live.phase_peak["teacher"] == 4400
    assert keep.numel() + after.numel() == 110
