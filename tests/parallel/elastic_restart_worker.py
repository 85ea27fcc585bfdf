"""A worker of `test_elastic_restart.py` under `torchrun --max-restarts`: joins the group through
geovr's `init_world`, all-reduces, and in the first attempt rank 1 writes a key into the group's
store and dies by SIGKILL. In the restarted attempt rank 1 joins 3 s late (rank 0 reads the store
before rank 1 has written its new address), and rank 0 says whether the killed attempt's key is
visible to the new group: with torch's own start it is (torchrun keeps its store across restarts),
and the join then reads the old address now and then ("Gloo connectFullMesh ... Connection
refused"; every time in one script here, not every time in another: a race)."""
import os
import signal
import time

import torch
import torch.distributed as dist

from geovr.parallel.data_parallel import init_world

rank, attempt = int(os.environ["RANK"]), int(os.environ["TORCHELASTIC_RESTART_COUNT"])
if attempt > 0 and rank == 1:
    time.sleep(3)
init_world("cpu")
t = torch.ones(1)
dist.all_reduce(t)
print(f"rank {rank} attempt {attempt}: sum {t.item():g}", flush=True)
store = dist.distributed_c10d._get_default_store()
if attempt == 0 and rank == 1:
    store.set("left_by_attempt_0", "x")
    time.sleep(1)
    os.kill(os.getpid(), signal.SIGKILL)
if attempt > 0 and rank == 0:
    print(f"the killed attempt's key is {'visible' if store.check(['left_by_attempt_0']) else 'not visible'}",
          flush=True)
time.sleep(2)  # both ranks alive until the other is done with the group
dist.destroy_process_group()
