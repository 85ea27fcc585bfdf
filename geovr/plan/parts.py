"""The step's parts (PARTS) by module path: FLOPs summed per part from `FlopCounterMode`, and
`PartStack`, which names the part running now (for the memory labels), and `AttentionFormulas`,
which count torch's CPU flash attention as the GPU kernels run it (causal calls: the kept share)."""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten
PARTS = ("vision", "llm", "lm_head", "teacher", "heads_losses")


def causal_fraction(q_len: int, k_len: int) -> float:
    """The share of a [q_len, k_len] score matrix that SDPA's is_causal keeps (top-left aligned:
    query i sees keys 0..i): (S + 1) / (2 S) for q_len = k_len = S."""
    kept = q_len * (q_len + 1) // 2 if q_len <= k_len else k_len * (k_len + 1) // 2 + (q_len - k_len) * k_len
    return kept / (q_len * k_len)


class AttentionFormulas:
    """FLOP formulas for torch's CPU flash attention (what SDPA picks on fake CPU tensors), counted
    as the GPU kernels run it: a causal call counts the share of the score matrix a causal kernel
    computes (`causal_fraction`), and `skipped` sums the FLOPs a full-matrix count would add (the
    convention of `torch.utils.flop_counter`, which ignores is_causal). One instance per counter.
    packed: (the packed sequence's length L, the share of its [L, L] score matrix the segment rule
    allows, `geovr.model.attention.allowed_pairs`): a masked call of that length counts that share,
    as a block-sparse kernel (flex_attention) would run it at best."""

    def __init__(self, packed: tuple[int, float] | None = None):
        self.skipped = 0.0
        self.packed = packed

    def _count(self, full: int, q_len: int, k_len: int, causal: bool, masked: bool = False) -> int:
        if masked and self.packed is not None and q_len == k_len == self.packed[0]:
            share = self.packed[1]
        elif causal:
            share = causal_fraction(q_len, k_len)
        else:
            return full
        kept = int(round(full * share))
        self.skipped += full - kept
        return kept

    def forward(self, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        causal = bool(kwargs.get("is_causal", args[1] if len(args) > 1 else False))
        return self._count(sdpa_flop_count(query_shape, key_shape, value_shape), query_shape[-2], key_shape[-2], causal,
                           kwargs.get("attn_mask") is not None)

    def backward(self, grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
        causal = bool(kwargs.get("is_causal", args[3] if len(args) > 3 else False))
        full = sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)
        masked = kwargs.get("attn_mask", args[4] if len(args) > 4 else None) is not None
        return self._count(full, query_shape[-2], key_shape[-2], causal, masked)

    def mapping(self) -> dict:
        """The `custom_mapping` for `FlopCounterMode`."""
        return {aten._scaled_dot_product_flash_attention_for_cpu: self.forward,
                aten._scaled_dot_product_flash_attention_for_cpu_backward: self.backward}


PREFIXES = {"vision": "Step.student.base.model.visual", "llm": "Step.student.base.model.language_model",
             "lm_head": "Step.student.base.lm_head", "teacher": "Step.teacher"}


def flops_by_part(counter: FlopCounterMode) -> dict[str, float]:
    """{part: FLOPs}: each part sums its outermost modules that ran (a module's count includes its
    children's); "heads_losses" is everything else (the GeoVR heads, the losses, the embedding)."""
    counts = module_flops(counter)
    out = dict.fromkeys(PARTS, 0.0)
    for part, prefix in PREFIXES.items():
        out[part] = under(counts, prefix)
    out["heads_losses"] = counts.get("Global", 0.0) - sum(out.values())
    return out


def module_flops(counter: FlopCounterMode) -> dict[str, float]:
    """{module path: FLOPs} (a module's count includes its children's; "Global": everything)."""
    return {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}


def under(counts: dict[str, float], prefix: str) -> float:
    """The FLOPs of module `prefix`: the sum over the outermost modules at or under it that ran
    (it may not have run itself, e.g. a network whose submodules are called one by one)."""
    names = sorted((n for n in counts if n == prefix or n.startswith(prefix + ".")), key=len)
    outer: list[str] = []
    for n in names:
        if not any(n.startswith(o + ".") for o in outer):
            outer.append(n)
    return sum(counts[n] for n in outer)


class PartStack:
    """While active, `current()` names the part (PARTS) whose module forward is running, from
    global module hooks; outside every module forward it is `outside`: "inputs" before the step,
    then what the step sets ("heads_losses" for the functional losses, "backward" for the backward
    pass and the optimizer)."""

    def __init__(self, step: nn.Module):
        self._part: dict[int, str] = {}
        for name, module in step.named_modules(prefix="Step"):
            part = next((p for p, prefix in PREFIXES.items() if name == prefix or name.startswith(prefix + ".")),
                        None)
            if part is None and name.startswith("Step.student.") and not name.startswith("Step.student.base"):
                part = "heads_losses"
            if part is not None:
                self._part[id(module)] = part
        self._stack: list[str] = []
        self.outside = "inputs"
        self._handles: list = []

    def current(self) -> str:
        return self._stack[-1] if self._stack else self.outside

    def _pre(self, module, args):
        part = self._part.get(id(module))
        self._stack.append(part if part is not None else (self._stack[-1] if self._stack else "heads_losses"))

    def _post(self, module, args, out):
        if self._stack:
            self._stack.pop()

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._stack.clear()
