"""GeoVR's training-only heads (stripped at export): camera, DPT depth, scale, alignment projector."""
from .camera import CameraHead
from .dpt import DPTDepthHead
from .projector import AlignProjector
from .scale import ScaleHead

__all__ = ["AlignProjector", "CameraHead", "DPTDepthHead", "ScaleHead"]
