"""SHA-256 of a file, read in chunks: the one digest of the teacher cache's shards and of the
checkpoints' manifests (geovr.teachers.cache, geovr.train.manifest)."""
from __future__ import annotations

import hashlib
import os

CHUNK = 1 << 22  # bytes per read


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()
