"""Fused Triton kernels behind geovr.losses, one op per module (imported as `geovr.kernels`).

  depth_loss  L_reg (exact per-sample quantile by GPU radix select) + L_grad, forward and backward
  align_loss  1 - cos over packed (layer, sample) token segments, forward and backward
  aot         ahead-of-time compile of every kernel for a GPU target (no GPU needed)

Each module: private `_..._kernel`s, a launcher, one torch.autograd.Function, and `AOT_SPECS`
(the signatures `aot` compiles). Inputs are fp32/bf16/fp16, upcast to fp32 on load.
"""
