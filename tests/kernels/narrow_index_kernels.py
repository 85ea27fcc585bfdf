"""Two versions of the alignment kernel's row indexing for tests/kernels/test_aot_compile.py: as
it was (a program id scaled in int32: rows x 3 wraps past 716M rows) and as it is (int64)."""
import triton, triton.language as tl

@triton.jit
def old_rows(x_ptr, stats_ptr, R, BLOCK: tl.constexpr):
    rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + rows, mask=rows < R, other=0.0)
    tl.store(stats_ptr + rows * 3, v, mask=rows < R)

@triton.jit
def new_rows(x_ptr, stats_ptr, R, BLOCK: tl.constexpr):
    rows = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    v = tl.load(x_ptr + rows, mask=rows < R, other=0.0)
    tl.store(stats_ptr + rows * 3, v, mask=rows < R)
