"""Fused Triton kernels behind geovr.losses, one op per module (imported as `geovr.kernels`).

  depth_loss     L_reg (exact per-sample quantile by GPU radix select) + L_grad, forward and
                 backward: the launch plan, the autograd.Function, the launcher; its kernels in
                 _depth_kernels, their scratch layout (shared with the launcher) in _depth_layout
  align_loss     1 - cos over packed (layer, sample) token segments, forward and backward
  aot            ahead-of-time compile of every kernel variant for a GPU target (no GPU needed)
  _packing       packed varlen buffers and the launch maps
  _launch        the compile options every kernel is built with (FP fusion), JIT and AOT alike

Each op module has private `_..._kernel`s (or imports them), a launcher, one
torch.autograd.Function and `_aot_specs()`: the variants `aot` compiles (for the depth loss,
generated from its launch plan over every input a caller can reach). Inputs are fp32/bf16/fp16,
upcast to fp32 on load.
"""
