"""Test-only shim: lets megatron-core 0.16 run on CPU with gloo (our CI machines have no GPU).

megatron-core assumes CUDA in a handful of places; each patch below replaces one such assumption
with its CPU equivalent and says why. Nothing here changes numerics: with dropout at 0 the RNG
tracker's state is never consumed, and every redirected tensor is a scratch or communication buffer.
Never imported by the `geovr` package: on a GPU megatron-core runs unpatched.

`apply()` is idempotent; call it before building any Megatron module.
"""
from __future__ import annotations

import functools
import os

import torch
from torch.overrides import TorchFunctionMode

_APPLIED = False

# torch functions that take a `device=` and that megatron-core calls with device="cuda" or
# torch.cuda.current_device() (buffers in the pipeline schedules, p2p shapes, loss reductions)
_FACTORIES = {torch.empty, torch.zeros, torch.ones, torch.full, torch.tensor, torch.arange, torch.randn,
              torch.empty_like, torch.zeros_like, torch.ones_like, torch.full_like, torch.as_tensor}


def _is_cuda(device) -> bool:
    if isinstance(device, torch.device):
        return device.type == "cuda"
    if isinstance(device, str):
        return device.startswith("cuda")
    return isinstance(device, int)  # an index means a CUDA ordinal in megatron-core's calls


class _CudaToCpu(TorchFunctionMode):
    """Tensor factories asked for a CUDA device get the CPU; `Tensor.cuda()` / `.to("cuda")` stay put;
    `Tensor.type()` names CPU tensors as CUDA ones (the distributed optimizer sorts parameters by
    "torch.cuda.FloatTensor" / "torch.cuda.BFloat16Tensor" and rejects any other name)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func in _FACTORIES and _is_cuda(kwargs.get("device")):
            kwargs["device"] = "cpu"
        elif func is torch.Tensor.cuda:
            return args[0]
        elif func is torch.Tensor.type and len(args) == 1 and not kwargs:
            name = func(*args)
            return name if name.startswith("torch.cuda.") else name.replace("torch.", "torch.cuda.", 1)
        elif func is torch.Tensor.to:
            if args[1:] and _is_cuda(args[1]):
                args = (args[0], "cpu", *args[2:])
            if _is_cuda(kwargs.get("device")):
                kwargs["device"] = "cpu"
        return func(*args, **kwargs)


def _clip_grad_by_total_norm_cpu(parameters, max_norm, total_norm, use_decoupled_grad=False):
    """megatron-core's clip_grad_by_total_norm_fp32 asserts CUDA grads; the same scaling on the CPU."""
    if isinstance(parameters, torch.Tensor):
        parameters = [parameters]
    attr = "decoupled_grad" if use_decoupled_grad else "grad"
    grads = [getattr(p, attr) for p in parameters if getattr(p, attr, None) is not None]
    coeff = max_norm / (total_norm + 1.0e-6)
    if coeff < 1.0:
        for g in grads:
            g.detach().mul_(coeff)


@functools.lru_cache(maxsize=32)
def _causal_mask_cpu(sq: int) -> torch.Tensor:
    """megatron-core's default causal mask ([sq, sq], True above the diagonal) on the CPU."""
    return torch.triu(torch.ones(sq, sq), diagonal=1).bool()


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from megatron.core.optimizer import optimizer as mc_optimizer
    from megatron.core.tensor_parallel import random as tp_random

    # scratch buffers (global memory buffer, schedules) are placed on torch.cuda.current_device()
    torch.cuda.current_device = lambda: "cpu"
    # the tensor-parallel RNG tracker saves/restores the CUDA generator around dropout: use the CPU one
    torch.cuda.get_rng_state = lambda device="cuda": torch.get_rng_state()
    torch.cuda.manual_seed = lambda seed: None
    tp_random._get_cuda_rng_state = lambda *a, **k: torch.get_rng_state()
    tp_random._set_cuda_rng_state = lambda state, *a, **k: torch.set_rng_state(state)
    # p2p communication synchronises the CUDA stream after sends and receives
    torch.cuda.synchronize = lambda *a, **k: None
    # gradient clipping asserts `param.grad.type() == 'torch.cuda.FloatTensor'`
    mc_optimizer.clip_grad_by_total_norm_fp32 = _clip_grad_by_total_norm_cpu
    # hard-coded device="cuda" tensors (pipeline schedules, loss reductions, p2p shape exchange)
    _CudaToCpu().__enter__()
    # the attention's causal mask is built with device="cuda"; the mode above catches that in forward,
    # but activation recompute re-runs the layer inside torch.autograd.backward, which the mode itself
    # dispatches, and a mode is switched off while it handles a call
    from megatron.core.fusions import fused_softmax
    from megatron.core.transformer import utils as transformer_utils

    transformer_utils.get_default_causal_mask = fused_softmax.get_default_causal_mask = _causal_mask_cpu
    # tells geovr's Megatron trainer that a CPU run is deliberate (geovr/train/megatron_loop.py)
    os.environ["GEOVR_MEGATRON_CPU_SHIM"] = "1"
    _APPLIED = True
