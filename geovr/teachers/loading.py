"""Loading a teacher's weights from a local `from_pretrained` folder, strictly.

The `PyTorchModelHubMixin.from_pretrained` of VGGT and Depth-Anything-3 loads non-strictly by
default: a folder whose keys were renamed loads without a word and leaves random weights. Here a
key mismatch is an error naming the keys.
"""
from __future__ import annotations

import os
from pathlib import Path

from torch import nn


def from_pretrained_strict(cls: type, folder: str | os.PathLike, what: str) -> nn.Module:
    """cls.from_pretrained(folder) with strict key matching and no hub access. Raises
    FileNotFoundError when the folder lacks model.safetensors, ValueError naming the missing and
    unexpected keys."""
    folder = Path(folder)
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{what} weights: {folder} has no model.safetensors (a from_pretrained folder "
                                "holds config.json + model.safetensors)")
    try:
        return cls.from_pretrained(str(folder), strict=True, local_files_only=True)
    except RuntimeError as err:
        if "key(s)" not in str(err):
            raise
        raise ValueError(f"{what} weights {folder} do not match {cls.__name__}'s parameters; "
                         f"is it the checkpoint of this model, unmodified? {err}") from None
