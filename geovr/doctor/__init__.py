"""`python -m geovr.doctor`: what this machine has, and whether each of geovr's fused and native
paths computes what its reference computes, here, on this device.

  report    versions, GPUs, the native extension's architectures, NCCL, /dev/shm, variables
  checks    the checks (one per path) and their cases
  compare   a fused path against its reference, with the tolerances the math allows
  worker    one check in its own process (a crash or a poisoned CUDA context stays there)
  runner    runs a worker with a timeout; the Result it reports
  verdict   results on disk, keyed by a fingerprint of the environment
  select    the trainer's use: verify the paths a run needs, route failed ones to their fallback
"""
