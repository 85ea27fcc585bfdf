"""geovr: GeoVR training for video multimodal LLMs (arXiv 2606.05833).

Rooms (see README, "Architecture"): `geovr.losses` (the four geometric losses and their eager
references), `geovr.kernels` (fused Triton ops behind them).
"""
import torch  # noqa: F401  (first: the native extension geovr._ext links against torch's libraries)

__version__ = "0.1.0"
