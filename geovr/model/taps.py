"""Layer taps: keep only the LLM hidden states the heads need (the release keeps all of them).

Hidden-state index k (0 = embeddings, L = last layer) is taken after DeepStack injection and before
the final norm, i.e. the input of decoder layer k (k < L) or of the final norm (k = L), with
forward pre-hooks; the post-norm final state (what lm_head reads) is tapped as "final".
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def tap_layers(layers: nn.ModuleList, norm: nn.Module, indices: list[int], final: bool = True):
    """Yields a dict filled during the forward pass: {k: [B, L', d]} for each k in `indices` and
    "final": the post-norm last state. Hooks are removed on exit."""
    n = len(layers)
    bad = [k for k in indices if not 0 <= k <= n]
    if bad:
        raise ValueError(f"hidden-state indices {bad} are outside 0..{n}")
    store: dict = {}
    handles = []

    def pre(k):
        def hook(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            store[k] = hidden
        return hook

    try:
        for k in sorted(set(indices)):
            target = layers[k] if k < n else norm
            handles.append(target.register_forward_pre_hook(pre(k), with_kwargs=True))
        if final:
            handles.append(norm.register_forward_hook(lambda m, a, out: store.__setitem__("final", out)))
        yield store
    finally:
        for h in handles:
            h.remove()


def count_hidden(store: dict) -> int:
    """How many [B, L', d] states a tap store holds (to check only the needed ones are kept)."""
    return sum(1 for v in store.values() if isinstance(v, torch.Tensor))
