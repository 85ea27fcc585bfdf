"""Export a GeoVR checkpoint as a plain Qwen3-VL: every GeoVR part stripped.

    python -m geovr.export --ckpt geovr_runs/tiny/final --out DIR
    python -m geovr.export --ckpt geovr_runs/tiny/checkpoints/step_00000120 --out DIR
    python -m geovr.export --ckpt geovr_runs/lora/final --out DIR --keep-adapter

The output is an ordinary HF folder (config.json, model*.safetensors, tokenizer and processor
files) that `Qwen3VLForConditionalGeneration.from_pretrained(DIR)` loads with no geovr installed;
its logits equal the training model's with the geometric tokens off. A LoRA run's adapters are
merged into the weights; with --keep-adapter the output is instead a peft adapter folder
(adapter_config.json, adapter_model.safetensors: the adapters and the fully trained vision
mergers, plus the tokenizer and processor files) for `PeftModel.from_pretrained(<base>, DIR)`.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from .cli import check_output

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt")


def export(ckpt: str | os.PathLike, out: str | os.PathLike, unverified: bool = False,
           keep_adapter: bool = False) -> Path:
    """Write the plain model of `ckpt` to `out` (atomically); returns `out`. ckpt: a GeoVR model
    folder (a run's `final/`) or a training checkpoint (`checkpoints/step_N`, any number of ranks).
    keep_adapter: write a LoRA run's peft adapter folder instead (ValueError for a run without)."""
    from .model.checkpoint import load_geovr, save_plain_base
    from .model.lora import has_lora, write_adapter
    from .train.restore import is_training_checkpoint, load_trained_model

    ckpt, out = Path(ckpt), Path(out)
    tmp = out.with_name(out.name + ".part")
    shutil.rmtree(tmp, ignore_errors=True)
    no_adapter = ValueError(f"--keep-adapter: {ckpt} was not trained with LoRA (model.lora_rank=0): export the "
                            "plain model without --keep-adapter")
    if is_training_checkpoint(ckpt):
        from .model.checkpoint import mark_end_tokens

        model, tokenizer, cfg = load_trained_model(ckpt, unverified)  # checked against its manifest
        mark_end_tokens(model.base, tokenizer)
        if keep_adapter:
            if not has_lora(model.base):
                raise no_adapter
            write_adapter(model.base, tmp, base_model=cfg.model.folder)
        else:
            save_plain_base(model.base, tmp)  # a LoRA run's adapters merged in
        tokenizer.save_pretrained(tmp)
        files = Path(cfg.model.folder).iterdir() if cfg.model.folder else []  # the processor configs of the download
    elif (ckpt / "geovr_config.json").is_file():
        if keep_adapter:
            if not (ckpt / "adapter" / "adapter_config.json").is_file():
                raise no_adapter
            shutil.copytree(ckpt / "adapter", tmp)
        model = load_geovr(ckpt)
        if not keep_adapter:
            save_plain_base(model.base, tmp)
        files = (ckpt / "base").iterdir()  # tokenizer, chat template, processor configs
    else:
        raise FileNotFoundError(f"--ckpt {ckpt}: neither a GeoVR model folder (geovr_config.json, e.g. "
                                "<run>/final) nor a training checkpoint (trainer_state.json, e.g. "
                                "<run>/checkpoints/step_00000100)")
    for f in files:
        if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES) and not f.name.startswith(("config.", "model.")) \
                and not (tmp / f.name).exists():
            shutil.copy2(f, tmp / f.name)
    from safetensors import safe_open

    from .model.processor_files import write_processor_files

    write_processor_files(tmp, model.base.config.vision_config)  # a base without a download's files
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
    from .train.checkpoint import CheckpointDamaged

    p = argparse.ArgumentParser(prog="python -m geovr.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True, help="a run's final/ folder, or a training checkpoint "
                                                 "(<run>/checkpoints/step_N, DDP or FSDP, any number of ranks)")
    p.add_argument("--out", required=True, help="output folder for the plain Qwen3-VL")
    p.add_argument("--keep-adapter", action="store_true",
                   help="a LoRA run: write its peft adapter folder (adapters + trained vision mergers) instead of "
                        "merging the adapters into the weights")
    p.add_argument("--unverified", action="store_true",
                   help="export a training checkpoint whose files do not match its manifest")
    a = p.parse_args(argv)
    check_output(p, "--out", a.out)
    if not os.path.isdir(a.ckpt):
        p.error(f"--ckpt {a.ckpt} is not a folder")
    try:
        out = export(a.ckpt, a.out, a.unverified, a.keep_adapter)
    except (FileNotFoundError, ValueError, CheckpointDamaged) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"exported {'a peft adapter folder' if a.keep_adapter else 'a plain Qwen3-VL'} to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
