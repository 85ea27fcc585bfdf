"""The benchmark-script tests import their helper module (bench_helpers.py) by its unique name."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
