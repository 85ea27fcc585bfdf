"""A real batch built from synthetic videos through the data pipeline (the tokenizer and the
dataset are the session fixtures of tests/conftest.py)."""
import sys
from pathlib import Path

import pytest

from geovr.data.dataset import VideoQADataset
from geovr.data.datasets import read_vsi590k
from geovr.data.qwen_inputs import QwenTransform, collate

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def batch(synthetic_root, tok):
    """Two video samples (8 frames each) from the two scenes of `synthetic_root`."""
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    last = max(i for i, r in enumerate(recs) if r.extra["scene"] != recs[0].extra["scene"])
    return collate([ds[0], ds[last]], tok.pad_token_id), [recs[0], recs[last]]
