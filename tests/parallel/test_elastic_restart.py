"""A torchrun group restarted after a killed worker connects again. torch's torchrun keeps its
TCPStore (lent to the workers) across restarts, so a restarted rank can read the killed group's
addresses; `geovr.parallel.data_parallel.attempt_store` puts each attempt's keys apart: the new
group sees none of the killed one's (with torch's own start it does, and its join then fails now
and then: see elastic_restart_worker.py)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("elastic_restart_worker.py")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
ENV.pop("TORCH_DISABLE_SHARE_RDZV_TCP_STORE", None)


def test_the_restarted_group_connects():
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--max-restarts=1",
           str(WORKER)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the restarted group hung:\n{err[-3000:]}") from None
    assert proc.returncode == 0, err[-3000:]
    for rank in (0, 1):
        assert f"rank {rank} attempt 1: sum 2" in out
    assert "the killed attempt's key is not visible" in out
