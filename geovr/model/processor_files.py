"""The processor files of a Qwen3-VL folder that has none (the tiny random model's, a base built
from a config): `preprocessor_config.json` (images) and `video_preprocessor_config.json`
(videos), so `AutoProcessor.from_pretrained(folder)` loads it and prepares a video question as
geovr's data pipeline does (the same patch grid and pixel normalisation). Written as JSON: the
processor classes need torchvision, which the CPU environment lacks; transformers fills every
other setting with the classes' defaults when it loads them."""
from __future__ import annotations

import json
from pathlib import Path

from ..data.qwen_pixels import MEAN, STD
from ..data.sampling import QwenImageVision

PROCESSOR_CLASS = "Qwen3VLProcessor"
IMAGE_FILE, VIDEO_FILE = "preprocessor_config.json", "video_preprocessor_config.json"


def processor_settings(vision_config) -> dict[str, dict]:
    """{file name: settings} for a Qwen3-VL vision config (its patch, temporal patch and merge sizes)."""
    grid = {"patch_size": vision_config.patch_size, "temporal_patch_size": vision_config.temporal_patch_size,
            "merge_size": vision_config.spatial_merge_size, "image_mean": list(MEAN), "image_std": list(STD),
            "processor_class": PROCESSOR_CLASS}
    image = QwenImageVision()
    return {IMAGE_FILE: {"image_processor_type": "Qwen2VLImageProcessor", **grid,
                         "size": {"shortest_edge": image.min_pixels, "longest_edge": image.max_pixels}},
            VIDEO_FILE: {"video_processor_type": "Qwen3VLVideoProcessor", **grid}}


def write_processor_files(folder: str | Path, vision_config) -> list[Path]:
    """Write the processor files `folder` lacks; returns those written."""
    folder = Path(folder)
    written = []
    for name, settings in processor_settings(vision_config).items():
        path = folder / name
        if not path.exists():
            path.write_text(json.dumps(settings, indent=2) + "\n")
            written.append(path)
    return written
