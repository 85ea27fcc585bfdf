"""The doctor's checks: each runs one fused or native path on this machine's device against its
reference (geovr.doctor.compare) and says ok, mismatch or skipped (why). A check that raises or
kills its process is `crashed`: the runner (geovr.doctor.runner) runs each in a subprocess.

  depth_loss   Triton depth loss, forward + backward (the trainer's fp32 variant, odd sizes, a
               single frame, non-contiguous and stride-0 inputs, masks with NaN targets, weights,
               bf16 / fp16, two launches in a row)
  align_loss   Triton alignment loss, forward + backward (several layers, an empty sample, zero
               vectors, D off a power of 2, non-contiguous inputs, a stride-0 upstream gradient of the
               per-segment output, bf16 / fp16, two launches)
  pose_loss    the compiled pose extension (its CUDA kernels on a GPU) against the CPU extension
               and the eager reference, three modes, one-frame samples, fp32 and fp64
  dali_decode  DALI's decoder (GPU, or its CPU backend without one) against PyAV on a clip it
               writes: frame count and PSNR
  nccl         (2+ GPUs) an all-reduce over NCCL on every GPU
  fsdp         (2+ GPUs) one AdamW step of a small MLP under FSDP2 against DDP
Without a GPU the kernels run in the Triton interpreter: that checks the kernels' logic, not the
compiled code, and the table says so.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from geovr.doctor.compare import Comparison, compare_align, compare_align_segments, compare_depth, compare_pose

PSNR_MIN_DB = 35.0  # DALI vs PyAV on the same clip: YUV->RGB conversions differ by a few levels


class Skip(Exception):
    """Raised by a check that cannot run here; its message says why."""


@dataclass
class Outcome:
    """What a check found: status ok | mismatch | skipped; the worst case's relative error; why
    (the first mismatch, or why it was skipped); how many cases ran."""

    status: str
    max_error: float | None = None
    why: str = ""
    cases: int = 0


@dataclass
class Check:
    name: str
    path: str  # what it verifies, as the table and the trainer's log name it
    run: Callable[[torch.device, bool], Outcome]
    fallback: str  # what the trainer uses instead when it fails


def _cases(cases: list[tuple[str, Callable[[], Comparison]]]) -> Outcome:
    """Runs named comparison cases; the first mismatch names its case."""
    total = Comparison(0.0, None)
    for name, case in cases:
        got = case()
        if got.failure is not None and total.failure is None:
            total = Comparison(total.max_error, f"{name}: {got.failure}")
        total = Comparison(max(total.max_error, got.max_error), total.failure)
    return Outcome("ok" if total.ok else "mismatch", total.max_error, total.failure or "", len(cases))


# ------------------------------------------------------------------------------------------ depth

def depth_inputs(shapes, device, dtype=torch.float32, outliers=0.0, seed=0, target_dtype=None):
    """pred (leaves) and target lists of [T, H, W] maps in (0.1, 4.1), a fraction `outliers` of
    the target pixels 300 further (errors beyond the clamp)."""
    g = torch.Generator().manual_seed(seed)
    pred, target = [], []
    for s in shapes:
        p = torch.rand(s, generator=g) * 4 + 0.1
        t = torch.rand(s, generator=g) * 4 + 0.1
        k = int(outliers * t.numel())
        t.view(-1)[torch.randperm(t.numel(), generator=g)[:k]] += 300.0
        pred.append(p.to(device, dtype).requires_grad_())
        target.append(t.to(device, target_dtype or dtype))
    return pred, target


def depth_cases(device: torch.device, quick: bool) -> list[tuple[str, Callable[[], Comparison]]]:
    """The depth loss's cases at the device's sizes: the release's 392 x 504 maps on a GPU, small
    maps in the interpreter."""
    gpu = device.type == "cuda"
    trainer_shapes = [(4, 392, 504), (2, 196, 252)] if gpu else [(2, 30, 40), (1, 33, 47)]
    odd = [(1, 7, 143), (2, 1, 9), (3, 9, 31), (1, 1, 1)] if quick else [
        (1, 7, 143), (2, 1, 9), (3, 9, 31), (1, 1, 1), (1, 3, 200), (1, 3, 3), (3, 4, 4)]

    def trainer():
        return compare_depth(*depth_inputs(trainer_shapes, device, outliers=0.01))

    def odd_sizes():
        return compare_depth(*depth_inputs(odd, device, seed=1))

    def strided():  # pred a transposed view, target a stride-0 (expanded) constant map
        h, w = (56, 72) if not gpu else (392, 504)
        base = (torch.rand(2, w, h, generator=torch.Generator().manual_seed(2)) * 4 + 0.1).to(device)
        pred = [base.transpose(1, 2).requires_grad_()]
        target = [torch.full((), 2.0, device=device).expand(2, h, w)]
        return compare_depth(pred, target)

    def masked():  # masked-out targets hold NaN; weights on the kept pixels
        pred, target = depth_inputs([(2, 30, 40), (1, 17, 23)], device, outliers=0.02, seed=3)
        g = torch.Generator().manual_seed(4)
        mask = [(torch.rand(x.shape, generator=g) > 0.3).to(device) for x in pred]
        for t, m in zip(target, mask):
            t[~m] = float("nan")
        weight = [(torch.rand(x.shape, generator=g) + 0.1).to(device) for x in pred]
        return compare_depth(pred, target, mask).merge(compare_depth(pred, target, mask, weight))

    def half(dtype):
        return lambda: compare_depth(*depth_inputs([(2, 30, 40), (1, 17, 9)], device, dtype, outliers=0.02, seed=5))

    def twice():  # a second launch must not see the first one's accumulators
        pred, target = depth_inputs([(2, 30, 40)], device, seed=6)
        return compare_depth(pred, target).merge(compare_depth(pred, target))

    cases = [("trainer fp32", trainer), ("odd sizes", odd_sizes), ("strided inputs", strided),
             ("mask + weight", masked), ("bf16", half(torch.bfloat16))]
    if not quick:
        cases += [("fp16", half(torch.float16)), ("launched twice", twice)]
    return cases


# ------------------------------------------------------------------------------------------ align

def align_inputs(counts, d, device, dtype=torch.float32, layers=4, seed=0):
    """student (leaves) and teacher: `layers` lists of [n, d] normal features, n in `counts`."""
    g = torch.Generator().manual_seed(seed)
    student = [[torch.randn(n, d, generator=g).to(device, dtype).requires_grad_() for n in counts]
               for _ in range(layers)]
    teacher = [[torch.randn(n, d, generator=g).to(device, dtype) for n in counts] for _ in range(layers)]
    return student, teacher


def align_cases(device: torch.device, quick: bool) -> list[tuple[str, Callable[[], Comparison]]]:
    """The alignment loss's cases: the trainer's 4 layers at a real width on a GPU (2048 channels,
    ~1.7k tokens per sample), small in the interpreter."""
    gpu = device.type == "cuda"
    counts, d = ([1680, 1200], 2048) if gpu else ([17, 5, 32], 64)

    def trainer():
        return compare_align(*align_inputs(counts, d, device))

    def ragged():  # an empty sample; D off a power of 2 over several chunks
        return compare_align(*align_inputs([9, 0, 4], 1000, device, layers=2, seed=1))

    def zeros():
        student, teacher = align_inputs([6, 4], 32, device, seed=2)
        with torch.no_grad():
            student[0][0][1].zero_()
            teacher[1][1][2].zero_()
        return compare_align(student, teacher)

    def strided():
        g = torch.Generator().manual_seed(3)
        student = [[torch.randn(48, 20, generator=g).to(device).t().requires_grad_()] for _ in range(2)]
        teacher = [[torch.randn(20, 48, generator=g).to(device)] for _ in range(2)]
        return compare_align(student, teacher)

    def half(dtype):
        return lambda: compare_align(*align_inputs([20, 7], 96, device, dtype=dtype, seed=4))

    def stride0_upstream():
        return compare_align_segments(*align_inputs([7, 0, 12], 40, device, layers=2, seed=11))

    def twice():
        student, teacher = align_inputs([20, 7], 96, device, seed=5)
        return compare_align(student, teacher).merge(compare_align(student, teacher))

    cases = [("trainer fp32", trainer), ("ragged", ragged), ("zero vectors", zeros), ("strided inputs", strided),
             ("stride-0 upstream", stride0_upstream), ("bf16", half(torch.bfloat16))]
    if not quick:
        cases += [("fp16", half(torch.float16)), ("launched twice", twice)]
    return cases


# ------------------------------------------------------------------------------------------- pose

def _pose_inputs(frames: list[int], device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred, target = [], []
    for t in frames:
        p = torch.randn(t, 9, generator=g, dtype=torch.float64)
        q = torch.randn(t, 9, generator=g, dtype=torch.float64)
        p[:, 7:], q[:, 7:] = p[:, 7:].abs() + 0.5, q[:, 7:].abs() + 0.5
        pred.append(p.to(device, dtype).requires_grad_())
        target.append(q.to(device, dtype))
    return pred, target


def pose_cases(device: torch.device, quick: bool) -> list[tuple[str, Callable[[], Comparison]]]:
    frames = [32, 1, 7] if device.type == "cuda" else [8, 1, 3]
    cpu = torch.device("cpu")
    dtypes = (torch.float32,) if quick else (torch.float32, torch.float64)
    return [(f"{mode} {str(dtype).removeprefix('torch.')}",
             lambda mode=mode, dtype=dtype: compare_pose(*_pose_inputs(frames, device, dtype), mode, cpu))
            for mode in ("paper", "geodesic", "relative") for dtype in dtypes]


def _kernel_check(cases: Callable) -> Callable[[torch.device, bool], Outcome]:
    def run(device: torch.device, quick: bool) -> Outcome:
        from geovr.losses._backend import interpreting, triton_available

        if not triton_available():
            raise Skip("Triton is not installed (pip install triton); the losses run on their references")
        if device.type != "cuda" and not interpreting():
            raise Skip("no GPU, and TRITON_INTERPRET is not set")
        return _cases(cases(device, quick))
    return run


def _pose_check(device: torch.device, quick: bool) -> Outcome:
    from geovr.losses.pose import load_extension

    ext = load_extension()  # raises ImportError (crashed) when the extension is not built
    if device.type == "cuda" and not ext.with_cuda:
        raise Skip("geovr._ext was built without CUDA (rebuild with FORCE_CUDA=1 on this machine); the pose loss "
                   "runs on the CPU extension")
    return _cases(pose_cases(device, quick))


# ----------------------------------------------------------------------------------------- decode

def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two uint8 frame stacks."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def _decode_check(device: torch.device, quick: bool) -> Outcome:
    import numpy as np

    from geovr.data.decode import available_backends, decode_frames, probe_video
    from geovr.data.video_writer import write_video

    backend = "dali-gpu" if device.type == "cuda" else "dali-cpu"
    if backend not in available_backends():
        raise Skip("DALI is not installed (pip install 'geovr[gpu]'); videos decode with PyAV"
                   if "dali-cpu" not in available_backends() else f"{backend} is not available here")
    # a moving gradient with edges, 24 frames: H.264 for NVDEC, VP9 for DALI's CPU decoder
    t, h, w = 24, 96, 128
    y, x = np.mgrid[0:h, 0:w]
    frames = np.stack([np.stack([(x * 2 + 5 * i) % 256, (y * 2 + 3 * i) % 256, ((x + y + 7 * i) // 2) % 256], -1)
                       for i in range(t)]).astype(np.uint8)
    codec, suffix = ("h264", ".mp4") if device.type == "cuda" else ("vp9", ".webm")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{suffix}"
        write_video(path, frames, fps=8.0, codec=codec)
        info = probe_video(path)
        indices = list(range(0, t, 1 if not quick else 3))
        got = decode_frames(info, indices, backend=backend).data.cpu()
        want = decode_frames(info, indices, backend="pyav").data.cpu()
    if got.shape != want.shape:
        return Outcome("mismatch", None, f"{backend} gave frames {tuple(got.shape)}, PyAV {tuple(want.shape)}", 1)
    db = psnr(got, want)
    ok = db >= PSNR_MIN_DB
    why = "" if ok else f"PSNR {db:.1f} dB against PyAV, below {PSNR_MIN_DB:.0f} dB"
    return Outcome("ok" if ok else "mismatch", 10 ** (-db / 20) if math.isfinite(db) else 0.0, why, 1)


# ------------------------------------------------------------------------------------ collectives

FSDP_TOL = 1e-5  # one fp32 AdamW step: FSDP's reduce-scatter and DDP's all-reduce sum in other orders


def _collective_worker(rank: int, world: int, port: int, device_type: str, result) -> None:
    """One rank: an all-reduce, then one AdamW step of a small MLP under FSDP2 (fully_shard) and
    under DDP from the same weights and batches; result[rank] = (all-reduce error, max |FSDP - DDP|
    over the updated parameters)."""
    import torch.distributed as dist
    from torch import nn
    from torch.distributed.fsdp import fully_shard
    from torch.nn.parallel import DistributedDataParallel

    cuda = device_type == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    if cuda:
        torch.cuda.set_device(rank)
    dev = torch.device("cuda", rank) if cuda else torch.device("cpu")
    x = torch.full((1 << 20,), float(rank + 1), device=dev)
    dist.all_reduce(x)
    reduce_err = float((x - world * (world + 1) / 2).abs().max())

    torch.manual_seed(0)
    def mlp() -> nn.Module:
        return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 96), nn.GELU(), nn.Linear(96, 8)).to(dev)
    ref, sharded = mlp(), mlp()
    sharded.load_state_dict(ref.state_dict())
    ddp = DistributedDataParallel(ref, device_ids=[rank] if cuda else None)
    for layer in sharded:
        if isinstance(layer, nn.Linear):
            fully_shard(layer)
    fully_shard(sharded)
    g = torch.Generator().manual_seed(100 + rank)
    xb, yb = torch.randn(16, 64, generator=g).to(dev), torch.randn(16, 8, generator=g).to(dev)
    for model in (ddp, sharded):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        nn.functional.mse_loss(model(xb), yb).backward()
        opt.step()
    fsdp_err = max(float((p.full_tensor() - q).abs().max()) for p, q in zip(sharded.parameters(), ref.parameters()))
    result[rank] = (reduce_err, fsdp_err)
    dist.destroy_process_group()


def collectives(device_type: str, world: int) -> tuple[float, float]:
    """(all-reduce error, FSDP2-vs-DDP error), the worst over `world` ranks spawned here (NCCL on
    GPUs, gloo on CPUs)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        result = manager.dict()
        mp.spawn(_collective_worker, args=(world, port, device_type, result), nprocs=world, join=True)
        values = list(result.values())
    return max(v[0] for v in values), max(v[1] for v in values)


def _gpus_or_skip() -> int:
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n < 2:
        raise Skip(f"needs 2+ GPUs ({n} visible)")
    return n


def _nccl_check(device: torch.device, quick: bool) -> Outcome:
    n = _gpus_or_skip()
    err, _ = collectives("cuda", n)
    return Outcome("ok" if err == 0 else "mismatch", err, "" if err == 0 else f"all-reduce off by {err}", n)


def _fsdp_check(device: torch.device, quick: bool) -> Outcome:
    n = _gpus_or_skip()
    _, err = collectives("cuda", n)
    ok = err <= FSDP_TOL
    return Outcome("ok" if ok else "mismatch", err, "" if ok else f"FSDP2 step off DDP's by {err:.2g} (> {FSDP_TOL})", n)


CHECKS: dict[str, Check] = {c.name: c for c in (
    Check("depth_loss", "Triton depth loss", _kernel_check(depth_cases), "the eager reference depth loss"),
    Check("align_loss", "Triton alignment loss", _kernel_check(align_cases), "the eager reference alignment loss"),
    Check("pose_loss", "compiled pose extension", _pose_check, "the eager torch pose loss"),
    Check("dali_decode", "DALI video decoding", _decode_check, "PyAV decoding"),
    Check("nccl", "NCCL all-reduce", _nccl_check, "none: multi-GPU training needs NCCL"),
    Check("fsdp", "FSDP2 step vs DDP", _fsdp_check, "parallel.backend=ddp"),
)}
QUICK = ("depth_loss", "align_loss", "pose_loss", "dali_decode")  # --quick: what a training run uses
