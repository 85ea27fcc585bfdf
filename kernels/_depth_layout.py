"""The fused depth loss's per-sample scratch and radix-select key: one definition for the kernels
(which read these as compile-time globals) and the launcher (which sizes buffers with `int(X)`).

Every scratch buffer is row-major [B, width]: sample b's field F lies at `ptr + b * WIDTH + F`.
Finite-difference slots: 2 s is the x axis of scale s (step 2^s), 2 s + 1 its y axis.
"""
import triton.language as tl

N_FD = tl.constexpr(8)  # finite-difference slots: 4 scales x 2 axes

# cnt, int32 [B, CNT]
CNT_VALID = tl.constexpr(0)  # valid pixels n
CNT_SURV = tl.constexpr(1)  # survivors (e <= thr)
CNT_FD = tl.constexpr(2)  # N_FD pair counts
CNT = tl.constexpr(2 + 8)

# acc, fp32 [B, ACC]
ACC_W = tl.constexpr(0)  # sum w
ACC_WE = tl.constexpr(1)  # sum w e
ACC_WEC = tl.constexpr(2)  # sum w min(e, clamp)
ACC_SURV_W = tl.constexpr(3)  # sum w over survivors
ACC_SURV_WE = tl.constexpr(4)  # sum w e over survivors
ACC_FD = tl.constexpr(5)  # N_FD sums of clamp(|dD|)
ACC = tl.constexpr(5 + 8)

# sel, int32 [B, SEL]: the radix select's state
SEL_PREFIX = tl.constexpr(0)  # key prefix chosen so far (the exact k-th key after level 3)
SEL_RANK = tl.constexpr(1)  # rank still to find within the prefix
SEL = tl.constexpr(2)

# par, fp32 [B, PAR]: what the backward needs
PAR_REG = tl.constexpr(0)  # L_reg coefficient 1 / sum w (of the kept pixels)
PAR_LIM = tl.constexpr(1)  # L_reg keeps |D| <= lim
PAR_BRANCH = tl.constexpr(2)  # 0: no filtering, 1: quantile filter, 2: too few survivors
PAR_FD = tl.constexpr(3)  # N_FD coefficients (1 / pairs / scales used)
PAR = tl.constexpr(3 + 8)

# The key (see _depth_kernels._error_key) is 31 bits, selected in three levels: bits [30:20]
# (KEY_SHIFT1 = 20, NB1 bins), then [19:10] and [9:0] (FINE_BITS = 10 bits, NB_FINE bins each).
FINE_BITS = tl.constexpr(10)
NB1 = tl.constexpr(2048)
NB_FINE = tl.constexpr(1024)
KEY_SHIFT1 = tl.constexpr(20)
FINE_MASK = tl.constexpr(1023)

# hist, int32 [B, HIST]: level 1 at 0, level L >= 2 at NB1 + NB_FINE (L - 2) (hist_at)
HIST = tl.constexpr(2048 + 2 * 1024)


def hist_at(level: int) -> int:
    """Offset of a radix level's histogram within a sample's row of hist (host side)."""
    return 0 if level == 1 else int(NB1) + int(NB_FINE) * (level - 2)


assert int(CNT) == int(CNT_FD) + int(N_FD) and int(ACC) == int(ACC_FD) + int(N_FD)
assert int(PAR) == int(PAR_FD) + int(N_FD) and int(HIST) == hist_at(4)
assert int(NB1) == 1 << (31 - int(KEY_SHIFT1)) and int(NB_FINE) == 1 << int(FINE_BITS) == int(FINE_MASK) + 1
assert int(KEY_SHIFT1) == 2 * int(FINE_BITS)

# The launch maps (geovr.kernels._packing): meta, int32 [B, META] per sample; blocks, int32
# [P, 2] = (sample, first pixel) per chunk program; bands, int32 [P, 3] = (sample, offset of the
# frame's first pixel within the sample, first row) per band program.
META_PIXELS = tl.constexpr(0)
META_H = tl.constexpr(1)
META_W = tl.constexpr(2)
META = tl.constexpr(3)
BLOCK_FIELDS = tl.constexpr(2)
BAND_FIELDS = tl.constexpr(3)
BAND = tl.constexpr(16)  # rows per band program: a multiple of 8, the coarsest finite-difference step
