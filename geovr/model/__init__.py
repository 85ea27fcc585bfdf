"""The GeoVR student: Qwen3-VL plus training-only geometric tokens, layer taps and heads.

`GeoVRModel(hf_qwen3vl, GeoVRConfig.paper())(batch)` -> `GeoOutputs` (text loss and logits; per
video: pose [T, 9], depth [T, H', W'], scale, projected features per teacher layer).
"""
from .config import GeoVRConfig
from .geovr_model import GeoOutputs, GeoVRModel
from .layer_map import VGGT_DEPTH, VGGT_LAYERS, layer_map

__all__ = ["GeoOutputs", "GeoVRConfig", "GeoVRModel", "VGGT_DEPTH", "VGGT_LAYERS", "layer_map"]
