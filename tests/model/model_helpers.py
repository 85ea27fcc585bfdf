"""Helpers of the model tests (a module of its own: test files import it by this unique name)."""
import dataclasses

from geovr.model.config import GeoVRConfig


def tiny_qwen3vl(tok, layers: int = 6):
    from geovr.model.tiny import tiny_qwen3vl as build

    return build(tok, layers=layers).eval()


def small_heads(cfg: GeoVRConfig = GeoVRConfig.paper()) -> GeoVRConfig:
    return dataclasses.replace(cfg, teacher_dim=32, camera_hidden=32, scale_hidden=16, dpt_channels=(8, 16, 16, 16),
                               dpt_features=8, projector_hidden=32)
