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
               (averaged over the scales with enough pixels), the batch means and the per-sample coefficients the backward needs
Backward, 1 launch, per band: the gradient of every pixel (L_reg term + the finite-difference
pairs of the scales whose grid it lies on), scaled by the upstream gradients, written once in the
input dtype; one pass per scale over that scale's grid. Invalid or out-of-frame values load as
NaN, so every comparison drops them (_load_or_nan) and no validity flag stays live.

Traffic per pixel, fp32 (pred, target): minimal fwd+bwd 20 B (read both in forward, again in
backward, write the gradient); this kernel 24 B with the error buffer (stats 8 + 4 written,
level-2 refine 4, backward 4 + 4 written), plus 8 B per candidate (written once, read once;
the candidates are one level-1 bin's pixels, an eighth of an octave of error: about 1 % for a
smooth error distribution, all at worst), 28 B without the buffer. An exact k-th value needs
a second data-dependent pass, so 24 B (83 % of the minimal) bounds any such design. Half
types (4 B per re-read) re-read pred and target: 14 B against 10.
Loads upcast to fp32 before any arithmetic (also works around the interpreter's bf16 bug).
"""
from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import torch
import triton
import triton.language as tl
from torch import Tensor

from geovr.kernels._packing import band_layout, block_layout, pack_flat, to_device

# The refines (and survivors) run over CHUNK consecutive pixels of one sample per program, in ITERS
# steps of BLOCK. The stats pass and the backward need each pixel's row and column: they run over
# bands of BAND rows of one frame (_packing.band_layout), walking lattices of the band (rows and
# columns in power-of-2 steps; every pixel is the lattice of step 1) in tiles of at most BLOCK
# pixels whose widths are powers of 2 (_lattice), so that row and column come from the program
# and lane ids by shifts, with no integer division. Sizes follow ptxas's sm_90 resource usage and
# inner-loop SASS (python -m geovr.kernels.aot prints both; benchmarks/RESULTS.md reads them).
CHUNK = 8192
REFINE_TILE = (1024, 8)  # BLOCK, ITERS
BAND = 16  # a multiple of 8, the coarsest finite-difference step
FRAME_TILES = {"stats": (1024, 8), "backward": (512, 4)}  # BLOCK, num_warps
INTERPRET_TILE = (1024, 2)  # refines under TRITON_INTERPRET (CPU tensors): CHUNK 2048
INTERPRET_FRAME_TILE = (1024, 4)  # stats and backward under TRITON_INTERPRET
assert REFINE_TILE[0] * REFINE_TILE[1] == CHUNK
NB1, NB2, NB3 = 2048, 1024, 1024  # radix levels: key bits [30:20], [19:10], [9:0]
HIST = NB1 + NB2 + NB3
N_CNT = 10  # int32 per sample: valid, survivors, 8 finite-difference pair counts
N_ACC = 13  # fp32 per sample: sum w, w e, w ec, w surv, w surv e, 8 finite-difference sums
N_SEL = 2  # int32 per sample: key prefix, remaining rank
N_PAR = 11  # fp32 per sample: reg coefficient, L_reg limit, branch, 8 finite-difference coefficients


@triton.jit
def _kept(m_ptr, y, idx, inb):
    """valid_mask set at idx and the target y finite (NaN and inf both fail)."""
    m = tl.load(m_ptr + idx, mask=inb, other=0)
    return (m != 0) & (tl.abs(y) < float("inf"))


@triton.jit
def _load_pixel(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK: tl.constexpr):
    """(D = pred - target as fp32, valid) at flat indices idx; D is 0 where invalid."""
    x = tl.load(p_ptr + idx, mask=inb, other=0.0).to(tl.float32)
    y = tl.load(t_ptr + idx, mask=inb, other=0.0).to(tl.float32)
    valid = inb
    if HAS_MASK:
        valid = valid & _kept(m_ptr, y, idx, inb)
    return tl.where(valid, x - y, 0.0), valid


@triton.jit
def _load_diff(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """_load_pixel, or with D_BUF (p_ptr is then the fp32 error buffer, NaN where masked out) one
    load of the stored D."""
    if D_BUF:
        d = tl.load(p_ptr + idx, mask=inb, other=0.0)
        valid = inb
        if HAS_MASK:
            valid = valid & (d == d)
        d = tl.where(valid, d, 0.0)
    else:
        d, valid = _load_pixel(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK)
    return d, valid


@triton.jit
def _load_or_nan(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """D at flat indices idx as fp32; NaN where invalid or not inb, so that the backward's
    comparisons (|D| <= lim, |dD| <= CLAMP) are false there and drop the pixel's or pair's term."""
    d = tl.load(p_ptr + idx, mask=inb, other=float("nan")).to(tl.float32)
    if not D_BUF:
        y = tl.load(t_ptr + idx, mask=inb, other=0.0).to(tl.float32)
        d -= y
        if HAS_MASK:
            d = tl.where(_kept(m_ptr, y, idx, inb), d, float("nan"))
    return d


@triton.jit
def _neighbour(p_ptr, t_ptr, m_ptr, off, idx, ok, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """_load_or_nan at idx + off, by shifting the base pointers (scalar) rather than idx, so the
    load costs one address computation from idx."""
    return _load_or_nan(p_ptr + off, t_ptr + off, m_ptr + off, idx, ok, HAS_MASK, D_BUF)


@triton.jit
def _error_key(e, CLAMP: tl.constexpr):
    """Order-preserving int32 key of min(e, CLAMP) for e >= 0: its fp32 bit pattern, with errors
    above CLAMP one step higher (they rank as CLAMP, as in the release, yet are not survivors)."""
    return tl.minimum(e, CLAMP).to(tl.int32, bitcast=True) + (e > CLAMP).to(tl.int32)


@triton.jit
def _sample_of_program(blocks_ptr, offsets_ptr, meta_ptr):
    pid = tl.program_id(0)
    b = tl.load(blocks_ptr + 2 * pid)
    start = tl.load(blocks_ptr + 2 * pid + 1)
    base = tl.load(offsets_ptr + b)
    n = tl.load(meta_ptr + 3 * b)
    h = tl.load(meta_ptr + 3 * b + 1)
    w = tl.load(meta_ptr + 3 * b + 2)
    return b, start, base, n, h, w


@triton.jit
def _band_of_program(bands_ptr, offsets_ptr, meta_ptr, BAND: tl.constexpr):
    """(sample, flat index of the frame's first pixel, first row, end row, H, W) of the program's
    band: rows [row0, row_end) of one frame (see _packing.band_layout). Kernels add the int64
    frame index to their pointers once, so that per-pixel offsets row * W + col stay int32."""
    pid = tl.program_id(0)
    b = tl.load(bands_ptr + 3 * pid)
    base = tl.load(offsets_ptr + b) + tl.load(bands_ptr + 3 * pid + 1)
    row0 = tl.load(bands_ptr + 3 * pid + 2)
    h = tl.load(meta_ptr + 3 * b + 1)
    w = tl.load(meta_ptr + 3 * b + 2)
    return b, base, row0, tl.minimum(row0 + BAND, h), h, w


@triton.jit
def _lattice(row0, R_OFF: tl.constexpr, R_STEP: tl.constexpr, C_STEP: tl.constexpr,
             BAND: tl.constexpr, BLOCK: tl.constexpr, W_POW2: tl.constexpr):
    """The lanes of a tile over the band's lattice: rows row0 + R_OFF + R_STEP j (all BAND / R_STEP
    of them in every tile), columns C_STEP k, SC = min(BLOCK / rows, W_POW2 / C_STEP) per tile.
    Returns (row, column within the tile, columns per tile step); shifts only, no division."""
    SR: tl.constexpr = BAND // R_STEP
    SC: tl.constexpr = min(BLOCK // SR, max(W_POW2 // C_STEP, 1))
    lane = tl.arange(0, SR * SC)
    return row0 + R_OFF + R_STEP * (lane // SC), C_STEP * (lane % SC), C_STEP * SC


@triton.jit
def _fd_add(cx, vx, cy, vy, p_ptr, t_ptr, m_ptr, idx, d, valid, row, col, H, W,
            STEP: tl.constexpr, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr):
    """Adds one scale's finite differences to its per-lane sums, for pixels (row, col) on the
    scale's grid: each pairs with (row, col + STEP) and (row + STEP, col) of its frame
    (neighbours mostly hit the cache). cx, cy count the x and y pairs; vx, vy sum clamp(|dD|)."""
    dx, ok_x = _load_pixel(p_ptr, t_ptr, m_ptr, idx + STEP, valid & (col + STEP < W), HAS_MASK)
    dy, ok_y = _load_pixel(p_ptr, t_ptr, m_ptr, idx + STEP * W, valid & (row + STEP < H), HAS_MASK)
    return (cx + ok_x.to(tl.int32), vx + tl.where(ok_x, tl.minimum(tl.abs(dx - d), CLAMP), 0.0),
            cy + ok_y.to(tl.int32), vy + tl.where(ok_y, tl.minimum(tl.abs(dy - d), CLAMP), 0.0))


@triton.jit
def _fd_band_sums(p_ptr, t_ptr, m_ptr, row0, row_end, H, W, STEP: tl.constexpr,
                  CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, BAND: tl.constexpr,
                  BLOCK: tl.constexpr, W_POW2: tl.constexpr):
    """(x count, x sum, y count, y sum) of one coarse scale over a band (pointers at the frame's
    first pixel): only its grid points (rows row0 + STEP j, columns STEP k) are visited."""
    row, tile_col, tile_step = _lattice(row0, 0, STEP, STEP, BAND, BLOCK, W_POW2)
    zi = tl.zeros_like(row)
    zf = tl.zeros_like(row).to(tl.float32)
    cx, vx, cy, vy = zi, zf, zi, zf
    for c0 in range(0, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        d, valid = _load_pixel(p_ptr, t_ptr, m_ptr, idx, (row < row_end) & (col < W), HAS_MASK)
        cx, vx, cy, vy = _fd_add(cx, vx, cy, vy, p_ptr, t_ptr, m_ptr, idx, d, valid, row, col, H, W,
                                 STEP, CLAMP, HAS_MASK)
    return tl.sum(cx), tl.sum(vx), tl.sum(cy), tl.sum(vy)


@triton.jit
def _slots(lanes, v0, v1, v2, v3, v4, v5, v6, v7):
    """[8] vector of the scalars v0..v7 (finite-difference slot 2 s: x axis, 2 s + 1: y)."""
    out = tl.where(lanes == 0, v0, 0) + tl.where(lanes == 1, v1, 0)
    out += tl.where(lanes == 2, v2, 0) + tl.where(lanes == 3, v3, 0)
    out += tl.where(lanes == 4, v4, 0) + tl.where(lanes == 5, v5, 0)
    out += tl.where(lanes == 6, v6, 0) + tl.where(lanes == 7, v7, 0)
    return out


@triton.jit
def _depth_stats_kernel(
    p_ptr, t_ptr, m_ptr, w_ptr, d_ptr, bands_ptr, offsets_ptr, meta_ptr, cnt_ptr, acc_ptr, hist_ptr,
    CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr,
    N_SCALES: tl.constexpr, BAND: tl.constexpr, BLOCK: tl.constexpr, W_POW2: tl.constexpr,
):
    """One band of one frame per program, in tiles of all its rows (row and column from the lane
    id, see _lattice).

    Every pixel: the sums, the level-1 histogram and the scale-1 finite differences, kept per
    lane and reduced once at the end (no cross-warp reduction inside the loop); the coarse scales
    then visit only their own grid points (_fd_band_sums).
    """
    b, base, row0, row_end, H, W = _band_of_program(bands_ptr, offsets_ptr, meta_ptr, BAND)
    p_ptr += base
    t_ptr += base
    m_ptr += base
    w_ptr += base
    d_ptr += base
    row, tile_col, tile_step = _lattice(row0, 0, 1, 1, BAND, BLOCK, W_POW2)
    hist = tl.zeros([2048], dtype=tl.int32)
    zi = tl.zeros_like(row)
    zf = tl.zeros_like(row).to(tl.float32)
    n_valid, s_w, s_we, s_wec = zi, zf, zf, zf
    cx, vx, cy, vy = zi, zf, zi, zf
    for c0 in range(0, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        inb = (row < row_end) & (col < W)
        d, valid = _load_pixel(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK)
        if D_BUF:
            tl.store(d_ptr + idx, tl.where(valid, d, float("nan")), mask=inb)
        e = tl.abs(d)
        hist += tl.histogram(_error_key(e, CLAMP) >> 20, 2048, mask=valid)
        w = tl.where(valid, 1.0, 0.0)
        if HAS_WEIGHT:
            w = w * tl.load(w_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        n_valid += valid.to(tl.int32)
        s_w += w
        s_we += w * e
        s_wec += w * tl.minimum(e, CLAMP)
        cx, vx, cy, vy = _fd_add(cx, vx, cy, vy, p_ptr, t_ptr, m_ptr, idx, d, valid, row, col,
                                 H, W, 1, CLAMP, HAS_MASK)
    band = (p_ptr, t_ptr, m_ptr, row0, row_end, H, W)
    cx1, vx1, cy1, vy1 = 0, 0.0, 0, 0.0
    cx2, vx2, cy2, vy2 = 0, 0.0, 0, 0.0
    cx3, vx3, cy3, vy3 = 0, 0.0, 0, 0.0
    if N_SCALES > 1:
        cx1, vx1, cy1, vy1 = _fd_band_sums(*band, 2, CLAMP, HAS_MASK, BAND, BLOCK, W_POW2)
    if N_SCALES > 2:
        cx2, vx2, cy2, vy2 = _fd_band_sums(*band, 4, CLAMP, HAS_MASK, BAND, BLOCK, W_POW2)
    if N_SCALES > 3:
        cx3, vx3, cy3, vy3 = _fd_band_sums(*band, 8, CLAMP, HAS_MASK, BAND, BLOCK, W_POW2)
    bins = tl.arange(0, 2048)
    tl.atomic_add(hist_ptr + b * 4096 + bins, hist, mask=hist != 0)
    tl.atomic_add(cnt_ptr + b * 10, tl.sum(n_valid))
    tl.atomic_add(acc_ptr + b * 13, tl.sum(s_w))
    tl.atomic_add(acc_ptr + b * 13 + 1, tl.sum(s_we))
    tl.atomic_add(acc_ptr + b * 13 + 2, tl.sum(s_wec))
    lanes = tl.arange(0, 8)
    live = lanes < 2 * N_SCALES
    f_cnt = _slots(lanes, tl.sum(cx), tl.sum(cy), cx1, cy1, cx2, cy2, cx3, cy3)
    f_sum = _slots(lanes, tl.sum(vx), tl.sum(vy), vx1, vy1, vx2, vy2, vx3, vy3)
    tl.atomic_add(cnt_ptr + b * 10 + 2 + lanes, f_cnt, mask=live)
    tl.atomic_add(acc_ptr + b * 13 + 5 + lanes, f_sum, mask=live)


@triton.jit
def _depth_refine_kernel(
    p_ptr, t_ptr, m_ptr, c_ptr, nc_ptr, blocks_ptr, offsets_ptr, meta_ptr, cnt_ptr, acc_ptr,
    sel_ptr, hist_ptr,
    CLAMP: tl.constexpr, MIN_PIXELS: tl.constexpr, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr,
    LEVEL: tl.constexpr, FOLD: tl.constexpr, BLOCK: tl.constexpr, ITERS: tl.constexpr,
):
    """Histogram of the next 10 key bits among pixels whose key starts with the chosen prefix.

    Level 2 reads every pixel and appends the errors of the chosen level-1 bin (the candidates:
    only they can match at level 3) to c_ptr over the program's own pixel range, nc_ptr[program]
    counting them (per-lane atomics, which ptxas aggregates per warp); level 3 reads the
    candidates alone, so the exact select re-reads the data once, not twice.
    FOLD (unweighted loss): also count and sum the pixels whose key is below the prefix's range
    at this level; they are survivors whatever the remaining bits turn out to be.
    """
    b, start, base, n, H, W = _sample_of_program(blocks_ptr, offsets_ptr, meta_ptr)
    nc_ptr += tl.program_id(0)
    c_ptr += base + start
    steps = ITERS
    if LEVEL == 3:  # the program's candidates
        n = tl.load(nc_ptr)
        start = 0
        steps = tl.cdiv(n, BLOCK)
    if (tl.load(cnt_ptr + b * 10) > MIN_PIXELS) & (start < n):
        prefix = tl.load(sel_ptr + b * 2)
        hist = tl.zeros([1024], dtype=tl.int32)
        c = tl.zeros([BLOCK], dtype=tl.int32)
        s_e = tl.zeros([BLOCK], dtype=tl.float32)
        for it in range(steps):
            i = start + it * BLOCK + tl.arange(0, BLOCK)
            if LEVEL == 2:
                d, valid = _load_diff(p_ptr, t_ptr, m_ptr, base + i, i < n, HAS_MASK, D_BUF)
                e = tl.abs(d)
            else:
                valid = i < n
                e = tl.load(c_ptr + i, mask=valid, other=0.0)
            key = _error_key(e, CLAMP)
            if LEVEL == 2:
                cand = valid & ((key >> 20) == prefix)
                hist += tl.histogram((key >> 10) & 1023, 1024, mask=cand)
                below = valid & ((key >> 20) < prefix)
                slot = tl.atomic_add(nc_ptr + 0 * i, 1, mask=cand, sem="relaxed")
                tl.store(c_ptr + slot, e, mask=cand)
            else:
                hist += tl.histogram(key & 1023, 1024, mask=valid & ((key >> 10) == prefix))
                below = valid & ((key >> 10) < prefix)  # every candidate has the level-1 prefix
            if FOLD:
                c += below.to(tl.int32)
                s_e += tl.where(below, e, 0.0)
        bins = tl.arange(0, 1024)
        tl.atomic_add(hist_ptr + b * 4096 + 1024 * LEVEL + bins, hist, mask=hist != 0)
        if FOLD:
            n_below = tl.sum(c)
            tl.atomic_add(cnt_ptr + b * 10 + 1, n_below)
            tl.atomic_add(acc_ptr + b * 13 + 3, n_below.to(tl.float32))
            tl.atomic_add(acc_ptr + b * 13 + 4, tl.sum(s_e))


@triton.jit
def _depth_select_kernel(
    cnt_ptr, acc_ptr, sel_ptr, hist_ptr, CLAMP_KEY: tl.constexpr, MIN_PIXELS: tl.constexpr,
    Q_NUM: tl.constexpr, Q_DEN: tl.constexpr, LEVEL: tl.constexpr, NB: tl.constexpr,
    BITS: tl.constexpr, FOLD: tl.constexpr,
):
    """One program per sample: find the bin of the remaining rank, extend the key prefix.

    After level 3 the prefix is the exact k-th key; with FOLD, the pixels of the last 10-bit range
    up to the threshold key min(k-th key, CLAMP_KEY = bits(CLAMP)) are added to the survivor sums: each level-3
    bin is a single fp32 value, so its sum is count x value.
    """
    b = tl.program_id(0)
    n = tl.load(cnt_ptr + b * 10)
    if LEVEL == 1:
        k = (Q_NUM * tl.maximum(n - 1, 0) + Q_DEN - 1) // Q_DEN + 1
        prefix = 0
        hist = tl.load(hist_ptr + b * 4096 + tl.arange(0, NB))
    else:
        k = tl.load(sel_ptr + b * 2 + 1)
        prefix = tl.load(sel_ptr + b * 2)
        hist = tl.load(hist_ptr + b * 4096 + 1024 * LEVEL + tl.arange(0, NB))
    idx = tl.arange(0, NB)
    cum = tl.cumsum(hist, 0)
    j = tl.min(tl.where(cum >= k, idx, NB - 1), 0)
    before = tl.sum(tl.where(idx < j, hist, 0))
    key = (prefix << BITS) | j
    tl.store(sel_ptr + b * 2, key)
    tl.store(sel_ptr + b * 2 + 1, k - before)
    if FOLD and LEVEL == 3 and n > MIN_PIXELS:
        thr_key = tl.minimum(key, CLAMP_KEY)
        last = idx <= (thr_key & 1023)
        values = ((prefix << 10) | idx).to(tl.float32, bitcast=True)
        tl.atomic_add(cnt_ptr + b * 10 + 1, tl.sum(tl.where(last, hist, 0)))
        tl.atomic_add(acc_ptr + b * 13 + 3, tl.sum(tl.where(last, hist, 0).to(tl.float32)))
        tl.atomic_add(acc_ptr + b * 13 + 4, tl.sum(tl.where(last, hist.to(tl.float32) * values, 0.0)))


@triton.jit
def _depth_survivors_kernel(
    p_ptr, t_ptr, m_ptr, w_ptr, blocks_ptr, offsets_ptr, meta_ptr, cnt_ptr, acc_ptr, sel_ptr,
    CLAMP: tl.constexpr, MIN_PIXELS: tl.constexpr, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr,
    HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr, ITERS: tl.constexpr,
):
    """Weighted loss only: count and weighted sums of the pixels with e <= thr, thr = min(k-th
    clamped error, CLAMP) (without weights the refine/select kernels fold these sums in)."""
    b, start, base, n, H, W = _sample_of_program(blocks_ptr, offsets_ptr, meta_ptr)
    if tl.load(cnt_ptr + b * 10) > MIN_PIXELS:
        thr = tl.minimum(tl.load(sel_ptr + b * 2).to(tl.float32, bitcast=True), CLAMP)
        c = tl.zeros([BLOCK], dtype=tl.int32)
        s_w = tl.zeros([BLOCK], dtype=tl.float32)
        s_we = tl.zeros([BLOCK], dtype=tl.float32)
        for it in range(ITERS):
            i = start + it * BLOCK + tl.arange(0, BLOCK)
            d, valid = _load_diff(p_ptr, t_ptr, m_ptr, base + i, i < n, HAS_MASK, D_BUF)
            e = tl.abs(d)
            surv = valid & (e <= thr)
            w = tl.where(surv, 1.0, 0.0)
            if HAS_WEIGHT:
                w = w * tl.load(w_ptr + base + i, mask=surv, other=0.0).to(tl.float32)
            c += surv.to(tl.int32)
            s_w += w
            s_we += w * e
        tl.atomic_add(cnt_ptr + b * 10 + 1, tl.sum(c))
        tl.atomic_add(acc_ptr + b * 13 + 3, tl.sum(s_w))
        tl.atomic_add(acc_ptr + b * 13 + 4, tl.sum(s_we))


@triton.jit
def _scale_used(frames, h, w, S: tl.constexpr, GRAD_MIN_PIXELS: tl.constexpr):
    """Does D[:, ::2^S, ::2^S] of a [frames, h, w] map have at least GRAD_MIN_PIXELS pixels."""
    return frames * ((h + (1 << S) - 1) >> S) * ((w + (1 << S) - 1) >> S) >= GRAD_MIN_PIXELS


@triton.jit
def _depth_finalize_kernel(
    cnt_ptr, acc_ptr, sel_ptr, meta_ptr, par_ptr, out_ptr, B,
    CLAMP: tl.constexpr, MIN_PIXELS: tl.constexpr, N_SCALES: tl.constexpr, GRAD_MIN_PIXELS: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """Per-sample L_reg/L_grad and backward coefficients; out = [loss, reg, grad] batch means.
    L_grad averages over the scales whose subsampled map (all frames, from the sample's shape in
    meta) has at least GRAD_MIN_PIXELS pixels; 0 when none has."""
    bs = tl.arange(0, BLOCK_B)
    live = bs < B
    px = tl.load(meta_ptr + bs * 3, mask=live, other=0)
    h = tl.load(meta_ptr + bs * 3 + 1, mask=live, other=1)
    w = tl.load(meta_ptr + bs * 3 + 2, mask=live, other=1)
    frames = px // (h * w)
    n_used = tl.zeros([BLOCK_B], dtype=tl.int32)
    for s in tl.static_range(N_SCALES):
        n_used += _scale_used(frames, h, w, s, GRAD_MIN_PIXELS).to(tl.int32)
    per_scale = tl.where(n_used > 0, 1.0 / tl.maximum(n_used, 1).to(tl.float32), 0.0)
    n = tl.load(cnt_ptr + bs * 10, mask=live, other=0)
    n_surv = tl.load(cnt_ptr + bs * 10 + 1, mask=live, other=0)
    branch = tl.where(n <= MIN_PIXELS, 0, tl.where(n_surv < MIN_PIXELS, 2, 1))
    s_w = tl.load(acc_ptr + bs * 13, mask=live, other=0.0)
    den = tl.where(branch == 1, tl.load(acc_ptr + bs * 13 + 3, mask=live, other=0.0), s_w)
    num = tl.where(
        branch == 0,
        tl.load(acc_ptr + bs * 13 + 1, mask=live, other=0.0),
        tl.where(branch == 1, tl.load(acc_ptr + bs * 13 + 4, mask=live, other=0.0),
                 tl.load(acc_ptr + bs * 13 + 2, mask=live, other=0.0)),
    )
    coef = tl.where(den > 0, 1.0 / tl.where(den > 0, den, 1.0), 0.0)
    reg = num * coef
    kth = tl.load(sel_ptr + bs * 2, mask=live, other=0).to(tl.float32, bitcast=True)
    # L_reg keeps e <= lim: every valid pixel (branch 0), e <= thr (1), e <= CLAMP (2)
    lim = tl.where(branch == 0, float("inf"), tl.where(branch == 1, tl.minimum(kth, CLAMP), CLAMP))
    tl.store(par_ptr + bs * 11, coef, mask=live)
    tl.store(par_ptr + bs * 11 + 1, lim, mask=live)
    tl.store(par_ptr + bs * 11 + 2, branch.to(tl.float32), mask=live)
    grad = tl.zeros([BLOCK_B], dtype=tl.float32)
    for j in tl.static_range(2 * N_SCALES):
        c = tl.load(cnt_ptr + bs * 10 + 2 + j, mask=live, other=0).to(tl.float32)
        used = _scale_used(frames, h, w, j // 2, GRAD_MIN_PIXELS)  # sums/counts j: x then y per scale
        inv = tl.where(c > 0, 1.0 / tl.where(c > 0, c, 1.0), 0.0) * tl.where(used, per_scale, 0.0)
        grad += tl.load(acc_ptr + bs * 13 + 5 + j, mask=live, other=0.0) * inv
        tl.store(par_ptr + bs * 11 + 3 + j, inv, mask=live)
    reg = tl.where(live, reg, 0.0)
    grad = tl.where(live, grad, 0.0)
    tl.store(out_ptr, tl.sum(reg + grad) / B)
    tl.store(out_ptr + 1, tl.sum(reg) / B)
    tl.store(out_ptr + 2, tl.sum(grad) / B)


@triton.jit
def _times_sign(c, x):
    """c * sign(x) for x != 0 (callers mask x == 0), either sign of c: c's sign bit flipped by
    x's, one bitwise op instead of compares and selects."""
    sign = x.to(tl.int32, bitcast=True) & ~0x7FFFFFFF
    return (c.to(tl.int32, bitcast=True) ^ sign).to(tl.float32, bitcast=True)


@triton.jit
def _pair_grad(c, d, dn, CLAMP: tl.constexpr):
    """c * d/dd clamp(|d - dn|, CLAMP): c sign(d - dn) where 0 < |d - dn| <= CLAMP, else 0
    (also where d or dn is NaN, i.e. invalid)."""
    diff = d - dn
    return tl.where((tl.abs(diff) <= CLAMP) & (diff != 0.0), _times_sign(c, diff), 0.0)


@triton.jit
def _pixel_grad(p_ptr, t_ptr, m_ptr, w_ptr, par_ptr, b, idx, inb, row, col, H, W, c_reg, lim,
                g_grad, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                D_BUF: tl.constexpr, N_SCALES: tl.constexpr):
    """dL/dD at pixels (row, col) (pointers at the frame's first pixel, idx = row * W + col):
    the L_reg term (c_reg sign(D) where |D| <= lim) and the pairs of the first N_SCALES scales;
    the caller's pixels lie on the grid of the coarsest of them. A neighbour's load shifts the
    base pointers (_neighbour)."""
    d = _load_or_nan(p_ptr, t_ptr, m_ptr, idx, inb, HAS_MASK, D_BUF)
    keep = (tl.abs(d) <= lim) & (d != 0.0)
    c = c_reg
    if HAS_WEIGHT:
        c = c * tl.load(w_ptr + idx, mask=keep, other=0.0).to(tl.float32)
    g = tl.where(keep, _times_sign(c, d), 0.0)
    for s in tl.static_range(N_SCALES):
        step = 1 << s
        c_x = tl.load(par_ptr + b * 11 + 3 + 2 * s) * g_grad
        c_y = tl.load(par_ptr + b * 11 + 4 + 2 * s) * g_grad
        g += _pair_grad(c_x, d, _neighbour(p_ptr, t_ptr, m_ptr, step, idx, inb & (col + step < W),
                                           HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_x, d, _neighbour(p_ptr, t_ptr, m_ptr, -step, idx, inb & (col >= step),
                                           HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_y, d, _neighbour(p_ptr, t_ptr, m_ptr, step * W, idx,
                                           inb & (row + step < H), HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_y, d, _neighbour(p_ptr, t_ptr, m_ptr, -step * W, idx, inb & (row >= step),
                                           HAS_MASK, D_BUF), CLAMP)
    return g


@triton.jit
def _grad_lattice(p_ptr, t_ptr, m_ptr, w_ptr, g_ptr, par_ptr, b, row0, row_end, H, W, c_reg, lim,
                  g_grad, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr,
                  HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr, N_SCALES: tl.constexpr,
                  R_OFF: tl.constexpr, R_STEP: tl.constexpr, C_OFF: tl.constexpr,
                  C_STEP: tl.constexpr, BAND: tl.constexpr, BLOCK: tl.constexpr,
                  W_POW2: tl.constexpr):
    """Writes the gradient (L_reg term and the first N_SCALES scales) of the band's pixels at
    rows row0 + R_OFF + R_STEP j and columns C_OFF + C_STEP k (see _lattice)."""
    row, tile_col, tile_step = _lattice(row0, R_OFF, R_STEP, C_STEP, BAND, BLOCK, W_POW2)
    for c0 in range(C_OFF, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        inb = (row < row_end) & (col < W)
        g = _pixel_grad(p_ptr, t_ptr, m_ptr, w_ptr, par_ptr, b, idx, inb, row, col, H, W, c_reg, lim,
                        g_grad, CLAMP, HAS_MASK, HAS_WEIGHT, D_BUF, N_SCALES)
        tl.store(g_ptr + idx, g.to(g_ptr.dtype.element_ty), mask=inb)


@triton.jit
def _depth_backward_kernel(
    p_ptr, t_ptr, m_ptr, w_ptr, g_ptr, bands_ptr, offsets_ptr, meta_ptr, par_ptr, gout_ptr, B,
    CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr,
    N_SCALES: tl.constexpr, BAND: tl.constexpr, BLOCK: tl.constexpr, W_POW2: tl.constexpr,
):
    """One band of one frame per program. A pixel on the grid of step 2^s but not on 2^(s+1)
    gets the L_reg term and the pairs of scales 0 .. s; each such set is a union of two lattices
    (the grid's odd rows; its even rows' odd columns), visited in its own loop, so every lane
    computes a pixel it writes, each pixel is written once, and a scale's pairs are evaluated
    only where it acts. The last scale's grid is one lattice."""
    b, base, row0, row_end, H, W = _band_of_program(bands_ptr, offsets_ptr, meta_ptr, BAND)
    g_loss = tl.load(gout_ptr).to(tl.float32)
    g_reg = (g_loss + tl.load(gout_ptr + 1).to(tl.float32)) / B
    g_grad = (g_loss + tl.load(gout_ptr + 2).to(tl.float32)) / B
    c_reg = tl.load(par_ptr + b * 11) * g_reg
    lim = tl.load(par_ptr + b * 11 + 1)
    p_ptr += base
    t_ptr += base
    m_ptr += base
    w_ptr += base
    g_ptr += base
    band = (p_ptr, t_ptr, m_ptr, w_ptr, g_ptr, par_ptr, b, row0, row_end, H, W, c_reg, lim, g_grad)
    for s in tl.static_range(N_SCALES - 1):
        # the pixels of grid 2^s off grid 2^(s+1): its odd rows, then its even rows' odd columns
        _grad_lattice(*band, CLAMP, HAS_MASK, HAS_WEIGHT, D_BUF, s + 1, 1 << s, 2 << s, 0, 1 << s,
                      BAND, BLOCK, W_POW2)
        _grad_lattice(*band, CLAMP, HAS_MASK, HAS_WEIGHT, D_BUF, s + 1, 0, 2 << s, 1 << s, 2 << s,
                      BAND, BLOCK, W_POW2)
    _grad_lattice(*band, CLAMP, HAS_MASK, HAS_WEIGHT, D_BUF, N_SCALES, 0, 1 << (N_SCALES - 1), 0,
                  1 << (N_SCALES - 1), BAND, BLOCK, W_POW2)


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


@functools.lru_cache(maxsize=64)
def _sample_meta(lengths: tuple[int, ...], hw: tuple[tuple[int, int], ...], device: torch.device) -> Tensor:
    """int32 [B, 3] = (pixels, H, W) per sample; cached, like block_layout, per batch layout."""
    return to_device([[n, h, w] for n, (h, w) in zip(lengths, hw)], torch.int32, device)


def _float_bits(x: float) -> int:
    """The int32 bit pattern of fp32 x."""
    return struct.unpack("<i", struct.pack("<f", x))[0]


def _tile(kernel: str, device: torch.device) -> dict[str, int]:
    """Launch constexprs of `kernel` on `device`: "refine" (also survivors): BLOCK and ITERS;
    "stats" and "backward": BAND, BLOCK and num_warps (a launch option, not a constexpr); the
    caller adds W_POW2."""
    cuda = device.type == "cuda"
    if kernel == "refine":
        block, iters = REFINE_TILE if cuda else INTERPRET_TILE
        return dict(BLOCK=block, ITERS=iters)
    block, num_warps = FRAME_TILES[kernel] if cuda else INTERPRET_FRAME_TILE
    return dict(BAND=BAND, BLOCK=block, num_warps=num_warps)


def _chunk(device: torch.device) -> int:
    return CHUNK if device.type == "cuda" else INTERPRET_TILE[0] * INTERPRET_TILE[1]


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


def _launch_forward(spec: DepthLossSpec, p: Tensor, t: Tensor, m: Tensor, w: Tensor,
                    lengths: tuple[int, ...], hw: list[tuple[int, int]], d_buf: bool = False):
    """The forward launches. Returns (out [3], per-sample params, offsets, bands, meta, error
    buffer or None); with d_buf the later passes read the error buffer, not p, t and m."""
    dev = p.device
    B = len(lengths)
    offsets, blocks = block_layout(lengths, _chunk(dev), dev)
    bands = band_layout(lengths, tuple(hw), BAND, dev)
    meta = _sample_meta(lengths, tuple(hw), dev)
    cnt = torch.zeros(B, N_CNT, dtype=torch.int32, device=dev)
    sel = torch.zeros(B, N_SEL, dtype=torch.int32, device=dev)
    hist = torch.zeros(B, HIST, dtype=torch.int32, device=dev)
    acc = torch.zeros(B, N_ACC, dtype=torch.float32, device=dev)
    par = torch.empty(B, N_PAR, dtype=torch.float32, device=dev)
    out = torch.empty(3, dtype=torch.float32, device=dev)
    d = torch.empty(p.numel(), dtype=torch.float32, device=dev) if d_buf else None
    grid = (blocks.shape[0],)
    common = dict(HAS_MASK=spec.has_mask, D_BUF=d_buf, **_tile("refine", dev))
    _depth_stats_kernel[(bands.shape[0],)](
        p, t, m, w, d if d_buf else p, bands, offsets, meta, cnt, acc, hist, CLAMP=spec.clamp,
        HAS_MASK=spec.has_mask, HAS_WEIGHT=spec.has_weight, D_BUF=d_buf, N_SCALES=spec.n_scales,
        W_POW2=_w_pow2(hw), **_tile("stats", dev),
    )
    src = (d, d, d) if d_buf else (p, t, m)  # what the later passes read
    q_num, q_den = spec.quantile
    fold = not spec.has_weight
    select = dict(CLAMP_KEY=_float_bits(spec.clamp), MIN_PIXELS=spec.min_pixels, Q_NUM=q_num, Q_DEN=q_den, FOLD=fold)
    _depth_select_kernel[(B,)](cnt, acc, sel, hist, LEVEL=1, NB=NB1, BITS=0, **select)
    cand = torch.empty(p.numel(), dtype=torch.float32, device=dev)  # level-1 bin's errors
    n_cand = torch.zeros(blocks.shape[0], dtype=torch.int32, device=dev)  # per refine program
    for level in (2, 3):
        _depth_refine_kernel[grid](
            *src, cand, n_cand, blocks, offsets, meta, cnt, acc, sel, hist,
            CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels, LEVEL=level, FOLD=fold, **common,
        )
        _depth_select_kernel[(B,)](cnt, acc, sel, hist, LEVEL=level, NB=NB2, BITS=10, **select)
    if not fold:
        _depth_survivors_kernel[grid](
            *src, w, blocks, offsets, meta, cnt, acc, sel,
            CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels, HAS_WEIGHT=spec.has_weight, **common,
        )
    _depth_finalize_kernel[(1,)](
        cnt, acc, sel, meta, par, out, B, CLAMP=spec.clamp, MIN_PIXELS=spec.min_pixels,
        N_SCALES=spec.n_scales, GRAD_MIN_PIXELS=spec.grad_min_pixels, BLOCK_B=max(triton.next_power_of_2(B), 16),
    )
    return out, par, offsets, bands, meta, d


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
        t = pack_flat(targets, targets[0].dtype)
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
        p, t, m, w, par, offsets, bands, meta = ctx.saved_tensors
        spec = ctx.spec
        gout = torch.stack([g_loss, g_reg, g_grad]).float()
        dtype = ctx.shapes[0][1]
        g = torch.empty(p.numel(), dtype=dtype, device=p.device)
        _depth_backward_kernel[(bands.shape[0],)](
            p, t, m, p if w is None else w, g, bands, offsets, meta, par, gout, len(ctx.shapes),
            CLAMP=spec.clamp, HAS_MASK=spec.has_mask, HAS_WEIGHT=spec.has_weight, D_BUF=ctx.d_buf,
            N_SCALES=spec.n_scales, W_POW2=ctx.w_pow2, **_tile("backward", p.device),
        )
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
    dtype = pred[0].dtype
    target = [x.detach() for x in target]
    extra = [*(valid_mask or []), *(x.detach() for x in (weight or []))]
    pred = [x if x.dtype == dtype else x.to(dtype) for x in pred]
    return DepthLossFunction.apply(spec, len(pred), *pred, *target, *extra)


def _aot_specs():
    """(name, kernel, signature, constexprs) for geovr.kernels.aot, per input dtype."""
    from ..losses.depth import CLAMP, GRAD_MIN_PIXELS, MIN_PIXELS, N_SCALES, QUANTILE  # one definition
    specs = []
    ints = {"cnt_ptr": "*i32", "acc_ptr": "*fp32", "sel_ptr": "*i32", "hist_ptr": "*i32"}
    layout = {"blocks_ptr": "*i32", "offsets_ptr": "*i64", "meta_ptr": "*i32"}
    frames = {"bands_ptr": "*i32", "offsets_ptr": "*i64", "meta_ptr": "*i32"}
    release_w = triton.next_power_of_2(504)  # the release's depth maps are 392 x 504
    cuda = torch.device("cuda")
    for dt in ("fp32", "bf16", "fp16"):
        # fp32 with every option and the error buffer; the half types on the paper path (no mask,
        # no weight), re-reading their inputs
        opts = dt == "fp32"
        inputs = {"p_ptr": f"*{dt}", "t_ptr": f"*{dt}", "m_ptr": "*u8"}
        later = {"p_ptr": "*fp32", "t_ptr": "*fp32", "m_ptr": "*fp32"} if opts else inputs
        flags = dict(HAS_MASK=opts, HAS_WEIGHT=opts, D_BUF=opts)
        specs.append((f"depth_stats[{dt}]", _depth_stats_kernel,
                      {**inputs, "w_ptr": "*fp32", "d_ptr": "*fp32", **frames,
                       **{k: v for k, v in ints.items() if k != "sel_ptr"}},
                      dict(CLAMP=CLAMP, N_SCALES=N_SCALES, W_POW2=release_w, **flags, **_tile("stats", cuda))))
        for level in (2, 3):
            specs.append((f"depth_refine{level}[{dt}]", _depth_refine_kernel,
                          {**later, "c_ptr": "*fp32", "nc_ptr": "*i32", **layout, **ints},
                          dict(CLAMP=CLAMP, MIN_PIXELS=MIN_PIXELS, LEVEL=level, HAS_MASK=opts, D_BUF=opts,
                               FOLD=not opts, **_tile("refine", cuda))))
        specs.append((f"depth_backward[{dt}]", _depth_backward_kernel,
                      {**later, "w_ptr": "*fp32", "g_ptr": f"*{dt}", **frames, "par_ptr": "*fp32",
                       "gout_ptr": "*fp32", "B": "i32"},
                      dict(CLAMP=CLAMP, N_SCALES=N_SCALES, W_POW2=release_w, **flags, **_tile("backward", cuda))))
    specs.append(("depth_survivors[fp32]", _depth_survivors_kernel,
                  {"p_ptr": "*fp32", "t_ptr": "*fp32", "m_ptr": "*fp32", "w_ptr": "*fp32", **layout,
                   **{k: v for k, v in ints.items() if k != "hist_ptr"}},
                  dict(CLAMP=CLAMP, MIN_PIXELS=MIN_PIXELS, HAS_MASK=True, D_BUF=True, HAS_WEIGHT=True,
                       **_tile("refine", cuda))))
    for level, nb, bits in ((1, NB1, 0), (2, NB2, 10), (3, NB3, 10)):
        specs.append((f"depth_select{level}", _depth_select_kernel, ints,
                      dict(CLAMP_KEY=_float_bits(CLAMP), MIN_PIXELS=MIN_PIXELS, Q_NUM=QUANTILE[0], Q_DEN=QUANTILE[1],
                           LEVEL=level, NB=nb, BITS=bits, FOLD=True)))
    specs.append(("depth_finalize", _depth_finalize_kernel,
                  {"cnt_ptr": "*i32", "acc_ptr": "*fp32", "sel_ptr": "*i32", "meta_ptr": "*i32",
                   "par_ptr": "*fp32", "out_ptr": "*fp32", "B": "i32"},
                  dict(CLAMP=CLAMP, MIN_PIXELS=MIN_PIXELS, N_SCALES=N_SCALES, GRAD_MIN_PIXELS=GRAD_MIN_PIXELS, BLOCK_B=16)))
    return specs
