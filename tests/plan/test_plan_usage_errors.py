"""`python -m geovr.plan` with impossible values: a usage error before any counting (one line
naming the option, exit 2, no traceback)."""
import time

import pytest


@pytest.mark.parametrize("args,message", [
    (["--frames", "0"], "--frames must be >= 1"),
    (["--gpus", "0"], "--gpus must be >= 1"),
    (["--micro-batch", "-1"], "--micro-batch must be >= 1"),
    (["--gpu-memory", "0"], "--gpu-memory must be > 0"),
    (["--headroom", "1.5"], "--headroom and --mfu are shares"),
    (["--lora-rank", "-2"], "--lora-rank and --checkpoint-layers must be >= 0"),
])
def test_planner(args, message, capsys):
    from geovr.plan.__main__ import main

    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as exit_:
        main(["--model", "tiny", *args])
    assert exit_.value.code == 2 and time.perf_counter() - t0 < 5  # before any counting
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
