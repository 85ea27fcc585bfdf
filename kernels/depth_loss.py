"""Fused depth loss (L_reg + L_grad of geovr.losses.depth) over a packed varlen batch.

Forward, 7 launches (8 with weights), no host sync:
  1. stats     per band of BAND rows of one frame: valid count, sums of w, w*e, w*clamp(e), the 8
               finite-difference sums/counts (4 scales x 2 axes; a coarse scale visits only its own
               grid), and the level-1 histogram of the threshold key;
               with an fp32 input it also writes D = pred - target (NaN where masked out) as fp32,
               which the later passes read instead of pred, target and mask (see _uses_error_buffer)
  2. select    per sample: the bin holding the k-th smallest key, k = ceil(q (n - 1)) + 1
  3-6. refine  levels 2 and 3 of the radix select (histograms restricted to the chosen prefix),
               each followed by select; the key is the fp32 bit pattern of min(e, clamp) as int32
               (monotone for e >= 0; errors above clamp one step higher), split 11 + 10 + 10
               bits, so level 3 yields the exact k-th value. Level 2 reads every pixel and
               compacts the chosen level-1 bin's errors (the candidates); level 3 reads only
               them. The survivor sums (e <= thr) fold into these passes: keys below the chosen
               prefix are survivors, and each level-3 bin holds one exact value
  (6b. survivors: a separate pass over e <= thr, only for a weighted loss)
  7. finalize  per-sample branch (n <= min_pixels / too few survivors / filtered), L_reg, L_grad
               (averaged over the scales with enough pixels), the batch means and the per-sample
               coefficients the backward needs
Backward, 1 launch, per band: the gradient of every pixel (L_reg term + the finite-difference
pairs of the scales whose grid it lies on), scaled by the upstream gradients, written once in the
input dtype; one pass per scale over that scale's grid.

Traffic per pixel, fp32 (pred, target): minimal fwd+bwd 20 B (read both in forward, again in
backward, write the gradient); this kernel 24 B with the error buffer (stats 8 + 4 written,
level-2 refine 4, backward 4 + 4 written), plus 8 B per candidate (written once, read once;
the candidates are one level-1 bin's pixels, an eighth of an octave of error: about 1 % for a
smooth error distribution, all at worst), 28 B without the buffer. An exact k-th value needs
a second data-dependent pass, so 24 B (83 % of the minimal) bounds any such design. Half
types (4 B per re-read) re-read pred and target: 14 B against 10.

This module: the launch plan (_forward_plan, _backward_plan: one list of _Launch records, which
the autograd.Function runs and geovr.kernels.aot compiles, so the AOT variants are the launched
ones by construction), the autograd.Function and the launcher. The kernels: _depth_kernels; the
scratch layout and key constants both sides use: _depth_layout.
"""
from __future__ import annotations


import functools
import itertools
import struct
from dataclasses import dataclass, field

import torch
import triton
from torch import Tensor

from geovr.kernels import _depth_layout as L
from geovr.kernels._depth_kernels import (
    _depth_backward_kernel, _depth_finalize_kernel, _depth_refine_kernel, _depth_select_kernel,
    _depth_stats_kernel, _depth_survivors_kernel,
)
from geovr.losses._backend import kernel_dtype
from geovr.kernels._launch import FP_FUSION
from geovr.kernels._packing import band_layout, block_layout, check_int32_extent, pack_flat, to_device

# Tiles. The refines (and survivors) run over CHUNK consecutive pixels of one sample per program,
# in ITERS steps of BLOCK; the stats pass and the backward over bands of BAND rows of one frame,
# in tiles of at most BLOCK pixels (see _depth_kernels). Sizes follow ptxas's sm_90 resource usage
# and inner-loop SASS (python -m geovr.kernels.aot prints both; benchmarks/RESULTS.md reads them).
CHUNK = 8192
REFINE_TILE = (1024, 8)  # BLOCK, ITERS
FRAME_TILES = {"stats": (1024, 8), "backward": (512, 4)}  # BLOCK, num_warps
INTERPRET_TILE = (1024, 2)  # refines under TRITON_INTERPRET (CPU tensors): CHUNK 2048
INTERPRET_FRAME_TILE = (1024, 4)  # stats and backward under TRITON_INTERPRET
assert REFINE_TILE[0] * REFINE_TILE[1] == CHUNK

# What a caller can hand the kernels (geovr.losses.depth routes float64 to the reference): pred in
# one of KERNEL_DTYPES, the target read in pred's dtype or fp32 (_target_dtype), a mask or not, a
# weight or not. aot_specs() compiles every variant these reach; TRAINER_INPUTS is what the trainer
# (every preset, `paper` included) passes: fp32 pred and teacher depth, no mask, no weight.
KERNEL_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
TRAINER_INPUTS = (torch.float32, torch.float32, False, False)  # pred, target dtype, mask, weight
RELEASE_HW = (392, 504)  # the release's depth maps: the AOT variants' W_POW2


@dataclass(frozen=True)
class DepthLossSpec:
    """The loss constants (geovr.losses.depth passes the paper preset) and which inputs exist."""

    clamp: float
    quantile: tuple[int, int]
    min_pixels: int
    n_scales: int
    grad_min_pixels: int
    has_mask: bool
    has_weight: bool


_TRITON_TYPES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16",
                 torch.float64: "fp64", torch.int32: "i32", torch.int64: "i64", torch.uint8: "u8"}


@dataclass
class _Launch:
    """One kernel launch: the kernel, its grid, its runtime arguments by parameter name and its
    compile-time ones (num_warps among them where a kernel sets it)."""

    kernel: triton.runtime.JITFunction
    grid: tuple[int, ...]
    args: dict[str, Tensor | int]
    consts: dict[str, object] = field(default_factory=dict)

    def __call__(self) -> None:
        self.kernel[self.grid](**self.args, **self.consts, enable_fp_fusion=FP_FUSION)

    def signature(self) -> dict[str, str | tuple[str, ...]]:
        """Triton's signature of the runtime arguments (pointer dtypes from the tensors, a tuple's
        member by member)."""
        def one(v: Tensor | int) -> str:
            return f"*{_TRITON_TYPES[v.dtype]}" if isinstance(v, Tensor) else "i32"
        return {k: tuple(map(one, v)) if isinstance(v, tuple) else one(v) for k, v in self.args.items()}

    def name(self) -> str:
        """e.g. depth_refine2[fp32,buf,fold]: the dtypes read (> the gradient's), then the flags."""
        sig = self.signature()
        tag = "/".join(dict.fromkeys(t[1:] for t in sig["src"][:2])) if "src" in sig else ""
        if "g_ptr" in sig:
            tag += ">" + sig["g_ptr"][1:]
        flags = [word for key, word in (("HAS_MASK", "mask"), ("HAS_WEIGHT", "weight"), ("D_BUF", "buf"),
                                        ("FOLD", "fold")) if self.consts.get(key)]
        level = self.consts.get("LEVEL", "")
        base = self.kernel.fn.__name__.removeprefix("_").removesuffix("_kernel")
        parts = ",".join(filter(None, [tag, *flags]))
        return f"{base}{level}[{parts}]" if parts else f"{base}{level}"


@functools.lru_cache(maxsize=64)
def _sample_meta(lengths: tuple[int, ...], hw: tuple[tuple[int, int], ...], device: torch.device) -> Tensor:
    """int32 [B, META] = (pixels, H, W) per sample; cached, like block_layout, per batch layout."""
    rows = [[0] * int(L.META) for _ in lengths]
    for row, n, (h, w) in zip(rows, lengths, hw):
        row[int(L.META_PIXELS)], row[int(L.META_H)], row[int(L.META_W)] = n, h, w
    return to_device(rows, torch.int32, device)


def _float_bits(x: float) -> int:
    """The int32 bit pattern of fp32 x."""
    return struct.unpack("<i", struct.pack("<f", x))[0]


def _tile(kernel: str, device: torch.device) -> dict[str, int]:
    """Launch constexprs of `kernel` for `device` ("meta": planning for a GPU): "refine" (also
    survivors): BLOCK and ITERS; "stats" and "backward": BLOCK and num_warps (a launch option, not
    a constexpr); the caller adds W_POW2."""
    cuda = device.type in ("cuda", "meta")
    if kernel == "refine":
        block, iters = REFINE_TILE if cuda else INTERPRET_TILE
        return dict(BLOCK=block, ITERS=iters)
    block, num_warps = FRAME_TILES[kernel] if cuda else INTERPRET_FRAME_TILE
    return dict(BLOCK=block, num_warps=num_warps)


def _chunk(device: torch.device) -> int:
    return CHUNK if device.type in ("cuda", "meta") else INTERPRET_TILE[0] * INTERPRET_TILE[1]


def _w_pow2(hw: list[tuple[int, int]]) -> int:
    """W_POW2 constexpr: the next power of 2 of the widest frame (tiles never exceed it)."""
    return triton.next_power_of_2(max(w for _, w in hw))


def _uses_error_buffer(p: Tensor, t: Tensor) -> bool:
    """Write D once in the stats pass when re-reading the inputs costs more than reading it.

    The buffer costs 4 B per pixel written once and saves (re-read bytes - 4) in each of the two
    later full passes (level-2 refine, backward): from 6 B per re-read (any fp32 input) a gain or
    break-even (then the backward's simpler loads decide), a loss at 4 or 5 (half-precision pred
    and target, with or without a 1-byte mask)."""
    return p.element_size() + t.element_size() >= 6


def _target_dtype(pred: torch.dtype, target: torch.dtype) -> torch.dtype:
    """The dtype the kernels read the target in: its own when it is pred's or fp32, else fp32
    (exact for the half types; a float64 target rounds as the reference's fp32 math does)."""
    return target if target in (pred, torch.float32) else torch.float32


@dataclass
class _ForwardPlan:
    launches: list[_Launch]
    out: Tensor  # fp32 [3]: loss, reg, grad
    par: Tensor  # fp32 [B, PAR]: what the backward needs
    offsets: Tensor
    bands: Tensor
    meta: Tensor
    d: Tensor | None  # the error buffer, or None


def _forward_plan(spec: DepthLossSpec, p: Tensor, t: Tensor, m: Tensor, w: Tensor,
                  lengths: tuple[int, ...], hw: list[tuple[int, int]], d_buf: bool) -> _ForwardPlan:
    """The forward's launches and buffers (allocated, not yet written); with d_buf the later passes
    read the error buffer, not p, t and m. Meta tensors plan the GPU's launches without running."""
    dev = p.device
    B = len(lengths)
    offsets, blocks = block_layout(lengths, _chunk(dev), dev)
    bands = band_layout(lengths, tuple(hw), int(L.BAND), dev)
    meta = _sample_meta(lengths, tuple(hw), dev)
    cnt = torch.zeros(B, int(L.CNT), dtype=torch.int32, device=dev)
    sel = torch.zeros(B, int(L.SEL), dtype=torch.int32, device=dev)
    hist = torch.zeros(B, int(L.HIST), dtype=torch.int32, device=dev)
    acc = torch.zeros(B, int(L.ACC), dtype=torch.float32, device=dev)
    par = torch.empty(B, int(L.PAR), dtype=torch.float32, device=dev)
    out = torch.empty(3, dtype=torch.float32, device=dev)
    d = torch.empty(p.numel(), dtype=torch.float32, device=dev) if d_buf else None
    cand = torch.empty(p.numel(), dtype=torch.float32, device=dev)  # the level-1 bin's errors
    n_cand = torch.zeros(blocks.shape[0], dtype=torch.int32, device=dev)  # per refine program
    chunks = (blocks.shape[0],)
    later = (d, d, d) if d_buf else (p, t, m)  # what the passes after the stats pass read
    chunk_maps = (blocks, offsets, meta)
    fold = not spec.has_weight  # unweighted: the survivor sums fold into refine and select
    q_num, q_den = spec.quantile
    select = dict(CLAMP_KEY=_float_bits(spec.clamp), MIN_PIXELS=spec.min_pixels, Q_NUM=q_num,
                  Q_DEN=q_den, FOLD=fold)
    scratch = (cnt, acc, sel, hist)
    launches = [_Launch(
        _depth_stats_kernel, (bands.shape[0],),
        dict(src=(p, t, m), w_ptr=w, d_ptr=d if d_buf else p, maps=(bands, offsets, meta), scratch=scratch),
        dict(CLAMP=spec.clamp, HAS_MASK=spec.has_mask, HAS_WEIGHT=spec.has_weight, D_BUF=d_buf,
             N_SCALES=spec.n_scales, W_POW2=_w_pow2(hw), **_tile("stats", dev)))]
    launches.append(_Launch(_depth_select_kernel, (B,), dict(scratch=scratch), dict(LEVEL=1, **select)))
    for level in (2, 3):
        launches.append(_Launch(
            _depth_refine_kernel, chunks, dict(src=later, c_ptr=cand, nc_ptr=n_cand, maps=chunk_maps, scratch=scratch),
            dict(CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels, HAS_MASK=spec.has_mask, D_BUF=d_buf,
                 LEVEL=level, FOLD=fold, **_tile("refine", dev))))
        launches.append(_Launch(_depth_select_kernel, (B,), dict(scratch=scratch), dict(LEVEL=level, **select)))
    if not fold:
        launches.append(_Launch(
            _depth_survivors_kernel, chunks,
            dict(src=later, w_ptr=w, maps=chunk_maps, scratch=scratch),
            dict(CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels, HAS_MASK=spec.has_mask, D_BUF=d_buf,
                 HAS_WEIGHT=spec.has_weight, **_tile("refine", dev))))
    launches.append(_Launch(
        _depth_finalize_kernel, (1,),
        dict(scratch=scratch, meta_ptr=meta, par_ptr=par, out_ptr=out, B=B),
        dict(CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels, N_SCALES=spec.n_scales,
             GRAD_MIN_PIXELS=spec.grad_min_pixels, BLOCK_B=max(triton.next_power_of_2(B), 16))))
    return _ForwardPlan(launches, out, par, offsets, bands, meta, d)


def _backward_plan(spec: DepthLossSpec, src: tuple[Tensor, Tensor, Tensor], w: Tensor | None,
                   g: Tensor, plan: tuple[Tensor, Tensor, Tensor, Tensor], gout: Tensor, n_samples: int,
                   d_buf: bool, w_pow2: int) -> _Launch:
    """The backward's launch: src = what the forward kept (the error buffer thrice, or p, t, m);
    g the gradient to write (pred's dtype); plan = (par, offsets, bands, meta); gout fp32 [3]."""
    par, offsets, bands, meta = plan
    return _Launch(
        _depth_backward_kernel, (bands.shape[0],),
        dict(src=src, w_ptr=src[0] if w is None else w, g_ptr=g, maps=(bands, offsets, meta), par_ptr=par,
             gout_ptr=gout, B=n_samples),
        dict(CLAMP=spec.clamp, HAS_MASK=spec.has_mask, HAS_WEIGHT=spec.has_weight, D_BUF=d_buf,
             N_SCALES=spec.n_scales, W_POW2=w_pow2, **_tile("backward", src[0].device)))


def _launch_forward(spec: DepthLossSpec, p: Tensor, t: Tensor, m: Tensor, w: Tensor,
                    lengths: tuple[int, ...], hw: list[tuple[int, int]], d_buf: bool = False):
    """Runs the forward. Returns (out [3], per-sample params, offsets, bands, meta, error buffer
    or None)."""
    plan = _forward_plan(spec, p, t, m, w, lengths, hw, d_buf)
    for launch in plan.launches:
        launch()
    return plan.out, plan.par, plan.offsets, plan.bands, plan.meta, plan.d


class DepthLossFunction(torch.autograd.Function):
    """forward(spec, n_samples, *pred, *target[, *mask][, *weight]) -> (loss, reg, grad)."""

    @staticmethod
    def forward(ctx, spec: DepthLossSpec, n_samples: int, *tensors: Tensor):
        preds = tensors[:n_samples]
        targets = tensors[n_samples:2 * n_samples]
        rest = list(tensors[2 * n_samples:])
        masks = rest[:n_samples] if spec.has_mask else None
        weights = rest[-n_samples:] if spec.has_weight else None
        p = pack_flat(preds)
        t = pack_flat(targets, _target_dtype(p.dtype, targets[0].dtype))
        m = pack_flat(masks).view(torch.uint8) if masks else p
        w = pack_flat(weights, torch.float32) if weights else p
        lengths = tuple(x.numel() for x in preds)
        hw = [tuple(x.shape[1:]) for x in preds]
        d_buf = _uses_error_buffer(p, t)
        out, par, offsets, bands, meta, d = _launch_forward(spec, p, t, m, w, lengths, hw, d_buf)
        # backward reads D alone when it exists (pred, target and mask are then not kept)
        src = (d, d, d) if d_buf else (p, t, m)
        ctx.save_for_backward(*src, w if spec.has_weight else None, par, offsets, bands, meta)
        ctx.spec, ctx.n_tensors, ctx.d_buf = spec, len(tensors), d_buf
        ctx.shapes = [(x.shape, x.dtype) for x in preds]
        ctx.w_pow2 = _w_pow2(hw)
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx, g_loss: Tensor, g_reg: Tensor, g_grad: Tensor):
        p, t, m, w, *plan = ctx.saved_tensors
        gout = torch.stack([g_loss, g_reg, g_grad]).float()
        g = torch.empty(p.numel(), dtype=ctx.shapes[0][1], device=p.device)
        _backward_plan(ctx.spec, (p, t, m), w, g, plan, gout, len(ctx.shapes), ctx.d_buf, ctx.w_pow2)()
        sizes = [shape.numel() for shape, _ in ctx.shapes]
        grads = [gi.view(shape).to(dt) for gi, (shape, dt) in zip(g.split(sizes), ctx.shapes)]
        return (None, None, *grads, *([None] * (ctx.n_tensors - len(grads))))


def fused_depth_loss(
    pred: list[Tensor], target: list[Tensor], valid_mask: list[Tensor] | None,
    weight: list[Tensor] | None, *, clamp: float, quantile: tuple[int, int], min_pixels: int,
    n_scales: int, grad_min_pixels: int,
) -> tuple[Tensor, Tensor, Tensor]:
    """Launcher used by geovr.losses.depth_loss (which validates the inputs)."""
    if not 1 <= n_scales <= 4:
        raise ValueError(f"n_scales: the fused depth kernel has 1 to 4 finite-difference scales, got {n_scales}")
    spec = DepthLossSpec(clamp, quantile, min_pixels, n_scales, grad_min_pixels, valid_mask is not None,
                         weight is not None)
    for i, x in enumerate(pred):  # pixels of one sample are indexed in int32 (samples' offsets in int64)
        check_int32_extent(f"pred[{i}]", x.numel(), "pixels in one sample")
    dtype = kernel_dtype(pred[0].device, pred[0].dtype)  # bf16 read as fp32 below sm_80
    target = [x.detach() for x in target]
    extra = [*(valid_mask or []), *(x.detach() for x in (weight or []))]
    pred = [x if x.dtype == dtype else x.to(dtype) for x in pred]
    return DepthLossFunction.apply(spec, len(pred), *pred, *target, *extra)


def reachable_inputs() -> list[tuple[torch.dtype, torch.dtype, bool, bool]]:
    """Every (pred dtype, target dtype as read, mask, weight) a caller can reach."""
    pairs = [(p, t) for p in KERNEL_DTYPES for t in dict.fromkeys((p, torch.float32))]
    return [(p, t, mask, weight) for (p, t), mask, weight in itertools.product(pairs, (False, True), (False, True))]


def planned_launches(inputs: tuple[torch.dtype, torch.dtype, bool, bool],
                     hw: tuple[int, int] = RELEASE_HW) -> list[_Launch]:
    """The GPU launches of one forward and backward for `inputs` (see reachable_inputs) over one
    [2, *hw] sample, planned on meta tensors with the constants of geovr.losses.depth."""
    from geovr.losses.depth import CLAMP, GRAD_MIN_PIXELS, MIN_PIXELS, N_SCALES, QUANTILE  # one definition

    p_dtype, t_dtype, has_mask, has_weight = inputs
    spec = DepthLossSpec(CLAMP, QUANTILE, MIN_PIXELS, N_SCALES, GRAD_MIN_PIXELS, has_mask, has_weight)
    n = 2 * hw[0] * hw[1]
    meta = torch.device("meta")
    p = torch.empty(n, dtype=p_dtype, device=meta)
    t = torch.empty(n, dtype=t_dtype, device=meta)
    m = torch.empty(n, dtype=torch.uint8, device=meta) if has_mask else p
    w = torch.empty(n, dtype=torch.float32, device=meta) if has_weight else p
    d_buf = _uses_error_buffer(p, t)
    plan = _forward_plan(spec, p, t, m, w, (n,), [hw], d_buf)
    src = (plan.d,) * 3 if d_buf else (p, t, m)
    gout = torch.empty(3, dtype=torch.float32, device=meta)
    backward = _backward_plan(spec, src, w if has_weight else None, torch.empty(n, dtype=p_dtype, device=meta),
                              (plan.par, plan.offsets, plan.bands, plan.meta), gout, 1, d_buf, _w_pow2([hw]))
    return [*plan.launches, backward]


def _aot_specs() -> list[tuple]:
    """(name, kernel, signature, constexprs, trainer) for geovr.kernels.aot: each distinct kernel
    variant that reachable_inputs() launch, once; trainer: TRAINER_INPUTS launch it."""
    trainer = {l.name() for l in planned_launches(TRAINER_INPUTS)}
    specs: dict[str, tuple] = {}
    for inputs in reachable_inputs():
        for launch in planned_launches(inputs):
            name = launch.name()
            spec = (name, launch.kernel, launch.signature(), launch.consts, name in trainer)
            # a name is one variant: the same kernel, signature and constants wherever it is reached
            assert specs.setdefault(name, spec)[1:4] == spec[1:4], f"two variants named {name}"
    return list(specs.values())
