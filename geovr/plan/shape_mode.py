"""`ShapeMode`: run the real training step on fake tensors (no memory, no compute), so FLOPs and
memory can be counted at 2B/8B sizes on a CPU machine.

A plain `FakeTensorMode` stops at the first data-dependent op, and the Qwen3-VL step has many:
M-RoPE positions and the vision tower's per-frame windows read `grid_thw` and the token ids,
placeholder masks select the video tokens, losses take quantiles. Those decisions are made on small
integer tensors (ids, masks, grids, positions), so here integer and bool tensors of up to
`CONSTANT_NUMEL` elements stay *constants*: fake tensors that also carry their real values, computed
for real when their op's inputs are all constants (cheap: metadata, not activations). Float tensors
(weights, activations) are fake. What still depends on float values takes a stand-in, counted in
`fallbacks`: `.item()` of a float is 1.0 (a bool True), and `nonzero` of a float-derived mask keeps
every element (the upper bound).
"""
from __future__ import annotations

from collections import Counter

import torch
from torch._subclasses.fake_impls import _is_tensor_constructor
from torch._subclasses.fake_tensor import DataDependentOutputException, DynamicOutputShapeException, FakeTensorMode
from torch.utils._mode_utils import no_dispatch

aten = torch.ops.aten
CONSTANT_NUMEL = 1 << 22  # integer/bool tensors up to 4M elements keep their values
_INTEGRAL = (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)
_ARANGE = (aten.arange.default, aten.arange.start, aten.arange.start_step)


class ShapeMode(FakeTensorMode):
    """FakeTensorMode with integer/bool constants (see the module). Real tensors that enter it are
    converted on use; model weights should be created inside it (`with ShapeMode(): build()`).
    fallbacks: how often each stand-in was taken ("item", "nonzero")."""

    def __init__(self):
        super().__init__(allow_non_fake_inputs=True)
        self.fallbacks: Counter = Counter()

    def may_turn_const(self, t: torch.Tensor) -> bool:
        return (t.dtype in _INTEGRAL and t.numel() <= CONSTANT_NUMEL and not self.is_our_fake(t)
                and t.device.type != "meta" and not t.is_sparse)

    def validate_and_convert_non_fake_tensors(self, func, converter, flat_args, args_spec):
        flat_args = [converter.from_real_tensor(self, a, make_constant=True)
                     if isinstance(a, torch.Tensor) and not self.is_our_fake(a) and self.may_turn_const(a) else a
                     for a in flat_args]
        return super().validate_and_convert_non_fake_tensors(func, converter, flat_args, args_spec)

    def dispatch(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self._integral_constructor(func, kwargs):
            with no_dispatch():
                out = func(*args, **kwargs)
            if self.may_turn_const(out):
                return self.fake_tensor_converter.from_real_tensor(self, out, make_constant=True)
        try:
            return super().dispatch(func, types, args, kwargs)
        except DataDependentOutputException:
            if func is not aten._local_scalar_dense.default:
                raise
            self.fallbacks["item"] += 1
            x = args[0]
            return True if x.dtype == torch.bool else (1.0 if x.dtype.is_floating_point else 1)
        except DynamicOutputShapeException:
            if func is not aten.nonzero.default:
                raise
            self.fallbacks["nonzero"] += 1
            x = args[0]
            return torch.empty((x.numel(), x.dim()), dtype=torch.long, device=x.device)

    @staticmethod
    def _integral_constructor(func, kwargs: dict) -> bool:
        """torch.zeros/full/arange/... making an integer or bool tensor (a constant, computed for real)."""
        if not isinstance(func, torch._ops.OpOverload) or torch.Tag.nondeterministic_seeded in func.tags:
            return False
        if not _is_tensor_constructor(func):
            return False
        dtype = kwargs.get("dtype")
        return dtype in _INTEGRAL or (dtype is None and func in _ARANGE)
