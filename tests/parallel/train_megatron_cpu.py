"""`python -m geovr.train` with the test-only CPU shim applied first, for torchrun launches of the
Megatron backend on CPU machines (tests only; on GPUs run `torchrun ... -m geovr.train` itself)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

if __name__ == "__main__":  # the guard matters: dist_checkpointing's writer may re-import __main__
    import megatron_cpu_shim

    megatron_cpu_shim.apply()
    from geovr.train.main import main

    sys.exit(main(sys.argv[1:]))
