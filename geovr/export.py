"""Export a GeoVR checkpoint as a plain Qwen3-VL: every GeoVR part stripped.

    python -m geovr.export --ckpt CHECKPOINT --out DIR

The output is an ordinary HF folder (config.json, model*.safetensors, tokenizer and processor
files) that `Qwen3VLForConditionalGeneration.from_pretrained(DIR)` loads with no geovr installed;
its logits equal the training model's with the geometric tokens off.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def export(ckpt: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the plain model of GeoVR checkpoint `ckpt` to `out` (atomically); returns `out`."""
    from safetensors import safe_open

    from .model.checkpoint import load_geovr

    ckpt, out = Path(ckpt), Path(out)
    model = load_geovr(ckpt)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    model.base.save_pretrained(tmp, safe_serialization=True)
    for f in (ckpt / "base").iterdir():  # tokenizer, chat template, processor configs
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    for f in tmp.glob("*.safetensors"):  # nothing of GeoVR may leak into the plain model
        with safe_open(str(f), framework="pt") as st:
            leaked = [k for k in st.keys() if k.startswith(("camera_", "scale_", "depth_head", "projectors"))]
        if leaked:
            raise RuntimeError(f"export would leak GeoVR weights {leaked[:3]}")
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m geovr.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="GeoVR checkpoint folder (geovr_config.json, base/, ...)")
    p.add_argument("--out", required=True, help="output folder for the plain Qwen3-VL")
    a = p.parse_args(argv)
    if not os.path.isdir(a.ckpt):
        p.error(f"--ckpt {a.ckpt} is not a folder")
    out = export(a.ckpt, a.out)
    print(f"exported a plain Qwen3-VL to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
