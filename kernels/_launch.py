"""Compile options every geovr kernel is built with, at launch (`depth_loss`, `align_loss`) and
ahead of time (`aot`), so the JIT and the AOT builds are the same code.

FP_FUSION: Triton's floating-point contraction (a*b+c as one FMA). Given explicitly: left to the
default, Triton 3.9 warns on every compile and 3.10 turns it off, which would change the kernels'
rounding from what the tests and `python -m geovr.doctor` checked (their tolerances were measured
with it on).
"""
FP_FUSION = True
