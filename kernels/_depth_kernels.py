"""The Triton kernels of the fused depth loss (launched by geovr.kernels.depth_loss, whose
docstring describes the passes). Scratch layout and key constants: _depth_layout.

Two program shapes: chunk programs (refine, survivors) own CHUNK consecutive pixels of one sample
(_packing.block_layout); band programs (stats, backward) own BAND rows of one frame
(_packing.band_layout) and walk lattices of the band (rows and columns in power-of-2 steps; every
pixel is the lattice of step 1) in tiles of at most BLOCK pixels whose widths are powers of 2
(_lattice), so that row and column come from the program and lane ids by shifts, with no integer
division. Loads upcast to fp32 before any arithmetic (also works around the interpreter's bf16
bug). Invalid or out-of-frame values load as NaN in the backward, so every comparison drops them
(_load_or_nan) and no validity flag stays live.

Arguments travel in groups (Triton tuples): src = (pred, target, mask) pointers, or the fp32
error buffer three times (D_BUF); maps = (blocks or bands, offsets, meta); scratch = (cnt, acc,
sel, hist). Compile-time flags: HAS_MASK, HAS_WEIGHT, D_BUF, FOLD (unweighted: survivor sums
folded into refine and select), LEVEL (radix level); tiles: BLOCK, ITERS, W_POW2.
"""
import triton
import triton.language as tl

from geovr.kernels._depth_layout import (
    ACC, ACC_FD, ACC_SURV_W, ACC_SURV_WE, ACC_W, ACC_WE, ACC_WEC, BAND, BAND_FIELDS, BLOCK_FIELDS,
    CNT, CNT_FD, CNT_SURV, CNT_VALID, FINE_BITS, FINE_MASK, HIST, KEY_SHIFT1, META, META_H,
    META_PIXELS, META_W, N_FD, NB1, NB_FINE, PAR, PAR_BRANCH, PAR_FD, PAR_LIM, PAR_REG, SEL,
    SEL_PREFIX, SEL_RANK,
)


@triton.jit
def _kept(m_ptr, y, idx, inb):
    """valid_mask set at idx and the target y finite (NaN and inf both fail)."""
    m = tl.load(m_ptr + idx, mask=inb, other=0)
    return (m != 0) & (tl.abs(y) < float("inf"))


@triton.jit
def _load_pixel(src, idx, inb, HAS_MASK: tl.constexpr):
    """(D = pred - target as fp32, valid) at flat indices idx of src = (pred, target, mask)
    pointers; D is 0 where invalid."""
    p_ptr, t_ptr, m_ptr = src
    x = tl.load(p_ptr + idx, mask=inb, other=0.0).to(tl.float32)
    y = tl.load(t_ptr + idx, mask=inb, other=0.0).to(tl.float32)
    valid = inb
    if HAS_MASK:
        valid = valid & _kept(m_ptr, y, idx, inb)
    return tl.where(valid, x - y, 0.0), valid


@triton.jit
def _load_diff(src, idx, inb, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """_load_pixel, or with D_BUF (src is then the fp32 error buffer thrice, NaN where masked out)
    one load of the stored D."""
    if D_BUF:
        d = tl.load(src[0] + idx, mask=inb, other=0.0)
        valid = inb
        if HAS_MASK:
            valid = valid & (d == d)
        d = tl.where(valid, d, 0.0)
    else:
        d, valid = _load_pixel(src, idx, inb, HAS_MASK)
    return d, valid


@triton.jit
def _load_or_nan(src, idx, inb, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """D at flat indices idx as fp32; NaN where invalid or not inb, so that the backward's
    comparisons (|D| <= lim, |dD| <= CLAMP) are false there and drop the pixel's or pair's term."""
    p_ptr, t_ptr, m_ptr = src
    d = tl.load(p_ptr + idx, mask=inb, other=float("nan")).to(tl.float32)
    if not D_BUF:
        y = tl.load(t_ptr + idx, mask=inb, other=0.0).to(tl.float32)
        d -= y
        if HAS_MASK:
            d = tl.where(_kept(m_ptr, y, idx, inb), d, float("nan"))
    return d


@triton.jit
def _shift(src, off):
    """The (pred, target, mask) pointers of src moved by off elements."""
    p_ptr, t_ptr, m_ptr = src
    return p_ptr + off, t_ptr + off, m_ptr + off


@triton.jit
def _neighbour(src, off, idx, ok, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr):
    """_load_or_nan at idx + off, by shifting the base pointers (scalar) rather than idx, so the
    load costs one address computation from idx."""
    return _load_or_nan(_shift(src, off), idx, ok, HAS_MASK, D_BUF)


@triton.jit
def _error_key(e, CLAMP: tl.constexpr):
    """Order-preserving int32 key of min(e, CLAMP) for e >= 0: its fp32 bit pattern, with errors
    above CLAMP one step higher (they rank as CLAMP, as in the release, yet are not survivors)."""
    return tl.minimum(e, CLAMP).to(tl.int32, bitcast=True) + (e > CLAMP).to(tl.int32)


@triton.jit
def _chunk_of_program(maps):
    """(sample, first pixel of the program's chunk within the sample, flat index of the sample's
    first pixel, the sample's pixels) of a chunk program; maps = (blocks, offsets, meta) (see
    _packing.block_layout)."""
    blocks_ptr, offsets_ptr, meta_ptr = maps
    pid = tl.program_id(0).to(tl.int64)  # indices scaled from a program id are int64 (aot checks)
    b = tl.load(blocks_ptr + BLOCK_FIELDS * pid)
    start = tl.load(blocks_ptr + BLOCK_FIELDS * pid + 1)
    base = tl.load(offsets_ptr + b)
    n = tl.load(meta_ptr + b * META + META_PIXELS)
    return b, start, base, n


@triton.jit
def _band_of_program(maps):
    """(sample, flat index of the frame's first pixel, first row, end row, H, W) of the program's
    band: rows [row0, row_end) of one frame; maps = (bands, offsets, meta) (see
    _packing.band_layout). Kernels add the int64 frame index to their pointers once, so that
    per-pixel offsets row * W + col stay int32."""
    bands_ptr, offsets_ptr, meta_ptr = maps
    pid = tl.program_id(0).to(tl.int64)  # indices scaled from a program id are int64 (aot checks)
    b = tl.load(bands_ptr + BAND_FIELDS * pid)
    base = tl.load(offsets_ptr + b) + tl.load(bands_ptr + BAND_FIELDS * pid + 1)
    row0 = tl.load(bands_ptr + BAND_FIELDS * pid + 2)
    h = tl.load(meta_ptr + b * META + META_H)
    w = tl.load(meta_ptr + b * META + META_W)
    return b, base, row0, tl.minimum(row0 + BAND, h), h, w


@triton.jit
def _lattice(row0, R_OFF: tl.constexpr, R_STEP: tl.constexpr, C_STEP: tl.constexpr,
             BLOCK: tl.constexpr, W_POW2: tl.constexpr):
    """The lanes of a tile over the band's lattice: rows row0 + R_OFF + R_STEP j (all BAND / R_STEP
    of them in every tile), columns C_STEP k, SC = min(BLOCK / rows, W_POW2 / C_STEP) per tile.
    Returns (row, column within the tile, columns per tile step); shifts only, no division."""
    SR: tl.constexpr = BAND // R_STEP
    SC: tl.constexpr = min(BLOCK // SR, max(W_POW2 // C_STEP, 1))
    lane = tl.arange(0, SR * SC)
    return row0 + R_OFF + R_STEP * (lane // SC), C_STEP * (lane % SC), C_STEP * SC


@triton.jit
def _fd_add(cx, vx, cy, vy, src, idx, d, valid, row, col, H, W,
            STEP: tl.constexpr, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr):
    """Adds one scale's finite differences to its per-lane sums, for pixels (row, col) on the
    scale's grid: each pairs with (row, col + STEP) and (row + STEP, col) of its frame
    (neighbours mostly hit the cache). cx, cy count the x and y pairs; vx, vy sum clamp(|dD|)."""
    dx, ok_x = _load_pixel(src, idx + STEP, valid & (col + STEP < W), HAS_MASK)
    dy, ok_y = _load_pixel(src, idx + STEP * W, valid & (row + STEP < H), HAS_MASK)
    return (cx + ok_x.to(tl.int32), vx + tl.where(ok_x, tl.minimum(tl.abs(dx - d), CLAMP), 0.0),
            cy + ok_y.to(tl.int32), vy + tl.where(ok_y, tl.minimum(tl.abs(dy - d), CLAMP), 0.0))


@triton.jit
def _fd_band_sums(src, row0, row_end, H, W, STEP: tl.constexpr,
                  CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, BLOCK: tl.constexpr,
                  W_POW2: tl.constexpr):
    """(x count, x sum, y count, y sum) of one coarse scale over a band (pointers at the frame's
    first pixel): only its grid points (rows row0 + STEP j, columns STEP k) are visited."""
    row, tile_col, tile_step = _lattice(row0, R_OFF=0, R_STEP=STEP, C_STEP=STEP, BLOCK=BLOCK, W_POW2=W_POW2)
    zi = tl.zeros_like(row)
    zf = tl.zeros_like(row).to(tl.float32)
    cx, vx, cy, vy = zi, zf, zi, zf
    for c0 in range(0, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        d, valid = _load_pixel(src, idx, (row < row_end) & (col < W), HAS_MASK)
        cx, vx, cy, vy = _fd_add(cx, vx, cy, vy, src, idx, d, valid, row, col, H, W,
                                 STEP=STEP, CLAMP=CLAMP, HAS_MASK=HAS_MASK)
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
    src, w_ptr, d_ptr, maps, scratch,
    CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr,
    N_SCALES: tl.constexpr, BLOCK: tl.constexpr, W_POW2: tl.constexpr,
):
    """One band of one frame per program, in tiles of all its rows (row and column from the lane
    id, see _lattice).

    Every pixel: the sums, the level-1 histogram and the scale-1 finite differences, kept per
    lane and reduced once at the end (no cross-warp reduction inside the loop); the coarse scales
    then visit only their own grid points (_fd_band_sums). src: (pred, target, mask); maps:
    (bands, offsets, meta); scratch: (cnt, acc, sel, hist); d_ptr: the error buffer written with
    D_BUF.
    """
    b, base, row0, row_end, H, W = _band_of_program(maps)
    src = _shift(src, base)
    w_ptr += base
    d_ptr += base
    row, tile_col, tile_step = _lattice(row0, R_OFF=0, R_STEP=1, C_STEP=1, BLOCK=BLOCK, W_POW2=W_POW2)
    hist = tl.zeros([NB1], dtype=tl.int32)
    zi = tl.zeros_like(row)
    zf = tl.zeros_like(row).to(tl.float32)
    n_valid, s_w, s_we, s_wec = zi, zf, zf, zf
    cx, vx, cy, vy = zi, zf, zi, zf
    for c0 in range(0, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        inb = (row < row_end) & (col < W)
        d, valid = _load_pixel(src, idx, inb, HAS_MASK)
        if D_BUF:
            tl.store(d_ptr + idx, tl.where(valid, d, float("nan")), mask=inb)
        e = tl.abs(d)
        hist += tl.histogram(_error_key(e, CLAMP) >> KEY_SHIFT1, NB1, mask=valid)
        w = tl.where(valid, 1.0, 0.0)
        if HAS_WEIGHT:
            w = w * tl.load(w_ptr + idx, mask=valid, other=0.0).to(tl.float32)
        n_valid += valid.to(tl.int32)
        s_w += w
        s_we += w * e
        s_wec += w * tl.minimum(e, CLAMP)
        cx, vx, cy, vy = _fd_add(cx, vx, cy, vy, src, idx, d, valid, row, col, H, W,
                                 STEP=1, CLAMP=CLAMP, HAS_MASK=HAS_MASK)
    band = (src, row0, row_end, H, W)
    cx1, vx1, cy1, vy1 = 0, 0.0, 0, 0.0
    cx2, vx2, cy2, vy2 = 0, 0.0, 0, 0.0
    cx3, vx3, cy3, vy3 = 0, 0.0, 0, 0.0
    if N_SCALES > 1:
        cx1, vx1, cy1, vy1 = _fd_band_sums(*band, STEP=2, CLAMP=CLAMP, HAS_MASK=HAS_MASK,
                                           BLOCK=BLOCK, W_POW2=W_POW2)
    if N_SCALES > 2:
        cx2, vx2, cy2, vy2 = _fd_band_sums(*band, STEP=4, CLAMP=CLAMP, HAS_MASK=HAS_MASK,
                                           BLOCK=BLOCK, W_POW2=W_POW2)
    if N_SCALES > 3:
        cx3, vx3, cy3, vy3 = _fd_band_sums(*band, STEP=8, CLAMP=CLAMP, HAS_MASK=HAS_MASK,
                                           BLOCK=BLOCK, W_POW2=W_POW2)
    cnt_ptr, acc_ptr, _, hist_ptr = scratch
    cnt_ptr += b * CNT
    acc_ptr += b * ACC
    tl.atomic_add(hist_ptr + b * HIST + tl.arange(0, NB1), hist, mask=hist != 0)
    tl.atomic_add(cnt_ptr + CNT_VALID, tl.sum(n_valid))
    tl.atomic_add(acc_ptr + ACC_W, tl.sum(s_w))
    tl.atomic_add(acc_ptr + ACC_WE, tl.sum(s_we))
    tl.atomic_add(acc_ptr + ACC_WEC, tl.sum(s_wec))
    lanes = tl.arange(0, N_FD)
    live = lanes < 2 * N_SCALES
    f_cnt = _slots(lanes, tl.sum(cx), tl.sum(cy), cx1, cy1, cx2, cy2, cx3, cy3)
    f_sum = _slots(lanes, tl.sum(vx), tl.sum(vy), vx1, vy1, vx2, vy2, vx3, vy3)
    tl.atomic_add(cnt_ptr + CNT_FD + lanes, f_cnt, mask=live)
    tl.atomic_add(acc_ptr + ACC_FD + lanes, f_sum, mask=live)


@triton.jit
def _depth_refine_kernel(
    src, c_ptr, nc_ptr, maps, scratch,
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
    src: (pred, target, mask) or the error buffer thrice; maps: (blocks, offsets, meta); scratch:
    (cnt, acc, sel, hist).
    """
    cnt_ptr, acc_ptr, sel_ptr, hist_ptr = scratch
    b, start, base, n = _chunk_of_program(maps)
    nc_ptr += tl.program_id(0)
    c_ptr += base + start
    steps = ITERS
    if LEVEL == 3:  # the program's candidates
        n = tl.load(nc_ptr)
        start = 0
        steps = tl.cdiv(n, BLOCK)
    if (tl.load(cnt_ptr + b * CNT + CNT_VALID) > MIN_PIXELS) & (start < n):
        prefix = tl.load(sel_ptr + b * SEL + SEL_PREFIX)
        hist = tl.zeros([NB_FINE], dtype=tl.int32)
        c = tl.zeros([BLOCK], dtype=tl.int32)
        s_e = tl.zeros([BLOCK], dtype=tl.float32)
        for it in range(steps):
            i = start + it * BLOCK + tl.arange(0, BLOCK)
            if LEVEL == 2:
                d, valid = _load_diff(src, base + i, i < n, HAS_MASK, D_BUF)
                e = tl.abs(d)
            else:
                valid = i < n
                e = tl.load(c_ptr + i, mask=valid, other=0.0)
            key = _error_key(e, CLAMP)
            if LEVEL == 2:
                cand = valid & ((key >> KEY_SHIFT1) == prefix)
                hist += tl.histogram((key >> FINE_BITS) & FINE_MASK, NB_FINE, mask=cand)
                below = valid & ((key >> KEY_SHIFT1) < prefix)
                slot = tl.atomic_add(nc_ptr + 0 * i, 1, mask=cand, sem="relaxed")
                tl.store(c_ptr + slot, e, mask=cand)
            else:
                hist += tl.histogram(key & FINE_MASK, NB_FINE, mask=valid & ((key >> FINE_BITS) == prefix))
                below = valid & ((key >> FINE_BITS) < prefix)  # every candidate has the level-1 prefix
            if FOLD:
                c += below.to(tl.int32)
                s_e += tl.where(below, e, 0.0)
        AT: tl.constexpr = NB1 + NB_FINE * (LEVEL - 2)  # this level's histogram
        bins = tl.arange(0, NB_FINE)
        tl.atomic_add(hist_ptr + b * HIST + AT + bins, hist, mask=hist != 0)
        if FOLD:
            n_below = tl.sum(c)
            tl.atomic_add(cnt_ptr + b * CNT + CNT_SURV, n_below)
            tl.atomic_add(acc_ptr + b * ACC + ACC_SURV_W, n_below.to(tl.float32))
            tl.atomic_add(acc_ptr + b * ACC + ACC_SURV_WE, tl.sum(s_e))


@triton.jit
def _depth_select_kernel(
    scratch, CLAMP_KEY: tl.constexpr, MIN_PIXELS: tl.constexpr,
    Q_NUM: tl.constexpr, Q_DEN: tl.constexpr, LEVEL: tl.constexpr, FOLD: tl.constexpr,
):
    """One program per sample: find the bin of the remaining rank, extend the key prefix.

    After level 3 the prefix is the exact k-th key; with FOLD, the pixels of the last 10-bit range
    up to the threshold key min(k-th key, CLAMP_KEY = bits(CLAMP)) are added to the survivor sums: each level-3
    bin is a single fp32 value, so its sum is count x value. scratch: (cnt, acc, sel, hist).
    """
    cnt_ptr, acc_ptr, sel_ptr, hist_ptr = scratch
    b = tl.program_id(0).to(tl.int64)
    NB: tl.constexpr = NB1 if LEVEL == 1 else NB_FINE
    BITS: tl.constexpr = 0 if LEVEL == 1 else FINE_BITS  # how far the prefix shifts
    AT: tl.constexpr = 0 if LEVEL == 1 else NB1 + NB_FINE * (LEVEL - 2)  # the level's histogram
    n = tl.load(cnt_ptr + b * CNT + CNT_VALID)
    if LEVEL == 1:
        k = (Q_NUM * tl.maximum(n - 1, 0) + Q_DEN - 1) // Q_DEN + 1
        prefix = 0
    else:
        k = tl.load(sel_ptr + b * SEL + SEL_RANK)
        prefix = tl.load(sel_ptr + b * SEL + SEL_PREFIX)
    hist = tl.load(hist_ptr + b * HIST + AT + tl.arange(0, NB))
    idx = tl.arange(0, NB)
    cum = tl.cumsum(hist, 0)
    j = tl.min(tl.where(cum >= k, idx, NB - 1), 0)
    before = tl.sum(tl.where(idx < j, hist, 0))
    key = (prefix << BITS) | j
    tl.store(sel_ptr + b * SEL + SEL_PREFIX, key)
    tl.store(sel_ptr + b * SEL + SEL_RANK, k - before)
    if FOLD and LEVEL == 3 and n > MIN_PIXELS:
        thr_key = tl.minimum(key, CLAMP_KEY)
        last = idx <= (thr_key & FINE_MASK)
        values = ((prefix << FINE_BITS) | idx).to(tl.float32, bitcast=True)
        tl.atomic_add(cnt_ptr + b * CNT + CNT_SURV, tl.sum(tl.where(last, hist, 0)))
        tl.atomic_add(acc_ptr + b * ACC + ACC_SURV_W, tl.sum(tl.where(last, hist, 0).to(tl.float32)))
        tl.atomic_add(acc_ptr + b * ACC + ACC_SURV_WE, tl.sum(tl.where(last, hist.to(tl.float32) * values, 0.0)))


@triton.jit
def _depth_survivors_kernel(
    src, w_ptr, maps, scratch,
    CLAMP: tl.constexpr, MIN_PIXELS: tl.constexpr, HAS_MASK: tl.constexpr, D_BUF: tl.constexpr,
    HAS_WEIGHT: tl.constexpr, BLOCK: tl.constexpr, ITERS: tl.constexpr,
):
    """Weighted loss only: count and weighted sums of the pixels with e <= thr, thr = min(k-th
    clamped error, CLAMP) (without weights the refine/select kernels fold these sums in).
    Arguments as the refine's."""
    cnt_ptr, acc_ptr, sel_ptr, _ = scratch
    b, start, base, n = _chunk_of_program(maps)
    cnt_ptr += b * CNT
    acc_ptr += b * ACC
    if tl.load(cnt_ptr + CNT_VALID) > MIN_PIXELS:
        thr = tl.minimum(tl.load(sel_ptr + b * SEL + SEL_PREFIX).to(tl.float32, bitcast=True), CLAMP)
        c = tl.zeros([BLOCK], dtype=tl.int32)
        s_w = tl.zeros([BLOCK], dtype=tl.float32)
        s_we = tl.zeros([BLOCK], dtype=tl.float32)
        for it in range(ITERS):
            i = start + it * BLOCK + tl.arange(0, BLOCK)
            d, valid = _load_diff(src, base + i, i < n, HAS_MASK, D_BUF)
            e = tl.abs(d)
            surv = valid & (e <= thr)
            w = tl.where(surv, 1.0, 0.0)
            if HAS_WEIGHT:
                w = w * tl.load(w_ptr + base + i, mask=surv, other=0.0).to(tl.float32)
            c += surv.to(tl.int32)
            s_w += w
            s_we += w * e
        tl.atomic_add(cnt_ptr + CNT_SURV, tl.sum(c))
        tl.atomic_add(acc_ptr + ACC_SURV_W, tl.sum(s_w))
        tl.atomic_add(acc_ptr + ACC_SURV_WE, tl.sum(s_we))


@triton.jit
def _scale_used(frames, h, w, S: tl.constexpr, GRAD_MIN_PIXELS: tl.constexpr):
    """Does D[:, ::2^S, ::2^S] of a [frames, h, w] map have at least GRAD_MIN_PIXELS pixels."""
    return frames * ((h + (1 << S) - 1) >> S) * ((w + (1 << S) - 1) >> S) >= GRAD_MIN_PIXELS


@triton.jit
def _depth_finalize_kernel(
    scratch, meta_ptr, par_ptr, out_ptr, B,
    CLAMP: tl.constexpr, MIN_PIXELS: tl.constexpr, N_SCALES: tl.constexpr, GRAD_MIN_PIXELS: tl.constexpr,
    BLOCK_B: tl.constexpr,
):
    """Per-sample L_reg/L_grad and backward coefficients; out = [loss, reg, grad] batch means.
    L_grad averages over the scales whose subsampled map (all frames, from the sample's shape in
    meta) has at least GRAD_MIN_PIXELS pixels; 0 when none has. scratch: (cnt, acc, sel, hist)."""
    cnt_ptr, acc_ptr, sel_ptr, _ = scratch
    bs = tl.arange(0, BLOCK_B)
    live = bs < B
    px = tl.load(meta_ptr + bs * META + META_PIXELS, mask=live, other=0)
    h = tl.load(meta_ptr + bs * META + META_H, mask=live, other=1)
    w = tl.load(meta_ptr + bs * META + META_W, mask=live, other=1)
    frames = px // (h * w)
    n_used = tl.zeros([BLOCK_B], dtype=tl.int32)
    for s in tl.static_range(N_SCALES):
        n_used += _scale_used(frames, h, w, s, GRAD_MIN_PIXELS).to(tl.int32)
    per_scale = tl.where(n_used > 0, 1.0 / tl.maximum(n_used, 1).to(tl.float32), 0.0)
    cnt = cnt_ptr + bs * CNT
    acc = acc_ptr + bs * ACC
    par = par_ptr + bs * PAR
    n = tl.load(cnt + CNT_VALID, mask=live, other=0)
    n_surv = tl.load(cnt + CNT_SURV, mask=live, other=0)
    branch = tl.where(n <= MIN_PIXELS, 0, tl.where(n_surv < MIN_PIXELS, 2, 1))
    s_w = tl.load(acc + ACC_W, mask=live, other=0.0)
    den = tl.where(branch == 1, tl.load(acc + ACC_SURV_W, mask=live, other=0.0), s_w)
    num = tl.where(
        branch == 0,
        tl.load(acc + ACC_WE, mask=live, other=0.0),
        tl.where(branch == 1, tl.load(acc + ACC_SURV_WE, mask=live, other=0.0),
                 tl.load(acc + ACC_WEC, mask=live, other=0.0)),
    )
    coef = tl.where(den > 0, 1.0 / tl.where(den > 0, den, 1.0), 0.0)
    reg = num * coef
    kth = tl.load(sel_ptr + bs * SEL + SEL_PREFIX, mask=live, other=0).to(tl.float32, bitcast=True)
    # L_reg keeps e <= lim: every valid pixel (branch 0), e <= thr (1), e <= CLAMP (2)
    lim = tl.where(branch == 0, float("inf"), tl.where(branch == 1, tl.minimum(kth, CLAMP), CLAMP))
    tl.store(par + PAR_REG, coef, mask=live)
    tl.store(par + PAR_LIM, lim, mask=live)
    tl.store(par + PAR_BRANCH, branch.to(tl.float32), mask=live)
    grad = tl.zeros([BLOCK_B], dtype=tl.float32)
    for j in tl.static_range(2 * N_SCALES):
        c = tl.load(cnt + CNT_FD + j, mask=live, other=0).to(tl.float32)
        used = _scale_used(frames, h, w, j // 2, GRAD_MIN_PIXELS)  # sums/counts j: x then y per scale
        inv = tl.where(c > 0, 1.0 / tl.where(c > 0, c, 1.0), 0.0) * tl.where(used, per_scale, 0.0)
        grad += tl.load(acc + ACC_FD + j, mask=live, other=0.0) * inv
        tl.store(par + PAR_FD + j, inv, mask=live)
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
def _pixel_grad(src, w_ptr, par_ptr, b, idx, inb, row, col, H, W, c_reg, lim,
                g_grad, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr,
                D_BUF: tl.constexpr, N_SCALES: tl.constexpr):
    """dL/dD at pixels (row, col) (pointers at the frame's first pixel, idx = row * W + col):
    the L_reg term (c_reg sign(D) where |D| <= lim) and the pairs of the first N_SCALES scales;
    the caller's pixels lie on the grid of the coarsest of them. A neighbour's load shifts the
    base pointers (_neighbour)."""
    d = _load_or_nan(src, idx, inb, HAS_MASK, D_BUF)
    keep = (tl.abs(d) <= lim) & (d != 0.0)
    c = c_reg
    if HAS_WEIGHT:
        c = c * tl.load(w_ptr + idx, mask=keep, other=0.0).to(tl.float32)
    g = tl.where(keep, _times_sign(c, d), 0.0)
    for s in tl.static_range(N_SCALES):
        step = 1 << s
        c_x = tl.load(par_ptr + b * PAR + PAR_FD + 2 * s) * g_grad
        c_y = tl.load(par_ptr + b * PAR + PAR_FD + 2 * s + 1) * g_grad
        g += _pair_grad(c_x, d, _neighbour(src, step, idx, inb & (col + step < W), HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_x, d, _neighbour(src, -step, idx, inb & (col >= step), HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_y, d, _neighbour(src, step * W, idx, inb & (row + step < H), HAS_MASK, D_BUF), CLAMP)
        g += _pair_grad(c_y, d, _neighbour(src, -step * W, idx, inb & (row >= step), HAS_MASK, D_BUF), CLAMP)
    return g


@triton.jit
def _grad_lattice(src, w_ptr, g_ptr, par_ptr, b, row0, row_end, H, W, c_reg, lim,
                  g_grad, CLAMP: tl.constexpr, HAS_MASK: tl.constexpr,
                  HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr, N_SCALES: tl.constexpr,
                  R_OFF: tl.constexpr, R_STEP: tl.constexpr, C_OFF: tl.constexpr,
                  C_STEP: tl.constexpr, BLOCK: tl.constexpr,
                  W_POW2: tl.constexpr):
    """Writes the gradient (L_reg term and the first N_SCALES scales) of the band's pixels at
    rows row0 + R_OFF + R_STEP j and columns C_OFF + C_STEP k (see _lattice)."""
    row, tile_col, tile_step = _lattice(row0, R_OFF=R_OFF, R_STEP=R_STEP, C_STEP=C_STEP, BLOCK=BLOCK, W_POW2=W_POW2)
    for c0 in range(C_OFF, W, tile_step):
        col = c0 + tile_col
        idx = row * W + col
        inb = (row < row_end) & (col < W)
        g = _pixel_grad(src, w_ptr, par_ptr, b, idx, inb, row, col, H, W, c_reg, lim, g_grad,
                        CLAMP=CLAMP, HAS_MASK=HAS_MASK, HAS_WEIGHT=HAS_WEIGHT, D_BUF=D_BUF,
                        N_SCALES=N_SCALES)
        tl.store(g_ptr + idx, g.to(g_ptr.dtype.element_ty), mask=inb)


@triton.jit
def _depth_backward_kernel(
    src, w_ptr, g_ptr, maps, par_ptr, gout_ptr, B,
    CLAMP: tl.constexpr, HAS_MASK: tl.constexpr, HAS_WEIGHT: tl.constexpr, D_BUF: tl.constexpr,
    N_SCALES: tl.constexpr, BLOCK: tl.constexpr, W_POW2: tl.constexpr,
):
    """One band of one frame per program. A pixel on the grid of step 2^s but not on 2^(s+1)
    gets the L_reg term and the pairs of scales 0 .. s; each such set is a union of two lattices
    (the grid's odd rows; its even rows' odd columns), visited in its own loop, so every lane
    computes a pixel it writes, each pixel is written once, and a scale's pairs are evaluated
    only where it acts. The last scale's grid is one lattice. src: what the forward kept (pred,
    target, mask, or the error buffer thrice); g_ptr: the gradient, in pred's dtype; maps: (bands,
    offsets, meta); par_ptr: the forward's per-sample coefficients; gout_ptr: the upstream
    gradients of (loss, reg, grad); B: samples."""
    b, base, row0, row_end, H, W = _band_of_program(maps)
    g_loss = tl.load(gout_ptr).to(tl.float32)
    g_reg = (g_loss + tl.load(gout_ptr + 1).to(tl.float32)) / B
    g_grad = (g_loss + tl.load(gout_ptr + 2).to(tl.float32)) / B
    c_reg = tl.load(par_ptr + b * PAR + PAR_REG) * g_reg
    lim = tl.load(par_ptr + b * PAR + PAR_LIM)
    p_ptr, t_ptr, m_ptr = src  # moved one by one: through _shift, ptxas lengthens one loop by 16
    p_ptr += base
    t_ptr += base
    m_ptr += base
    w_ptr += base
    g_ptr += base
    band = ((p_ptr, t_ptr, m_ptr), w_ptr, g_ptr, par_ptr, b, row0, row_end, H, W, c_reg, lim, g_grad)
    for s in tl.static_range(N_SCALES - 1):
        # the pixels of grid 2^s off grid 2^(s+1): its odd rows, then its even rows' odd columns
        _grad_lattice(*band, N_SCALES=s + 1, R_OFF=1 << s, R_STEP=2 << s, C_OFF=0, C_STEP=1 << s,
                      CLAMP=CLAMP, HAS_MASK=HAS_MASK, HAS_WEIGHT=HAS_WEIGHT, D_BUF=D_BUF, BLOCK=BLOCK,
                      W_POW2=W_POW2)
        _grad_lattice(*band, N_SCALES=s + 1, R_OFF=0, R_STEP=2 << s, C_OFF=1 << s, C_STEP=2 << s,
                      CLAMP=CLAMP, HAS_MASK=HAS_MASK, HAS_WEIGHT=HAS_WEIGHT, D_BUF=D_BUF, BLOCK=BLOCK,
                      W_POW2=W_POW2)
    last: tl.constexpr = 1 << (N_SCALES - 1)  # the coarsest grid: one lattice
    _grad_lattice(*band, N_SCALES=N_SCALES, R_OFF=0, R_STEP=last, C_OFF=0, C_STEP=last,
                  CLAMP=CLAMP, HAS_MASK=HAS_MASK, HAS_WEIGHT=HAS_WEIGHT, D_BUF=D_BUF, BLOCK=BLOCK,
                  W_POW2=W_POW2)


