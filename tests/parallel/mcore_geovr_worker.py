"""torchrun worker of test_megatron_geovr.py: one GeoVR training step (text + the four geometric
losses) on the Megatron backend at several TP x PP, against the HF GeoVRModel's.

argv: INPUT OUTPUT. INPUT (torch.save): {"batch", "targets", "tokens", "weights", "cases": {name:
{"state", "hf_config", "geo_cfg", "parts", "grads", "layouts": "tp,pp;..."}}} (per case the HF
reference: loss parts and the gradient of every trainable parameter). Each data-parallel replica gets the same micro-batch, counted as distinct data (the
step's token count and video share scaled by DP), so the reduced gradient must equal the
reference. Rank 0 writes OUTPUT (json): {case: {layout: {...}}}.
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import megatron_cpu_shim  # noqa: E402

megatron_cpu_shim.apply()

from geovr.parallel.megatron.geovr_stage import MegatronGeoVR, gather_geovr, load_geovr  # noqa: E402
from geovr.parallel.megatron.groups import destroy_model_parallel, init_model_parallel  # noqa: E402
from geovr.model.freeze import freeze_vision_tower  # noqa: E402
from geovr.parallel.megatron.qwen3vl import build_stage  # noqa: E402
from geovr.parallel.megatron.training import wrap_ddp  # noqa: E402
from geovr.train.megatron_step import forward_backward, prepare  # noqa: E402
from geovr.train.objective import PARTS  # noqa: E402


def run_layout(data: dict, case: dict, tp: int, pp: int) -> dict | None:
    dims = init_model_parallel(tp, pp, seed=1)
    module = MegatronGeoVR(build_stage(case["hf_config"]), case["geo_cfg"])
    load_geovr(module, case["state"])
    if module.stage.visual is not None:
        freeze_vision_tower(module.stage.visual)
    model = wrap_ddp(module)
    micro = [prepare(data["batch"], module, data["targets"], video_share=1.0 / dims.dp)]
    parts, finite = forward_backward(model, module, micro, data["weights"], step_tokens=data["tokens"] * dims.dp,
                                     dp_size=dims.dp)
    summed = torch.stack([parts[k] for k in PARTS])
    dist.all_reduce(summed)
    summed /= tp  # every TP rank computed the same parts
    grads = gather_geovr(module, grads=True)
    destroy_model_parallel()
    if grads is None:
        return None
    ref = case["grads"]
    report = {"finite": finite, "parts": dict(zip(PARTS, summed.tolist())),
              "missing": sorted(set(ref) - set(grads)), "extra": sorted(set(grads) - set(ref)),
              "ref_grad_max": max(v.abs().max().item() for v in ref.values())}
    report["grad_max_diff"] = {k: (grads[k] - ref[k]).abs().max().item() for k in ref if k in grads}
    return report


def main() -> None:
    inp, out = sys.argv[1], sys.argv[2]
    dist.init_process_group("gloo")
    data = torch.load(inp, weights_only=False)
    report: dict = {}
    for name, case in data["cases"].items():
        report[name] = {}
        for layout in case["layouts"].split(";"):
            tp, pp = (int(v) for v in layout.split(","))
            report[name][layout] = run_layout(data, case, tp, pp)
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(report, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
