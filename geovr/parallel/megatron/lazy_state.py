"""An HF checkpoint folder as a lazy state dict, so that each Megatron rank reads only its shard.

`SafetensorsState` maps every tensor name of `model.safetensors` (or of the shards listed in
`model.safetensors.index.json`) to a read of that one tensor, memory-mapped by safetensors, on
access. `hf_to_mcore` then touches only the keys of its pipeline stage and slices its TP part, so
a rank holds its stage plus one full tensor at a time instead of the whole model (a 32B student is
64 GB in bf16 before any split).
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from torch import Tensor

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsState(Mapping):
    """folder: a HF model folder with safetensors weights. `reads` counts the tensors read."""

    def __init__(self, folder: str | Path):
        from safetensors import safe_open

        self.folder = Path(folder)
        self._open = safe_open
        if (self.folder / INDEX).is_file():
            weight_map = json.loads((self.folder / INDEX).read_text())["weight_map"]
            self._where = {key: self.folder / name for key, name in weight_map.items()}
        elif (self.folder / SINGLE).is_file():
            with safe_open(self.folder / SINGLE, framework="pt") as f:
                self._where = {key: self.folder / SINGLE for key in f.keys()}
        else:
            raise FileNotFoundError(f"model path {self.folder}: neither {SINGLE} nor {INDEX} is there; the Megatron "
                                    "backend reads safetensors weights (re-save the model with save_pretrained)")
        self._handles: dict[Path, object] = {}
        self.reads = 0

    def __getitem__(self, key: str) -> Tensor:
        path = self._where[key]
        handle = self._handles.get(path)
        if handle is None:
            handle = self._handles[path] = self._open(path, framework="pt")
        self.reads += 1
        return handle.get_tensor(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key) -> bool:
        return key in self._where

