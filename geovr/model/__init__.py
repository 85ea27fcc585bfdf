"""The GeoVR student: Qwen3-VL plus training-only geometric tokens, layer taps and heads."""
from .layer_map import VGGT_DEPTH, VGGT_LAYERS, layer_map

__all__ = ["VGGT_DEPTH", "VGGT_LAYERS", "layer_map"]
