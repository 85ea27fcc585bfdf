"""Pack lists of per-sample tensors into flat buffers for the varlen kernels, and the launch maps."""
from __future__ import annotations

import functools

import torch
from torch import Tensor


# The depth kernels index pixels within one sample in int32 (a sample's offset in the packed batch
# is int64): a tile may reach past the sample's end by a chunk or 15 rows, hence the margin.
MAX_INT32_INDEX = 2**31 - 2**24


def check_int32_extent(name: str, count: int, what: str) -> None:
    """Raises a ValueError when `count` elements would overflow the kernels' int32 indices."""
    if count > MAX_INT32_INDEX:
        raise ValueError(f"{name}: {count:,} {what} exceed the fused kernel's {MAX_INT32_INDEX:,} (int32 indices "
                         "within a sample); split the sample, or use backend='reference'")


def pack_flat(xs: list[Tensor] | tuple[Tensor, ...], dtype: torch.dtype | None = None) -> Tensor:
    """1-D concatenation of `xs` (cast to `dtype`); no copy when the tensors are contiguous views
    lying back to back in one storage (as produced by `torch.split` of a packed buffer)."""
    dtype = dtype or xs[0].dtype
    first = xs[0]
    adjacent = all(x.dtype == dtype and x.is_contiguous() for x in xs) and all(
        b.untyped_storage().data_ptr() == first.untyped_storage().data_ptr()
        and b.data_ptr() == a.data_ptr() + a.numel() * a.element_size()
        for a, b in zip(xs[:-1], xs[1:])
    )
    total = sum(x.numel() for x in xs)
    if adjacent:
        return first.as_strided((total,), (1,))
    return torch.cat([x.reshape(-1).to(dtype) for x in xs])


def to_device(rows: list, dtype: torch.dtype, device: torch.device) -> Tensor:
    """A small host table as a tensor on `device`, without a host sync on CUDA."""
    t = torch.tensor(rows, dtype=dtype)
    if device.type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)  # no host sync
    return t.to(device)


@functools.lru_cache(maxsize=64)
def block_layout(lengths: tuple[int, ...], chunk: int, device: torch.device) -> tuple[Tensor, Tensor]:
    """For samples of `lengths` elements packed back to back: (offsets int64 [B], blocks int32 [P, 2]).

    Each program owns `chunk` consecutive elements of one sample: blocks[p] = (sample, start).
    Cached per layout, so a training loop with repeating shapes pays for it once.
    """
    offsets, blocks, off = [], [], 0
    for b, n in enumerate(lengths):
        offsets.append([off])
        blocks.extend([b, s] for s in range(0, n, chunk))
        off += n
    if not blocks:
        blocks = [[0, 0]]
    return (
        to_device(offsets, torch.int64, device).view(-1),
        to_device(blocks, torch.int32, device),
    )


@functools.lru_cache(maxsize=64)
def band_layout(lengths: tuple[int, ...], hw: tuple[tuple[int, int], ...], band: int,
                device: torch.device) -> Tensor:
    """Programs over bands of `band` rows of single frames, for samples of `lengths` pixels
    ([T, H, W] frames of sizes `hw`) packed back to back: int32 [P, 3] of (sample, offset of the
    frame's first pixel within the sample, first row). Kernels get (row, col) of a pixel from
    the program and lane ids, with no integer division. Cached per layout, like block_layout.
    """
    rows = []
    for b, (n, (h, w)) in enumerate(zip(lengths, hw)):
        frames = n // (h * w) if h * w else 0
        rows.extend([b, f * h * w, r] for f in range(frames) for r in range(0, h, band))
    if not rows:
        rows = [[0, 0, 2**30]]  # one idle program: its rows lie past every frame
    return to_device(rows, torch.int32, device)
