"""Config: presets, YAML and overrides typed per field, and errors that name the field."""
import pytest

from geovr.train.config import ConfigError, paper, preset, tiny, uses_teacher, validate
from geovr.train.config_io import apply_dict, apply_overrides, dump_yaml, load_yaml
from geovr.train.main import main, parse_config


def test_presets():
    t, p = tiny(), paper()
    assert t.model.path == "tiny" and t.teacher.name == "synthetic" and t.data.synthetic is None
    assert validate(t) == 2  # global 4 = micro 2 x 2 accumulation steps on one rank
    assert (p.optim.lr, p.optim.lr_new, p.optim.schedule, p.optim.warmup_ratio, p.optim.weight_decay, p.optim.clip) \
        == (2e-5, 1e-4, "cosine", 0.03, 0.0, 1.0)
    assert (p.loss.text, p.loss.pose, p.loss.depth, p.loss.align, p.loss.scale) == (1.0, 2.5, 1.0, 1.0, 1.0)
    assert (p.data.fps, p.data.max_frames, p.train.global_batch, p.model.freeze_vision) == (2.0, 32, 32, True)
    with pytest.raises(ConfigError, match="unknown preset"):
        preset("huge")


def test_accumulation_and_world_size():
    cfg = tiny()
    cfg.train.global_batch, cfg.train.micro_batch = 8, 2
    assert validate(cfg, world_size=1) == 4
    assert validate(cfg, world_size=2) == 2
    with pytest.raises(ConfigError, match="train.global_batch.*3 data-parallel ranks"):
        validate(cfg, world_size=3)


@pytest.mark.parametrize("override, field", [
    ("train.micro_batch=0", "train.micro_batch"),
    ("optim.lr=-1", "optim.lr"),
    ("optim.schedule=linear", "optim.schedule"),
    ("data.teacher_longest=500", "data.teacher_longest"),
    ("data.min_frames=40", "data.min_frames"),
    ("data.worker_timeout_s=-1", "data.worker_timeout_s"),
    ("optim.warmup_ratio=1.5", "optim.warmup_ratio"),
    ("model.dtype=fp8", "model.dtype"),
    ("teacher.name=vggt", "teacher.vggt_weights"),
])
def test_validation_names_the_field(override, field):
    cfg = apply_overrides(tiny(), [override])
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert err.value.field == field and field in str(err.value)


def test_only_a_geometric_objective_needs_the_teacher():
    cfg = apply_overrides(tiny(), ["teacher.name=vggt", "model.geovr=off"])
    validate(cfg)  # plain fine-tuning: no VGGT weights needed, none loaded
    assert not uses_teacher(cfg) and uses_teacher(tiny())
    off = apply_overrides(tiny(), ["loss.pose=0", "loss.depth=0", "loss.align=0", "loss.scale=0"])
    assert not uses_teacher(off)
    assert uses_teacher(apply_overrides(tiny(), ["loss.pose=0", "loss.depth=0", "loss.align=0"]))


def test_overrides_are_typed():
    cfg = apply_overrides(tiny(), ["train.steps=7", "optim.lr=3e-4", "data.shuffle=false", "model.path=none",
                                   "teacher.cache=/tmp/c", "train.steps=8.0"])
    assert cfg.train.steps == 8 and cfg.optim.lr == 3e-4 and cfg.data.shuffle is False
    assert cfg.model.path is None and cfg.teacher.cache == "/tmp/c"
    for bad, field in (("train.steps=abc", "train.steps"), ("train.stepz=1", "train.stepz"),
                       ("trian.steps=1", "trian"), ("data.shuffle=maybe", "data.shuffle"), ("steps=1", "steps"),
                       ("train.steps", "train.steps")):
        with pytest.raises(ConfigError) as err:
            apply_overrides(tiny(), [bad])
        assert err.value.field == field


def test_yaml_round_trip_and_precedence(tmp_path):
    cfg = tiny()
    cfg.train.steps, cfg.optim.lr_new = 11, 5e-3
    path = tmp_path / "run.yaml"
    path.write_text(dump_yaml(cfg))
    again = apply_dict(tiny(), load_yaml(path))
    assert again == cfg
    path.write_text("preset: paper\ntrain:\n  steps: 3\n")
    parsed, _ = parse_config(["--config", str(path), "train.steps=4", "--resume", "auto"])
    assert parsed.train.steps == 4 and parsed.train.global_batch == 32 and parsed.checkpoint.resume == "auto"
    path.write_text("train: [1, 2]\n")
    with pytest.raises(ConfigError, match="train"):
        apply_dict(tiny(), load_yaml(path))


def test_a_preset_that_needs_weights_refuses_to_guess_the_model(tmp_path, capsys):
    """The paper preset without model.path stops, naming the field and both fixes; the tiny model
    is built only when asked for (the tiny preset, or model.path=tiny)."""
    args = ["--preset", "paper", "data.path=" + str(tmp_path / "x.jsonl"), "model.geovr=off", "train.steps=1",
            f"train.output={tmp_path / 'out'}"]
    (tmp_path / "x.jsonl").write_text("")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config model.path: no model given" in err
    assert "model.path=/models/Qwen3-VL-2B-Instruct" in err and "model.path=tiny" in err
    assert not (tmp_path / "out").exists()
    for unset in ("model.path=none", "model.path="):
        with pytest.raises(ConfigError) as info:
            validate(apply_overrides(tiny(), [unset]))
        assert info.value.field == "model.path"
    cfg = apply_overrides(paper(), ["model.path=tiny", "data.path=x.jsonl", "model.geovr=off"])
    validate(cfg)
    assert cfg.model.is_tiny and cfg.model.folder is None
    real = apply_overrides(paper(), ["model.path=/models/q"])
    assert not real.model.is_tiny and real.model.folder == "/models/q"


def test_cli_errors_before_any_work(tmp_path, capsys):
    assert main(["model.path=" + str(tmp_path / "no_model"), f"train.output={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "model.path" in err and "config.json" in err
    assert not (tmp_path / "out").exists()
    assert main(["data.synthetic=false", f"data.path={tmp_path / 'none.jsonl'}"]) == 2
    assert "data.path" in capsys.readouterr().err
    # the tiny preset writes its world unasked only at its own path: a mistyped one is an error
    assert main([f"data.path={tmp_path / 'typo' / 'train.jsonl'}", f"train.output={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "data.path" in err and "typo" in err and "data.synthetic=true" in err
    assert not (tmp_path / "typo").exists()
    assert main(["teacher.name=vggt", f"teacher.vggt_weights={tmp_path / 'nope.pt'}", "loss.scale=0"]) == 2
    assert "teacher.vggt_weights" in capsys.readouterr().err
    assert main(["--print-config", "train.steps=3"]) == 0
    assert "steps: 3" in capsys.readouterr().out


def test_parallel_section_and_flags():
    cfg, _ = parse_config(["--tp", "2", "train.steps=3", "--pp", "2", "train.global_batch=8"])
    assert (cfg.parallel.tp, cfg.parallel.pp, cfg.parallel.megatron, cfg.train.steps) == (2, 2, True, 3)
    assert validate(cfg, world_size=8) == 2  # 8 ranks / (2 x 2) = 2 data-parallel ranks x micro 2 x accum 2
    assert not tiny().parallel.megatron  # tp = pp = 1: the torch DDP path
    with pytest.raises(ConfigError, match="parallel.tp: 6 processes cannot hold tp=2 x pp=2"):
        validate(cfg, world_size=6)
    with pytest.raises(ConfigError, match="parallel.backend: tensor/pipeline parallelism needs the megatron"):
        c = tiny()
        apply_overrides(c, ["parallel.backend=ddp", "parallel.tp=2"])
        validate(c, world_size=2)
    with pytest.raises(ConfigError, match="parallel.distributed_optimizer: needs the megatron backend"):
        c = tiny()
        apply_overrides(c, ["parallel.distributed_optimizer=true"])
        validate(c)
    with pytest.raises(ConfigError, match=r"parallel.sequence_parallel: .*parallel.tp > 1"):
        c = tiny()
        apply_overrides(c, ["parallel.backend=megatron", "parallel.sequence_parallel=true"])
        validate(c)
    with pytest.raises(ConfigError, match="parallel.recompute: .some. is not one of"):
        c = tiny()
        apply_overrides(c, ["parallel.recompute=some"])
        validate(c)
    with pytest.raises(ConfigError, match="parallel.recompute: .*use model.gradient_checkpointing=true"):
        c = tiny()
        apply_overrides(c, ["parallel.recompute=full"])
        validate(c)
    c, _ = parse_config(["--tp", "2", "parallel.sequence_parallel=true", "parallel.recompute=selective"])
    assert validate(c, world_size=2) >= 1


def test_megatron_backend_on_cpu_without_the_shim_says_so(monkeypatch):
    pytest.importorskip("megatron.core")
    import torch

    from geovr.train.megatron_loop import CPU_SHIM_FLAG, MegatronTrainer

    if torch.cuda.is_available():
        pytest.skip("the message is for machines without a GPU")
    monkeypatch.delenv(CPU_SHIM_FLAG, raising=False)
    cfg = tiny()
    cfg.parallel.tp = 2
    with pytest.raises(RuntimeError, match="the megatron backend .* runs on CUDA GPUs"):
        MegatronTrainer(cfg)


def test_fsdp_backend_settings():
    c = tiny()
    apply_overrides(c, ["parallel.backend=fsdp"])
    assert c.parallel.fsdp and not c.parallel.megatron
    assert validate(c, world_size=2) == c.train.global_batch // (c.train.micro_batch * 2)
    for overrides, message in ((["parallel.backend=fsdp", "parallel.tp=2"], "parallel.backend: .*megatron .*not fsdp"),
                               (["parallel.fsdp_offload=true"], "parallel.fsdp_offload: .*parallel.backend=fsdp"),
                               (["parallel.fsdp_sync_each_micro_batch=true"], "parallel.fsdp_sync_each_micro_batch: is an"),
                               (["parallel.backend=fsdp", "parallel.fsdp_offload=true", "train.device=cpu"],
                                "parallel.fsdp_offload: .*on the CPU already"),
                               (["parallel.backend=zero3"], "parallel.backend: .zero3. is not one of")):
        c = tiny()
        apply_overrides(c, overrides)
        with pytest.raises(ConfigError, match=message):
            validate(c)


def test_checkpoints_name_the_backend_that_reads_them(tmp_path):
    import torch

    from geovr.parallel.data_parallel import World
    from geovr.train.checkpoint import Checkpointer
    from geovr.train.megatron_checkpoint import MegatronCheckpointer

    world = World(0, 1, 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="written by the megatron backend.*parallel.backend=megatron"):
        Checkpointer(tmp_path, world)._check_layout(tmp_path, {"world_size": 2, "tp": 2, "pp": 1, "dp": 1})
    Checkpointer(tmp_path, world, backend="fsdp")._check_layout(tmp_path, {"world_size": 4, "backend": "ddp"})
    mc = MegatronCheckpointer(tmp_path, world, 1, None, tp=1, pp=1, dp=1)
    with pytest.raises(ValueError, match="written by the fsdp backend: resume it with parallel.backend=fsdp"):
        mc._check_layout(tmp_path, {"world_size": 1, "backend": "fsdp"})
    with pytest.raises(ValueError, match="written by the ddp backend"):
        mc._check_layout(tmp_path, {"world_size": 1})  # before checkpoints named their backend


def test_a_stalled_loader_is_named_before_the_collectives_time_out():
    """The stalled rank stops on data.worker_timeout_s while the other ranks still wait in their
    collective (whose timeout would end the run with an error about NCCL, not the data)."""
    import inspect

    from geovr.parallel.data_parallel import init_world
    from geovr.train.config import DataConfig

    group_timeout = inspect.signature(init_world).parameters["timeout_s"].default
    assert 0 < DataConfig().worker_timeout_s <= group_timeout / 2
