"""Helpers of the benchmark-script tests (a module of its own: test files import it by this unique name)."""
import importlib.util
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module, registered in sys.modules (dataclasses look their module up there)."""
    module_name = f"{name}_bench"
    spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
    bench = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = bench
    spec.loader.exec_module(bench)
    return bench
