"""The trainer's configuration: typed dataclasses, the `tiny` and `paper` presets, and validation
that names the field at fault. YAML files and `section.field=value` overrides: `config_io.py`."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..model.attention import ATTENTION
from ..model.config import CHECKPOINT_KEEP, TEXT_LOGITS
from ..model.lora import LORA_TARGETS, LoraSettings

PRESETS = ("tiny", "paper")
TINY_MODEL = "tiny"  # model.path value that builds the tiny random model (the tiny preset's)


class ConfigError(ValueError):
    """A bad setting: `field` is its dotted name (e.g. "train.micro_batch")."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        super().__init__(f"config {field_name}: {problem}")


@dataclass
class ModelConfig:
    """path: a local Qwen3-VL folder (config.json + safetensors), or "tiny" for the tiny random model
    (`tiny_layers` x `tiny_hidden`; the tiny preset's); unset (None) is an error, never a guess.
    tokenizer: a local tokenizer folder (default: `path`; the tiny
    model uses the built-in tiny tokenizer). geovr: "paper" (every objective) or "off" (plain
    fine-tuning). heads: "paper" (the release's widths) or "small" (for tiny models). dtype:
    "auto" (bf16 autocast on a GPU, fp32 on a CPU), "bf16" or "fp32". text_logits: "supervised"
    (the LM head only where an answer token is predicted) or "all" (every position, as the release).
    gradient_checkpointing: recompute the LLM's decoder layers in the backward (ddp backend; the
    megatron backend has parallel.recompute); checkpoint_keep: what a checkpointed layer keeps,
    "attention" (its attention outputs: the recompute skips the S^2 attention, same gradients) or
    "nothing" (the whole layer recomputed); checkpoint_layers: how many decoder layers are
    checkpointed, the first ones (None: all; fewer trade memory for FLOPs, see `python -m geovr.plan`).
    attention: the LLM's attention kernel, auto | sdpa | flex (`geovr.model.attention`): packed
    sequences (data.group_by_video) need a mask per segment, given to SDPA as a dense boolean
    [B, 1, L, L] or to flex_attention as a BlockMask; auto: flex on CUDA, sdpa on a CPU, and the
    model's own setting when nothing is packed. lora_rank: 0 (off: the whole LLM trains) or r:
    LoRA adapters of rank r on the LLM's `lora_targets` (comma-separated projection names of its
    decoder layers), scaled by lora_alpha / r, dropout lora_dropout on their input; the LLM's own
    weights are frozen, the vision mergers and every GeoVR part train in full (`geovr.model.lora`;
    needs peft: pip install -e ".[lora]")."""

    path: str | None = None
    tokenizer: str | None = None
    tiny_layers: int = 6
    tiny_hidden: int = 64
    geovr: str = "paper"
    heads: str = "paper"
    freeze_vision: bool = True
    gradient_checkpointing: bool = False
    checkpoint_keep: str = "attention"
    checkpoint_layers: int | None = None
    dtype: str = "auto"
    text_logits: str = "supervised"
    attention: str = "auto"
    lora_rank: int = 0
    lora_alpha: float = LoraSettings.alpha
    lora_dropout: float = LoraSettings.dropout
    lora_targets: str = ",".join(LoraSettings.targets)

    @property
    def is_tiny(self) -> bool:
        """Whether the run builds the tiny random model (model.path=tiny)."""
        return self.path == TINY_MODEL

    @property
    def folder(self) -> str | None:
        """The Qwen3-VL folder the run starts from (None for the tiny random model)."""
        return None if self.is_tiny else self.path

    @property
    def lora_target_names(self) -> tuple[str, ...]:
        return tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())


SYNTHETIC_PATH = "geovr_runs/synthetic/train.jsonl"  # where the tiny job writes its world unasked


@dataclass
class DataConfig:
    """path: the annotation file, or several comma-separated (read in order into one dataset; a
    repeated record id becomes `id@file`); format: vsi590k | vlm3r | llava, one for every file
    or one per file (comma-separated). A VLM-3R record's video is read from the VSI-590K tree,
    `<media_root>/<data_source>/<scene_name>.mp4`, as the release does. synthetic: write the synthetic
    world at path's folder when the file is absent (`synthetic_*` set its size): none (the
    default) only at the default path `SYNTHETIC_PATH`, so a mistyped path is an error; true at any
    path; false never. Frames: `fps`,
    `min_frames`..`max_frames`, at most `tokens_per_frame` merged tokens each; teacher frames have
    longest edge `teacher_longest` (a multiple of 28). max_length: longer samples are skipped.
    group_by_length: 0 (off) or G: sort each window of G micro-batches of the shuffled order by
    frame count, so micro-batches pad less (the videos are probed once at start; `data/padding`
    in the metrics is the share of padded token slots). group_by_video: 0 (off) or K: the
    questions about one video (and prompt) share one sequence, up to K of them, the video's
    prefix computed once (`geovr.data.video_groups`, `geovr.data.packing`); train.global_batch
    still counts questions, train.micro_batch counts sequences. synthetic_colour_by_category: every
    object of a category has that category's colour (questions a tiny vision tower can ground).
    workers: DataLoader worker processes (0: the trainer decodes). worker_timeout_s: with workers,
    seconds to wait for one micro-batch before the run stops with an error (a worker stuck in a hung
    file-system read or a decoder deadlock never dies, so nothing else would end the wait); the
    rank exits with status 1 and `--resume auto` (torchrun `--max-restarts`) continues from the last
    checkpoint; 0 waits for ever. Its default is half the process group's timeout (`init_world`),
    so the stalled rank names the data before the other ranks' collectives time out."""

    path: str = SYNTHETIC_PATH
    format: str = "vsi590k"
    media_root: str | None = None
    synthetic: bool | None = None
    synthetic_scenes: int = 8
    synthetic_height: int = 240
    synthetic_width: int = 320
    synthetic_seconds: float = 6.0
    synthetic_seed: int = 0
    synthetic_colour_by_category: bool = False
    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    tokens_per_frame: int = 300
    teacher_longest: int = 504
    max_length: int = 16384
    backend: str = "auto"
    workers: int = 0
    worker_timeout_s: float = 900.0
    shuffle: bool = True
    group_by_length: int = 0
    group_by_video: int = 0


@dataclass
class TeacherConfig:
    """name: synthetic | vggt. root: the synthetic dataset's folder (default: the data file's).
    vggt_weights / metric_weights: local checkpoints. feature_dim: the teacher's feature width.
    cache: a target-cache folder (`python -m geovr.teachers.cache`): read when present, the teacher
    runs online on a miss. exact: synthetic only, re-render depth at the teacher's size."""

    name: str = "synthetic"
    root: str | None = None
    vggt_weights: str | None = None
    metric_weights: str | None = None
    feature_dim: int = 1024
    cache: str | None = None
    exact: bool = False


@dataclass
class OptimConfig:
    """AdamW. lr: the LLM and the merger; lr_new: every GeoVR part (tokens, heads, projectors);
    lr_lora: the LoRA adapters (model.lora_rank > 0), None: optim.lr.
    schedule: cosine | constant, after a linear warmup over `warmup_ratio` of the steps. clip: the
    global gradient-norm limit (0 = off)."""

    lr: float = 2e-5
    lr_new: float = 1e-4
    lr_lora: float | None = None
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    warmup_ratio: float = 0.03
    schedule: str = "cosine"
    min_lr_ratio: float = 0.0
    clip: float = 1.0


@dataclass
class LossConfig:
    """Weights of the total: L = text L_text + pose L_cam + depth L_depth + align L_align + scale L_scale.
    pose_standardise_target: flip the teacher's quaternion to w >= 0 before the pose L1 (q and -q
    are one rotation; see geovr.losses.pose); off in both presets, as in the release."""

    text: float = 1.0
    pose: float = 2.5
    depth: float = 1.0
    align: float = 1.0
    scale: float = 1.0
    pose_standardise_target: bool = False


@dataclass
class LoopConfig:
    """steps: optimizer steps (None: `epochs` over the data). global_batch = micro_batch x
    accumulation x data-parallel ranks. device: auto | cpu | cuda. output: the run's folder
    (checkpoints, TensorBoard, metrics.jsonl). max_bad_steps: NaN/inf steps in a row that stop the run.
    verify_kernels: before the model is built, check the fused and native paths the run uses on its
    device (`python -m geovr.doctor --quick`, reused per environment): auto (on a GPU; a failed path
    falls back to its reference, logged) | strict (a failed path stops the run) | off."""

    steps: int | None = None
    epochs: int = 1
    global_batch: int = 32
    micro_batch: int = 2
    seed: int = 0
    device: str = "auto"
    output: str = "geovr_runs/run"
    max_bad_steps: int = 5
    find_unused_parameters: bool = True
    verify_kernels: str = "auto"


@dataclass
class CheckpointConfig:
    """every: steps between checkpoints (0 = only at the end); keep: the last K; resume: none |
    auto (the newest complete checkpoint under output/checkpoints) | a checkpoint folder.
    export: write a GeoVR model folder (`output/final`, for `python -m geovr.export`) at the end.
    verify: record each file's size and SHA-256 in the checkpoint's manifest, and check them before
    a resume (auto falls back to the newest checkpoint that is whole; an explicit folder that is not
    is an error). resume_unverified: load an explicit checkpoint even when it fails the check."""

    every: int = 500
    keep: int = 3
    resume: str = "none"
    export: bool = True
    verify: bool = True
    resume_unverified: bool = False


@dataclass
class MetricsConfig:
    """log_every: steps between metric records; tensorboard: event files under output/tensorboard;
    progress: the progress bar."""

    log_every: int = 1
    tensorboard: bool = True
    progress: bool = True


@dataclass
class ParallelConfig:
    """tp x pp: tensor and pipeline parallel sizes of the LLM (megatron-core); the remaining factor of
    the world size is data parallel. backend: auto (megatron when tp or pp > 1, else torch DDP) |
    ddp | fsdp (FSDP2: parameters, gradients and optimizer state sharded over the ranks) |
    megatron. fsdp_offload: keep FSDP's shards and the optimizer step on the CPU (pinned memory;
    for one GPU that cannot hold them). fsdp_sync_each_micro_batch: reduce-scatter each
    micro-batch's gradients at once (1/N of the gradient memory) instead of accumulating them
    whole (fp32, as DDP holds them) until the step's last micro-batch (one reduce-scatter a step).
    distributed_optimizer: shard the optimizer state over the data-parallel ranks
    (megatron backend). sequence_parallel: split the LLM's activations between layers over the TP
    ranks (megatron backend, tp > 1; cuts their memory by tp at no extra communication).
    recompute: the megatron backend's activation recompute, none | selective (core attention) |
    full (every layer) | auto (full when model.gradient_checkpointing, else none)."""

    tp: int = 1
    pp: int = 1
    backend: str = "auto"
    fsdp_offload: bool = False
    fsdp_sync_each_micro_batch: bool = False
    distributed_optimizer: bool = False
    sequence_parallel: bool = False
    recompute: str = "auto"

    @property
    def megatron(self) -> bool:
        return self.backend == "megatron" or (self.backend == "auto" and (self.tp > 1 or self.pp > 1))

    @property
    def fsdp(self) -> bool:
        return self.backend == "fsdp"


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    parallel: ParallelConfig = field(default_factory=ParallelConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def uses_teacher(cfg: Config) -> bool:
    """Whether any geometric objective is on (model.geovr=paper and a pose, depth, align or scale
    weight > 0): only then does the trainer build and run the teacher."""
    l = cfg.loss
    return cfg.model.geovr == "paper" and any(w > 0 for w in (l.pose, l.depth, l.align, l.scale))


def tiny() -> Config:
    """The embedded default: a tiny random Qwen3-VL, the synthetic world (made if absent), the
    synthetic teacher, the CPU; about 3 minutes on 2 cores, and the loss parts fall."""
    return Config(
        model=ModelConfig(path=TINY_MODEL, heads="small"),
        data=DataConfig(path=SYNTHETIC_PATH, synthetic=None, synthetic_scenes=8,
                        synthetic_seconds=6.0, max_frames=16, teacher_longest=336, backend="pyav"),
        teacher=TeacherConfig(name="synthetic", feature_dim=64),
        optim=OptimConfig(lr=1e-3, lr_new=2e-3, warmup_ratio=0.05),
        train=LoopConfig(steps=120, global_batch=4, micro_batch=2, device="auto", output="geovr_runs/tiny"),
        checkpoint=CheckpointConfig(every=40, keep=2),
    )


def paper() -> Config:
    """The release's recipe (model.path, data.path and the teacher's weights must be given): lr 2e-5 LLM +
    merger, 1e-4 new parts, cosine, 3% warmup, weight decay 0, clip 1.0, loss weights
    1/2.5/1/1/1, 32 frames at 2 fps, ViT frozen, 32 samples per step, one epoch, 16k tokens."""
    return Config(
        model=ModelConfig(path=None, heads="paper", gradient_checkpointing=True),
        data=DataConfig(path="", synthetic=False, max_frames=32),
        teacher=TeacherConfig(name="vggt", feature_dim=1024),
        train=LoopConfig(steps=None, epochs=1, global_batch=32, micro_batch=2, output="geovr_runs/paper"),
    )


def preset(name: str) -> Config:
    if name not in PRESETS:
        raise ConfigError("preset", f"unknown preset {name!r}; choose from {list(PRESETS)}")
    return {"tiny": tiny, "paper": paper}[name]()


def _choice(name: str, value, options) -> None:
    if value not in options:
        raise ConfigError(name, f"{value!r} is not one of {list(options)}")


def _positive(name: str, value, allow_zero: bool = False) -> None:
    if value is None or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(name, f"must be {'>= 0' if allow_zero else '> 0'}, got {value}")


BACKENDS = ("auto", "ddp", "fsdp", "megatron")


def _gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()


def _validate_lora(cfg: Config) -> None:
    m, o = cfg.model, cfg.optim
    _positive("model.lora_rank", m.lora_rank, allow_zero=True)
    if o.lr_lora is not None:
        _positive("optim.lr_lora", o.lr_lora)
        if not m.lora_rank:
            raise ConfigError("optim.lr_lora", "is the LoRA adapters' rate: set model.lora_rank > 0 too")
    if not m.lora_rank:
        return
    _positive("model.lora_alpha", m.lora_alpha)
    if not 0 <= m.lora_dropout < 1:
        raise ConfigError("model.lora_dropout", f"must be in [0, 1), got {m.lora_dropout}")
    if not m.lora_target_names:
        raise ConfigError("model.lora_targets", "names no layer: give comma-separated projection names, e.g. "
                          + ",".join(LORA_TARGETS))
    if cfg.parallel.megatron:
        raise ConfigError("model.lora_rank", "LoRA runs on the ddp and fsdp backends; the megatron backend trains "
                          "the whole LLM (set model.lora_rank=0, or parallel.backend=ddp|fsdp with tp=pp=1)")
    try:
        import peft  # noqa: F401
    except ImportError:
        raise ConfigError("model.lora_rank", "LoRA needs peft, which is not installed: pip install -e '.[lora]' "
                          "(or pip install peft)") from None


def validate(cfg: Config, world_size: int = 1) -> int:
    """Check every setting (not the paths: `check_paths`). Returns the gradient-accumulation steps
    (0 with data.group_by_video: the sampler plans each step's micro-batches)."""
    m, d, t, o, l, r, c, x = cfg.model, cfg.data, cfg.teacher, cfg.optim, cfg.loss, cfg.train, cfg.checkpoint, cfg.metrics
    if not m.path:
        raise ConfigError("model.path", "no model given: this run trains a published Qwen3-VL (the paper preset "
                          "builds no tiny model unasked); give its local folder, e.g. "
                          "model.path=/models/Qwen3-VL-2B-Instruct (config.json + *.safetensors), or model.path="
                          f"{TINY_MODEL} for the tiny random test model")
    _choice("model.geovr", m.geovr, ("paper", "off"))
    _choice("model.heads", m.heads, ("paper", "small"))
    _choice("model.dtype", m.dtype, ("auto", "bf16", "fp32"))
    _choice("model.text_logits", m.text_logits, TEXT_LOGITS)
    _positive("model.tiny_layers", m.tiny_layers)
    _choice("model.checkpoint_keep", m.checkpoint_keep, CHECKPOINT_KEEP)
    if m.checkpoint_layers is not None:
        _positive("model.checkpoint_layers", m.checkpoint_layers, allow_zero=True)
    _positive("model.tiny_hidden", m.tiny_hidden)
    if m.tiny_hidden % 16:
        raise ConfigError("model.tiny_hidden", f"must be a multiple of 16 (the head size), got {m.tiny_hidden}")
    for fmt in d.format.split(","):
        _choice("data.format", fmt, ("vsi590k", "vlm3r", "llava"))
    if "," in d.format and len(d.format.split(",")) != len(d.path.split(",")):
        raise ConfigError("data.format", f"{len(d.format.split(','))} formats for {len(d.path.split(','))} files in "
                          "data.path: give one format, or one per file")
    _choice("data.backend", d.backend, ("auto", "pyav", "dali-gpu", "dali-cpu"))
    _choice("train.verify_kernels", r.verify_kernels, ("auto", "strict", "off"))
    if not d.path:
        raise ConfigError("data.path", "no annotation file given; set data.path=<train.jsonl>")
    for name in ("fps",):
        _positive(f"data.{name}", getattr(d, name))
    for name in ("min_frames", "max_frames", "tokens_per_frame", "synthetic_scenes", "max_length"):
        _positive(f"data.{name}", getattr(d, name))
    if d.min_frames > d.max_frames:
        raise ConfigError("data.min_frames", f"{d.min_frames} exceeds data.max_frames={d.max_frames}")
    if d.teacher_longest <= 0 or d.teacher_longest % 28:
        raise ConfigError("data.teacher_longest", f"must be a positive multiple of 28, got {d.teacher_longest}")
    if d.synthetic is not False and (d.synthetic_height % 16 or d.synthetic_width % 16):
        raise ConfigError("data.synthetic_height", f"synthetic frames must be multiples of 16, got "
                          f"{d.synthetic_height}x{d.synthetic_width}")
    _positive("data.workers", d.workers, allow_zero=True)
    _positive("data.worker_timeout_s", d.worker_timeout_s, allow_zero=True)
    _positive("data.group_by_length", d.group_by_length, allow_zero=True)
    _positive("data.group_by_video", d.group_by_video, allow_zero=True)
    _choice("model.attention", m.attention, ATTENTION)
    if d.group_by_video and d.group_by_length:
        raise ConfigError("data.group_by_length", "sorts single samples by length; with data.group_by_video the "
                          "sequences are whole videos' question groups already: set one of them to 0")
    if d.group_by_video and cfg.parallel.megatron:
        raise ConfigError("data.group_by_video", "packed sequences run on the ddp and fsdp backends; the megatron "
                          "backend trains one question per sequence (set data.group_by_video=0)")
    _choice("teacher.name", t.name, ("synthetic", "vggt"))
    _positive("teacher.feature_dim", t.feature_dim)
    if t.name == "vggt" and not t.vggt_weights and uses_teacher(cfg):
        raise ConfigError("teacher.vggt_weights", "teacher vggt needs the local VGGT-1B checkpoint path (or "
                          "model.geovr=off for plain fine-tuning, which runs no teacher)")
    if t.name == "vggt" and m.geovr == "paper" and l.scale > 0 and not t.metric_weights:
        raise ConfigError("teacher.metric_weights", "the scale loss needs a metric-depth teacher: set "
                          "teacher.metric_weights=<DA3 metric folder>, or loss.scale=0")
    for name in ("lr", "lr_new"):
        _positive(f"optim.{name}", getattr(o, name))
    _validate_lora(cfg)
    _positive("optim.weight_decay", o.weight_decay, allow_zero=True)
    _positive("optim.clip", o.clip, allow_zero=True)
    if not 0 <= o.warmup_ratio < 1:
        raise ConfigError("optim.warmup_ratio", f"must be in [0, 1), got {o.warmup_ratio}")
    if not 0 <= o.min_lr_ratio <= 1:
        raise ConfigError("optim.min_lr_ratio", f"must be in [0, 1], got {o.min_lr_ratio}")
    _choice("optim.schedule", o.schedule, ("cosine", "constant"))
    for name in ("text", "pose", "depth", "align", "scale"):
        _positive(f"loss.{name}", getattr(l, name), allow_zero=True)
    if r.steps is not None:
        _positive("train.steps", r.steps)
    _positive("train.epochs", r.epochs)
    _positive("train.micro_batch", r.micro_batch)
    _positive("train.global_batch", r.global_batch)
    _positive("train.max_bad_steps", r.max_bad_steps)
    _choice("train.device", r.device, ("auto", "cpu", "cuda"))
    p = cfg.parallel
    _choice("parallel.backend", p.backend, BACKENDS)
    _positive("parallel.tp", p.tp)
    _positive("parallel.pp", p.pp)
    if p.backend in ("ddp", "fsdp") and (p.tp > 1 or p.pp > 1):
        raise ConfigError("parallel.backend", f"tensor/pipeline parallelism needs the megatron backend "
                          f"(parallel.backend=megatron or auto), not {p.backend}")
    for name in ("fsdp_offload", "fsdp_sync_each_micro_batch"):
        if getattr(p, name) and not p.fsdp:
            raise ConfigError(f"parallel.{name}", "is an FSDP setting: set parallel.backend=fsdp too")
    if p.fsdp_offload and (r.device == "cpu" or (r.device == "auto" and not _gpu_visible())):
        raise ConfigError("parallel.fsdp_offload", "moves GPU shards to the CPU; this run is on the CPU already "
                          "(set parallel.fsdp_offload=false)")
    if world_size % (p.tp * p.pp):
        raise ConfigError("parallel.tp", f"{world_size} processes cannot hold tp={p.tp} x pp={p.pp}: the number "
                          "of processes (torchrun --nproc_per_node x nodes) must be a multiple of tp*pp")
    if p.distributed_optimizer and not p.megatron:
        raise ConfigError("parallel.distributed_optimizer", "needs the megatron backend (parallel.backend=megatron)")
    if p.sequence_parallel and not (p.megatron and p.tp > 1):
        raise ConfigError("parallel.sequence_parallel", "splits activations over tensor-parallel ranks: it needs "
                          "the megatron backend with parallel.tp > 1 (e.g. --tp 2)")
    _choice("parallel.recompute", p.recompute, ("auto", "none", "selective", "full"))
    if p.recompute != "auto" and not p.megatron:
        raise ConfigError("parallel.recompute", "is the megatron backend's activation recompute; on the ddp "
                          "backend use model.gradient_checkpointing=true")
    if cfg.model.checkpoint_layers is not None and p.megatron:
        raise ConfigError("model.checkpoint_layers", "is the ddp backend's; the megatron backend recomputes every "
                          "layer or none (parallel.recompute=full|selective|none)")
    _positive("checkpoint.every", c.every, allow_zero=True)
    _positive("checkpoint.keep", c.keep)
    _positive("metrics.log_every", x.log_every)
    dp = world_size // (p.tp * p.pp)
    if d.group_by_video:  # global_batch counts questions; the sampler plans each step's micro-batches
        if r.global_batch % dp:
            raise ConfigError("train.global_batch", f"{r.global_batch} questions do not split over {dp} "
                              "data-parallel ranks: use a multiple of the ranks")
        return 0
    per_step = r.micro_batch * dp
    if r.global_batch % per_step:
        raise ConfigError("train.global_batch", f"{r.global_batch} is not a multiple of train.micro_batch "
                          f"({r.micro_batch}) x {dp} data-parallel ranks")
    return r.global_batch // per_step
