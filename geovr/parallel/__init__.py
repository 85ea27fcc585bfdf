"""Parallelism: data parallel set-up (`data_parallel.py`); Megatron tensor/pipeline parallelism follows."""
from .data_parallel import World, all_reduce_sum, init_world, wrap_data_parallel

__all__ = ["World", "all_reduce_sum", "init_world", "wrap_data_parallel"]
