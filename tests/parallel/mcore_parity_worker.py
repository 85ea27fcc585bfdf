"""torchrun worker of test_megatron_parity.py: HF Qwen3-VL vs the Megatron model at several TP x PP.

argv: INPUT OUTPUT LAYOUTS. INPUT (torch.save): {"models": {name: (config, state_dict, logits,
token_loss)}, "batch": batch}. LAYOUTS: "tp,pp;tp,pp;...". For each model and layout the process
groups are rebuilt, the HF weights converted and loaded, a forward pass runs through megatron-core's
own pipeline schedule (p2p between stages), and the last stage compares the gathered logits and the
per-token loss with HF's. Every rank then joins the shards back (gather_hf) and compares them with
the HF state dict. Rank 0 writes OUTPUT (json): {name: {layout: {...}}}.
"""
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

sys.path.insert(0, str(Path(__file__).parent))
import megatron_cpu_shim  # noqa: E402

megatron_cpu_shim.apply()

from megatron.core import tensor_parallel  # noqa: E402
from megatron.core.pipeline_parallel import get_forward_backward_func  # noqa: E402

from geovr.parallel.megatron.groups import destroy_model_parallel, init_model_parallel  # noqa: E402
from geovr.parallel.megatron.qwen3vl import build_stage, gather_hf, load_hf, next_token_targets  # noqa: E402


def run_layout(config, state, ref_logits, ref_loss, batch, tp, pp) -> dict | None:
    init_model_parallel(tp, pp, seed=1)
    stage = build_stage(config)
    load_hf(stage, state)
    stage.eval()
    targets, mask = next_token_targets(batch["labels"])
    vocab = config.text_config.vocab_size
    result = {}

    def loss_func(output):
        # megatron-core's cross-entropy shifts its input in place: give it a copy
        token_loss = tensor_parallel.vocab_parallel_cross_entropy(output.clone(), targets.t().contiguous()).t()
        logits = tensor_parallel.gather_from_tensor_model_parallel_region(output)
        logits = logits.transpose(0, 1)[..., :vocab]
        valid = batch["attention_mask"].bool()
        result["logits_max_diff"] = (logits - ref_logits)[valid].abs().max().item()
        result["logits_max_abs"] = ref_logits[valid].abs().max().item()
        result["loss_max_diff"] = (token_loss - ref_loss)[mask].abs().max().item()
        result["tokens"] = int(mask.sum())
        total = (token_loss * mask).sum()
        return total, mask.sum().int(), {"loss": total.detach().clone()}

    def forward_step(data_iterator, model):
        data = next(data_iterator)
        return model(data), loss_func

    with torch.no_grad():
        get_forward_backward_func()(forward_step_func=forward_step, data_iterator=iter([batch]), model=[stage],
                                    num_microbatches=1, seq_length=batch["input_ids"].shape[1],
                                    micro_batch_size=batch["input_ids"].shape[0], forward_only=True)
    joined = gather_hf(stage)
    if joined is not None:
        keys_equal = set(joined) == {k for k in state if not (config.tie_word_embeddings and k == "lm_head.weight")} | (
            {"lm_head.weight"})
        result["roundtrip_keys"] = keys_equal
        result["roundtrip_max_diff"] = max((joined[k] - state[k]).abs().max().item() for k in joined)
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, result)
    destroy_model_parallel()
    if dist.get_rank() != 0:
        return None
    merged: dict = {}
    for r in gathered:
        merged.update(r)
    merged["ranks_reporting_logits"] = sum("logits_max_diff" in r for r in gathered)
    return merged


def main() -> None:
    inp, out, layouts = sys.argv[1], sys.argv[2], sys.argv[3]
    dist.init_process_group("gloo")
    data = torch.load(inp, weights_only=False)
    report: dict = {}
    for name, (config, state, logits, loss) in data["models"].items():
        report[name] = {}
        for layout in layouts.split(";"):
            tp, pp = (int(v) for v in layout.split(","))
            report[name][layout] = run_layout(config, state, logits, loss, data["batch"], tp, pp)
    if dist.get_rank() == 0:
        Path(out).write_text(json.dumps(report, indent=1))
    dist.destroy_process_group()


if __name__ == "__main__":
    os.environ.setdefault("CUDA_DEVICE_MAX_CONNECTIONS", "1")
    main()
