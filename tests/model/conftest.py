"""A tiny random Qwen3-VL (6 text layers, DeepStack on the first) and real batches built from
synthetic videos through the data pipeline."""
import sys
from pathlib import Path

import pytest

from geovr.data.dataset import VideoQADataset
from geovr.data.datasets import read_vsi590k
from geovr.data.qwen_inputs import QwenTransform, collate
from geovr.data.synthetic import WorldConfig, generate
from geovr.data.tiny_tokenizer import build_tiny_tokenizer

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def tok():
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_syn")
    generate(out, scenes=2, seed=4, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=2.0), progress=False)
    return out


@pytest.fixture(scope="session")
def batch(synthetic_root, tok):
    """Two video samples (4 frames each) from two scenes."""
    recs = read_vsi590k(str(synthetic_root / "train.jsonl")).records
    ds = VideoQADataset(recs, backend="pyav", transform=QwenTransform(tok))
    last = max(i for i, r in enumerate(recs) if r.extra["scene"] != recs[0].extra["scene"])
    return collate([ds[0], ds[last]], tok.pad_token_id), [recs[0], recs[last]]
