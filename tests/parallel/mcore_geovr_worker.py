"""torchrun worker of test_megatron_geovr.py: one GeoVR training step (text + the four geometric
losses) on the Megatron backend at several TP x PP, against the HF GeoVRModel's.

argv: INPUT OUTPUT. INPUT (torch.save): {"targets", "weights", "cases": {name: {"batch", "tokens",
"state", "hf_config", "geo_cfg", "parts", "grads", "layouts": "tp,pp[,sp][,full|selective];..."}}}
(sp: sequence parallelism; full/selective: activation recompute) (per case the HF
reference: loss parts and the gradient of every trainable parameter). Each data-parallel replica gets the same micro-batch, counted as distinct data (the
step's token count and video share scaled by DP), so the reduced gradient must equal the
reference. Rank 0 writes OUTPUT (json): {case: {layout: {...}}}.
"""
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from megatron.core.tensor_parallel import random as tp_random

sys.path.insert(0, str(Path(__file__).parent))
import megatron_cpu_shim  # noqa: E402

megatron_cpu_shim.apply()

RECOMPUTED = [0]  # megatron-core checkpoint regions entered (activation recompute)
_forward = tp_random.CheckpointFunction.forward


def _counting_forward(ctx, run_function, distribute_saved_activations, *args):
    RECOMPUTED[0] += 1
    return _forward(ctx, run_function, distribute_saved_activations, *args)


tp_random.CheckpointFunction.forward = staticmethod(_counting_forward)

from geovr.parallel.megatron.geovr_stage import MegatronGeoVR, gather_geovr, load_geovr  # noqa: E402
from geovr.parallel.megatron.groups import destroy_model_parallel, init_model_parallel  # noqa: E402
from geovr.model.freeze import freeze_vision_tower  # noqa: E402
from geovr.parallel.megatron.qwen3vl import build_stage  # noqa: E402
from geovr.parallel.megatron.training import wrap_ddp  # noqa: E402
from geovr.train.megatron_step import forward_backward, prepare  # noqa: E402
from geovr.train.objective import PARTS  # noqa: E402


def run_layout(data: dict, case: dict, layout: str) -> dict | None:
    tp, pp, *flags = layout.split(",")
    tp, pp = int(tp), int(pp)
    recompute = next((f for f in flags if f in ("full", "selective")), "none")
    dims = init_model_parallel(tp, pp, seed=1)
    stage = build_stage(case["hf_config"], sequence_parallel="sp" in flags, recompute=recompute)
    module = MegatronGeoVR(stage, case["geo_cfg"])
    load_geovr(module, case["state"])
    if module.stage.visual is not None:
        freeze_vision_tower(module.stage.visual)
    model = wrap_ddp(module)
    micro = [prepare(case["batch"], module, data["targets"], video_share=1.0 / dims.dp)]
    RECOMPUTED[0] = 0
    parts, finite = forward_backward(model, module, micro, data["weights"], step_tokens=case["tokens"] * dims.dp,
                                     dp_size=dims.dp)
    summed = torch.stack([parts[k] for k in PARTS])
    dist.all_reduce(summed)
    summed /= tp  # every TP rank computed the same parts
    grads = gather_geovr(module, grads=True)
    destroy_model_parallel()
    if grads is None:
        return None
    ref = case["grads"]
    report = {"finite": bool(finite), "parts": dict(zip(PARTS, summed.tolist())),
              "missing": sorted(set(ref) - set(grads)), "extra": sorted(set(grads) - set(ref)),
              "ref_grad_max": max(v.abs().max().item() for v in ref.values()),
              "sequence_parallel": module.stage.text.sequence_parallel, "recomputed": RECOMPUTED[0],
              "layers_here": len(module.stage.text.layer_numbers),
              "geo_len": [int(micro[0].geo.attention_mask.sum(1).max()), micro[0].geo.input_ids.shape[1]]}
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
            report[name][layout] = run_layout(data, case, layout)
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(report, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
