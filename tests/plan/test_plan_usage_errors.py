"""`python -m geovr.plan` with impossible values: a usage error before any counting (one line
naming the option, exit 2, no traceback)."""
import time

import pytest


@pytest.mark.parametrize("args,message", [
    (["--frames", "0"], "argument --frames: must be >= 1, got 0"),
    (["--gpus", "0"], "argument --gpus: must be >= 1, got 0"),
    (["--micro-batch", "-1"], "argument --micro-batch: must be >= 1, got -1"),
    (["--gpu-memory", "0"], "argument --gpu-memory: must be > 0, got 0"),
    (["--headroom", "1.5"], "argument --headroom: must be a share in (0, 1], got 1.5"),
    (["--lora-rank", "-2"], "argument --lora-rank: must be >= 0, got -2"),
])
def test_planner(args, message, capsys):
    from geovr.plan.__main__ import main

    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "tiny", *args])
    assert exit_.value.code == 2 and time.perf_counter() - t0 < 5  # before any counting
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
