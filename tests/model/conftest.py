"""The model tests import their helper module (model_helpers.py) by its unique name; the `batch`
fixture lives in tests/conftest.py."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
