"""The cost of one training step, counted by running the real step on fake tensors (`ShapeMode`).

`measure_step(spec)` builds the student (Qwen3-VL at a published size with the GeoVR wiring), the
teacher (a VGGT-1B-sized aggregator when online) and AdamW inside `ShapeMode`, makes a synthetic
micro-batch through the real data path, and runs teacher -> student forward -> loss -> backward ->
optimizer step. `torch.utils.flop_counter.FlopCounterMode` counts the FLOPs of every op, attributed
to the modules that ran them (forward and backward apart); `LiveBytes` follows every tensor's
storage and reports the peak split by kind (parameters, gradients, optimizer state, activations).

Two recipes, one code path:
- "geovr": layer taps only, the LM head on the supervised positions, geovr.losses, teacher
  online or from the target cache;
- "release": every hidden state kept, logits at every position, the per-sample eager losses
  (`geovr.losses.release_loop`), the teacher online every step.
Attention FLOPs are counted as full (non-causal) matrices, as `FlopCounterMode` does.
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from .batch import BatchShape, synthetic_batch
from .memory import LiveBytes
from .shape_mode import ShapeMode

aten = torch.ops.aten
MODELS = ("tiny", "2b", "4b", "8b")
RECIPES = ("geovr", "release")
TEACHER_MODES = ("online", "cache")
PARTS = ("vision", "llm", "lm_head", "teacher", "heads_losses")
MEMORY = ("parameters", "gradients", "optimizer", "activations", "teacher")


def _cpu_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_attention_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


# torch's CPU flash attention (what sdpa picks on fake CPU tensors), counted as the GPU kernels are
_CPU_ATTENTION = {aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
                  aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward}


@dataclass(frozen=True)
class StepSpec:
    """model: tiny | 2b | 4b | 8b; recipe: geovr | release; teacher: online | cache (the release is
    always online); layers: the LLM's decoder layers (None: the published count); autocast: bf16
    as on a GPU; gradient_checkpointing: as the paper preset."""

    model: str = "2b"
    frames: int = 32
    micro_batch: int = 1
    recipe: str = "geovr"
    teacher: str = "online"
    tokens_per_frame: int = 300
    teacher_longest: int = 504
    layers: int | None = None
    autocast: bool = True
    gradient_checkpointing: bool = True

    def __post_init__(self):
        for name, value, options in (("model", self.model, MODELS), ("recipe", self.recipe, RECIPES),
                                     ("teacher", self.teacher, TEACHER_MODES)):
            if value not in options:
                raise ValueError(f"{name} {value!r}: choose from {list(options)}")
        if self.recipe == "release" and self.teacher != "online":
            raise ValueError("the release recipe runs its teachers online every step: teacher='online'")
        if self.frames < 1 or self.micro_batch < 1:
            raise ValueError(f"frames and micro_batch must be >= 1, got {self.frames}, {self.micro_batch}")


@dataclass
class StepCost:
    """One micro-batch's step. flops_forward / flops_backward: {part: FLOPs} (PARTS); memory: the
    peak's split {kind: bytes} (MEMORY), peak: its total; activations: the peak's activations by
    the part that made them (PARTS, plus "inputs" and "backward" for what no module's forward made); logits_bytes: what the LM head's outputs
    held; teacher_peak: the most bytes the teacher phase added (running it, or reading the cache);
    params: {group: count}; sequence: tokens per sample (after the inserted GeoVR tokens);
    supervised: LM-head rows; fallbacks: ShapeMode's stand-ins taken; largest: the largest storages
    at the peak (bytes, op, shape, dtype); llm_dims: the LLM's (heads, KV heads, layers)."""

    spec: StepSpec
    flops_forward: dict[str, float]
    flops_backward: dict[str, float]
    memory: dict[str, int]
    activations: dict[str, int]
    peak: int
    logits_bytes: int
    teacher_peak: int
    params: dict[str, int]
    sequence: int
    supervised: int
    fallbacks: dict[str, int] = field(default_factory=dict)
    largest: list = field(default_factory=list)
    llm_dims: tuple[int, int, int] = (1, 1, 1)  # attention heads, KV heads, layers

    def per_sample_flops(self) -> dict[str, float]:
        """{part: forward + backward FLOPs} per sample."""
        b = self.spec.micro_batch
        return {k: (self.flops_forward.get(k, 0.0) + self.flops_backward.get(k, 0.0)) / b for k in PARTS}

    @property
    def total_flops_per_sample(self) -> float:
        return sum(self.per_sample_flops().values())


class _Real(nullcontext):
    """Stands in for ShapeMode in a real run (re-enterable, no stand-ins taken)."""

    fallbacks: dict = {}


class _Step(nn.Module):
    """Names the parts for the FLOP counter: student (GeoVRModel) and teacher (its network).
    Calling it does nothing but make the counter's module tracker name every submodule from here."""

    def __init__(self, student: nn.Module, teacher: nn.Module | None):
        super().__init__()
        self.student, self.teacher = student, teacher

    def forward(self) -> None:
        return None


_PREFIXES = {"vision": "_Step.student.base.model.visual", "llm": "_Step.student.base.model.language_model",
             "lm_head": "_Step.student.base.lm_head", "teacher": "_Step.teacher"}


def _by_part(counter: FlopCounterMode) -> dict[str, float]:
    """{part: FLOPs}: each part sums its outermost modules that ran (a module's count includes its
    children's); "heads_losses" is everything else (the GeoVR heads, the losses, the embedding)."""
    counts = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    out = dict.fromkeys(PARTS, 0.0)
    for part, prefix in _PREFIXES.items():
        names = sorted((n for n in counts if n == prefix or n.startswith(prefix + ".")), key=len)
        outer: list[str] = []
        for n in names:
            if not any(n.startswith(o + ".") for o in outer):
                outer.append(n)
        out[part] = sum(counts[n] for n in outer)
    out["heads_losses"] = counts.get("Global", 0.0) - sum(out.values())
    return out


class _PartStack:
    """While active, `current()` names the part (PARTS) whose module forward is running, from
    global module hooks; outside every module forward it is `outside`: "inputs" before the step,
    then what the step sets ("heads_losses" for the functional losses, "backward" for the backward
    pass and the optimizer)."""

    def __init__(self, step: nn.Module):
        self._part: dict[int, str] = {}
        for name, module in step.named_modules(prefix="_Step"):
            part = next((p for p, prefix in _PREFIXES.items() if name == prefix or name.startswith(prefix + ".")),
                        None)
            if part is None and name.startswith("_Step.student.") and not name.startswith("_Step.student.base"):
                part = "heads_losses"
            if part is not None:
                self._part[id(module)] = part
        self._stack: list[str] = []
        self.outside = "inputs"
        self._handles: list = []

    def current(self) -> str:
        return self._stack[-1] if self._stack else self.outside

    def _pre(self, module, args):
        part = self._part.get(id(module))
        self._stack.append(part if part is not None else (self._stack[-1] if self._stack else "heads_losses"))

    def _post(self, module, args, out):
        if self._stack:
            self._stack.pop()

    def __enter__(self):
        from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook

        self._handles = [register_module_forward_pre_hook(self._pre), register_module_forward_hook(self._post)]
        return self

    def __exit__(self, *exc):
        for h in self._handles:
            h.remove()
        self._stack.clear()


def _tokenizer():
    from ..data.tiny_tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


def _base_model(spec: StepSpec, tokenizer) -> nn.Module:
    """Qwen3-VL at the spec's size, with the tokenizer's special-token ids (weights are fake)."""
    if spec.model == "tiny":
        from ..model.tiny import tiny_qwen3vl

        return tiny_qwen3vl(tokenizer, layers=spec.layers or 6)
    from transformers import Qwen3VLForConditionalGeneration

    from ..model.qwen_sizes import qwen3vl_config

    cfg = qwen3vl_config(spec.model.upper())
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in (
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"))}
    for k, v in ids.items():
        setattr(cfg, k, v)
    if spec.layers is not None:
        cfg.text_config.num_hidden_layers = spec.layers
    return Qwen3VLForConditionalGeneration(cfg)


def _student(spec: StepSpec, tokenizer) -> nn.Module:
    from ..model.geovr_model import GeoVRModel
    from ..train.build import geovr_config
    from ..train.config import paper, tiny
    from ..train.optim import freeze_vision

    cfg = tiny() if spec.model == "tiny" else paper()
    cfg.model.text_logits = "all" if spec.recipe == "release" else "supervised"
    if spec.model == "tiny":
        cfg.teacher.feature_dim = 64
    base = _base_model(spec, tokenizer)
    if spec.gradient_checkpointing:
        base.activation_checkpointing_enable({"use_reentrant": False})
    geo_cfg = geovr_config(cfg)
    if spec.layers is not None and spec.layers < 24:  # a shallow LLM for the validation runs
        geo_cfg = dataclasses.replace(geo_cfg, teacher_layers=geo_cfg.teacher_layers[:spec.layers])
    model = GeoVRModel(base, geo_cfg)
    freeze_vision(model)
    return model.train()


def _teacher_network(spec: StepSpec) -> nn.Module:
    from ..teachers.tiny_vggt import TinyVGGT, vggt_1b_shape

    return TinyVGGT(dim=64, depth=24) if spec.model == "tiny" else vggt_1b_shape()


def _cached_targets(batch: dict, feature_dim: int, layers: tuple[int, ...], patch: int = 14) -> list:
    """What the target cache (its default, pooled features) hands the loss per sample: depth and
    confidence upcast to fp32, features 2x2 pooled at the patch grid, in fp32 (the loader's tensors)."""
    from ..teachers.base import TeacherTargets

    out = []
    for frames in batch["teacher_frames"]:
        t, _, h, w = frames.shape
        grid = (h // (2 * patch), w // (2 * patch))
        out.append(TeacherTargets(pose_enc=torch.zeros(t, 9), depth=torch.ones(t, h, w),
                                  depth_conf=torch.ones(t, h, w),
                                  features={l: torch.zeros(t, *grid, feature_dim) for l in layers},
                                  scale=torch.ones(()), features_pooled=True))
    return out


def _release_loss(out, targets) -> torch.Tensor:
    """The release's per-sample eager losses, weighted 1 / 2.5 / 1 / 1 / 1."""
    from ..losses.release_loop import align_loss_loop, depth_loss_loop, pose_loss_loop, scale_loss_loop
    from ..train.objective import pooled_features

    total = out.loss_text
    total = total + 2.5 * pose_loss_loop(out.pose, [t.pose_enc for t in targets])[0]
    total = total + depth_loss_loop([d.float() for d in out.depth], [t.depth for t in targets])[0]
    layers = sorted(out.features)
    student = [[f.reshape(-1, f.shape[-1]) for f in out.features[g]] for g in layers]
    teacher = [[pooled_features(t, g).reshape(-1, student[k][0].shape[-1]) for t in targets]
               for k, g in enumerate(layers)]
    total = total + align_loss_loop(student, teacher)
    return total + scale_loss_loop(out.scale.float(), torch.stack([t.scale.reshape(()) for t in targets]))


@contextmanager
def _placeholders_from_ids(student: nn.Module, ids: torch.Tensor):
    """HF finds the video tokens by comparing each position's embedding with the video token's
    (values, which fake tensors lack); here the GeoVR sequence's ids say where they are."""
    model = student.base.model
    original = type(model).get_placeholder_mask

    def by_ids(input_ids, inputs_embeds, **kwargs):
        return original(model, ids if input_ids is None else input_ids, inputs_embeds, **kwargs)

    model.get_placeholder_mask = by_ids
    try:
        yield
    finally:
        del model.get_placeholder_mask


@contextmanager
def _masks_as_in_a_real_run():
    """HF's mask builder treats a fake tensor as a trace and then always builds the [B, 1, L, L]
    causal mask; a real run skips it when nothing is padded (SDPA's is_causal). Here the fake
    masks' values are known (ShapeMode constants), so the builder may read them as a real run does."""
    from transformers import masking_utils
    from transformers.utils.import_utils import is_torchdynamo_compiling

    original = masking_utils.is_tracing
    masking_utils.is_tracing = lambda tensor=None: is_torchdynamo_compiling()
    try:
        yield
    finally:
        masking_utils.is_tracing = original


@contextmanager
def _all_hidden_states(model: nn.Module):
    """Keep every decoder layer's input alive for the step (the release's output_hidden_states)."""
    kept: list = []
    layers = model.base.model.language_model.layers
    handles = [layer.register_forward_pre_hook(lambda m, a, kw: kept.append(a[0] if a else kw["hidden_states"]),
                                               with_kwargs=True) for layer in layers]
    try:
        yield kept
    finally:
        for h in handles:
            h.remove()


def measure_step(spec: StepSpec, fake: bool = True) -> StepCost:
    """Count one micro-batch's training step of `spec` (see the module docstring). fake=False runs
    it for real (weights, compute and memory on the CPU): the check of the fake run at small sizes."""
    from ..losses import _backend  # noqa: F401  (the reference losses are chosen through it)
    from ..teachers.base import TeacherRequest
    from ..teachers.vggt import VGGTTeacher
    from ..train.config import LossConfig
    from ..train.objective import micro_loss

    tokenizer = _tokenizer()
    batch = synthetic_batch(tokenizer, BatchShape(frames=spec.frames, micro_batch=spec.micro_batch,
                                                  tokens_per_frame=spec.tokens_per_frame,
                                                  teacher_longest=spec.teacher_longest))
    mode = ShapeMode() if fake else _Real()
    amp = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if spec.autocast else nullcontext
    with mode:
        student = _student(spec, tokenizer)
        network = _teacher_network(spec) if spec.teacher == "online" else None
        step = _Step(student, network)
        teacher = VGGTTeacher(model=network, feature_dim=student.cfg.teacher_dim, device="cpu") if network else None
        trainable = [p for p in student.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)
        _steady_state(optimizer, trainable)
    plan = student.plan(batch)  # real integer work on the CPU batch, as the trainer does
    geo_cfg = student.cfg
    enabled = {"pose": geo_cfg.camera, "depth": geo_cfg.depth, "align": geo_cfg.align, "scale": geo_cfg.scale}
    supervised = int(len(plan.text_targets))
    logits_bytes = [0]
    hook = student.base.lm_head.register_forward_hook(
        lambda m, a, o: logits_bytes.__setitem__(0, logits_bytes[0] + o.numel() * o.element_size()))
    def run(live: LiveBytes | None, forward_counter: FlopCounterMode | None, labels: "_PartStack | None" = None) -> None:
        """One step: teacher -> forward -> loss (under forward_counter) -> backward -> optimizer."""
        if labels is not None:
            labels.outside = "heads_losses"
        phase = live.phase("teacher") if live is not None else nullcontext()
        with forward_counter if forward_counter is not None else nullcontext():
            if forward_counter is not None:
                step()  # names every module "_Step.<path>" for the counters
            with phase:
                if teacher is not None:
                    with amp():
                        targets = [teacher(TeacherRequest(sid, frames, idx)) for sid, frames, idx in
                                   zip(batch["ids"], batch["teacher_frames"], batch["frame_indices"])]
                    for t in targets:
                        t.scale = torch.ones(())  # the metric-depth teacher's scale (not counted yet)
                else:
                    targets = _cached_targets(batch, geo_cfg.teacher_dim, geo_cfg.teacher_layers)
            keep = _all_hidden_states(student) if spec.recipe == "release" else nullcontext()
            with keep, _placeholders_from_ids(student, plan.input_ids), _masks_as_in_a_real_run(), amp():
                out = student(batch, num_items_in_batch=max(supervised, 1), geo=plan)
                if spec.recipe == "release":
                    loss = _release_loss(out, targets)
                else:
                    loss = micro_loss(out, targets, LossConfig(), 1.0, enabled).total
        if labels is not None:
            labels.outside = "backward"
        loss.backward()
        del out, loss, targets
        optimizer.step()

    # Memory and FLOPs in two passes: the FLOP counter's module hooks keep the graphs of
    # checkpointed layers' recomputes alive, which would inflate the peak.
    parts = _PartStack(step)
    live = LiveBytes(label=parts.current)
    with mode, _reference_losses(), parts:
        live.track(*step.parameters(), *step.buffers(), *_optimizer_tensors(optimizer),
                   *[v for v in batch.values() if torch.is_tensor(v)], *batch["teacher_frames"])
        with live:
            run(live, None, parts)
        hook.remove()
        groups = {"parameters": list(student.parameters()) + list(student.buffers()),
                  "gradients": [p.grad for p in trainable if p.grad is not None],
                  "optimizer": _optimizer_tensors(optimizer),
                  "teacher": list(network.parameters()) if network is not None else []}
        split = live.classify(groups)
        activations = live.rest_by_label(groups)
        optimizer.zero_grad(set_to_none=True)
        both = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
        fwd = FlopCounterMode(display=False, custom_mapping=_CPU_ATTENTION)
        with both:
            run(None, fwd)
    text = student.base.config.text_config
    forward = _by_part(fwd)
    backward = {k: v - forward[k] for k, v in _by_part(both).items()}
    memory = {"parameters": split["parameters"], "gradients": split["gradients"], "optimizer": split["optimizer"],
              "activations": split["activations"], "teacher": split["teacher"]}
    return StepCost(spec=spec, flops_forward=forward, flops_backward=backward, memory=memory,
                    activations=activations, peak=live.peak,
                    logits_bytes=logits_bytes[0],
                    teacher_peak=live.phase_peak["teacher"] - live.phase_start["teacher"],
                    params=_param_counts(student, network), sequence=int(plan.input_ids.shape[1]),
                    supervised=supervised, fallbacks=dict(mode.fallbacks), largest=live.largest_at_peak(12),
                    llm_dims=(text.num_attention_heads, text.num_key_value_heads, text.num_hidden_layers))


def _steady_state(optimizer: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    """Create AdamW's state as after a first step (a step's peak holds it), then clear the grads."""
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [v for state in optimizer.state.values() for v in state.values() if torch.is_tensor(v)]


@contextmanager
def _reference_losses():
    """The eager loss references (the Triton kernels cannot run on fake tensors; < 1 % of the FLOPs)."""
    import os

    old = os.environ.get("GEOVR_LOSS_BACKEND")
    os.environ["GEOVR_LOSS_BACKEND"] = "reference"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("GEOVR_LOSS_BACKEND", None)
        else:
            os.environ["GEOVR_LOSS_BACKEND"] = old


def _param_counts(student: nn.Module, teacher: nn.Module | None) -> dict[str, int]:
    llm = sum(p.numel() for n, p in student.named_parameters() if n.startswith("base.") and "visual" not in n)
    vision = sum(p.numel() for n, p in student.named_parameters() if "visual" in n)
    vision_trainable = sum(p.numel() for n, p in student.named_parameters() if "visual" in n and p.requires_grad)
    new = sum(p.numel() for n, p in student.named_parameters() if not n.startswith("base."))
    return {"llm": llm, "vision": vision, "vision_trainable": vision_trainable, "geovr_parts": new,
            "teacher": sum(p.numel() for p in teacher.parameters()) if teacher is not None else 0,
            "trainable": sum(p.numel() for p in student.parameters() if p.requires_grad)}
