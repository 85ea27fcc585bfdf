import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from clips import write_bad, write_good  # noqa: E402


@pytest.fixture(scope="session")
def good_clips(tmp_path_factory) -> dict[str, Path]:
    return write_good(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def bad_clips(tmp_path_factory, good_clips) -> dict[str, Path]:
    return write_bad(tmp_path_factory.mktemp("bad_clips"), good_clips)
