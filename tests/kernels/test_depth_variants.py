"""The depth kernel variants that callers reach are exactly the ones compiled ahead of time.

geovr.kernels.aot compiles (and spill-checks, tests/kernels/test_aot_compile.py) the variants the
launch plan yields for every input a caller can reach (depth_loss.reachable_inputs). Here the real
entry point, geovr.losses.depth_loss, runs forward and backward under the interpreter for every
dtype pair, mask and weight a user can pass, and each launch it makes must be one of those compiled
variants (same kernel, signature and flags; tile sizes and W_POW2 differ on the CPU by design), and
every compiled variant must be launched by some call, so the list cannot drift from the launcher.
"""
import itertools

import pytest
import torch

import geovr.kernels.depth_loss as depth_kernel
from geovr.losses import depth_loss

SHAPE_CONSTS = {"BLOCK", "ITERS", "num_warps", "W_POW2", "BLOCK_B"}  # tiles and shapes, not flags
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _flags(consts: dict) -> dict:
    return {k: v for k, v in consts.items() if k not in SHAPE_CONSTS}


def _compiled() -> dict[str, tuple]:
    return {name: (fn, sig, _flags(consts), trainer) for name, fn, sig, consts, trainer in depth_kernel._aot_specs()}


def _run(pred_dtype, target_dtype, has_mask, has_weight, monkeypatch) -> list[depth_kernel._Launch]:
    seen = []
    run = depth_kernel._Launch.__call__
    monkeypatch.setattr(depth_kernel._Launch, "__call__", lambda self: (seen.append(self), run(self))[1])
    g = torch.Generator().manual_seed(0)
    shape = (1, 40, 30)  # 1200 pixels: above MIN_PIXELS, so the quantile filter runs
    pred = [(torch.rand(shape, generator=g) + 0.5).to(pred_dtype).requires_grad_()]
    target = [(torch.rand(shape, generator=g) + 0.5).to(target_dtype)]
    mask = [torch.rand(shape, generator=g) > 0.1] if has_mask else None
    weight = [torch.rand(shape, generator=g)] if has_weight else None
    loss, _, _ = depth_loss(pred, target, mask, weight=weight, backend="triton")
    loss.backward()
    want = depth_loss([p.detach().requires_grad_() for p in pred], target, mask, weight=weight, backend="reference")[0]
    torch.testing.assert_close(loss, want, rtol=2e-5, atol=2e-6)
    return seen


def test_every_launch_is_a_compiled_variant_and_every_variant_is_launched(monkeypatch):
    compiled = _compiled()
    launched = set()
    for p, t, mask, weight in itertools.product(DTYPES, (*DTYPES, torch.float64), (False, True), (False, True)):
        for launch in _run(p, t, mask, weight, monkeypatch):
            name = launch.name()
            assert name in compiled, f"pred {p}, target {t}, mask {mask}, weight {weight} launch {name}, never compiled"
            fn, sig, flags, _ = compiled[name]
            assert (launch.kernel, launch.signature(), _flags(launch.consts)) == (fn, sig, flags), name
            launched.add(name)
    assert launched == set(compiled), f"compiled but never launched: {sorted(set(compiled) - launched)}"


def test_the_trainer_variants_are_marked(monkeypatch):
    # the trainer passes fp32 predictions and fp32 teacher depth, no mask, no weight (every preset)
    assert depth_kernel.TRAINER_INPUTS == (torch.float32, torch.float32, False, False)
    trainer = {name for name, (*_, marked) in _compiled().items() if marked}
    assert trainer == {launch.name() for launch in _run(torch.float32, torch.float32, False, False, monkeypatch)}
    assert {"depth_stats[fp32,buf]", "depth_refine2[fp32,buf,fold]", "depth_refine3[fp32,buf,fold]",
            "depth_backward[fp32>fp32,buf]"} <= trainer


@pytest.mark.parametrize("pred, target, read", [
    (torch.float32, torch.float32, torch.float32), (torch.bfloat16, torch.bfloat16, torch.bfloat16),
    (torch.bfloat16, torch.float32, torch.float32), (torch.bfloat16, torch.float16, torch.float32),
    (torch.float32, torch.bfloat16, torch.float32), (torch.float32, torch.float64, torch.float32),
])
def test_target_read_dtype(pred, target, read):
    # pred's dtype or fp32 as given; anything else as fp32 (exact for half types, and the
    # reference's own rounding of a float64 target)
    assert depth_kernel._target_dtype(pred, target) == read


def test_scratch_layout_fields_tile_each_row():
    # each per-sample row is its fields back to back (kernels and launcher both read _depth_layout)
    from geovr.kernels import _depth_layout as L

    rows = {
        "CNT": ([L.CNT_VALID, L.CNT_SURV], L.CNT_FD, L.CNT),
        "ACC": ([L.ACC_W, L.ACC_WE, L.ACC_WEC, L.ACC_SURV_W, L.ACC_SURV_WE], L.ACC_FD, L.ACC),
        "PAR": ([L.PAR_REG, L.PAR_LIM, L.PAR_BRANCH], L.PAR_FD, L.PAR),
    }
    for name, (scalars, fd, width) in rows.items():
        offsets = sorted([int(x) for x in scalars] + list(range(int(fd), int(fd) + int(L.N_FD))))
        assert offsets == list(range(int(width))), name
    assert sorted([int(L.SEL_PREFIX), int(L.SEL_RANK)]) == list(range(int(L.SEL)))
    assert [L.hist_at(level) for level in (1, 2, 3)] == [0, int(L.NB1), int(L.NB1) + int(L.NB_FINE)]
    assert int(L.HIST) == int(L.NB1) + 2 * int(L.NB_FINE)
    assert int(L.BAND) % 8 == 0  # a band holds whole grids of the coarsest scale (step 8)
