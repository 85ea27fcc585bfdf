"""The cost model's teacher doubles (`geovr.teachers.shapes`) against the real Depth-Anything-3
package (random weights): DA3METRIC-LARGE's network, and its DPT head, which has the structure of
VGGT's (VGGT is not on the package index). DA3 needs torchvision, so these run in the second
environment (`.ci/torchvision_env`) and skip in the main one."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

da3_api = pytest.importorskip("depth_anything_3.api", reason="depth-anything-3 (needs torchvision) is not installed")

from geovr.teachers.metric_depth import metric_network  # noqa: E402
from geovr.teachers.shapes import DA3MetricShape, DPTShape  # noqa: E402


@pytest.fixture(scope="module")
def real():
    torch.manual_seed(0)
    return metric_network(da3_api.DepthAnything3(model_name="da3metric-large")).eval()


def _flops(fn) -> dict[str, int]:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("frames,h,w", [(2, 56, 70), (1, 98, 42), (10, 28, 42)])  # 10: two chunks of frames
def test_da3_metric_double_counts_the_real_networks_flops(real, frames, h, w):
    x = torch.randn(1, frames, 3, h, w)
    double = DA3MetricShape().eval()
    got, ref = _flops(lambda: double(x, export_feat_layers=[])), _flops(lambda: real(x, export_feat_layers=[]))
    name = type(real).__name__
    assert got["Global"] == ref["Global"]
    assert got["DA3MetricShape.head"] == ref[f"{name}.head"]  # the DPT and its sky output
    out = double(x, export_feat_layers=[])
    assert out["depth"].shape == out["sky"].shape == (1, frames, h, w)


def test_da3_metric_double_holds_the_real_networks_weights(real):
    assert _params(DA3MetricShape()) == pytest.approx(_params(real), rel=1e-3)
    assert _params(DA3MetricShape().head) == _params(real.head)


def test_dpt_double_has_the_real_dpts_parameters_per_part(real):
    """Part by part (the per-tap projections and resizes, the 3x3s to the fused width, the
    fusion blocks, the output convolutions), so a missing or re-sized layer shows where it is."""
    double, head = DPTShape(1024, outputs=1, sky=True, norm=False), real.head
    assert _params(double.projects) == _params(head.projects)
    assert _params(double.resize) == _params(head.resize_layers)
    assert _params(double.to_features) == sum(_params(getattr(head.scratch, f"layer{i}_rn")) for i in range(1, 5))
    assert _params(double.fusions) == sum(_params(getattr(head.scratch, f"refinenet{i}")) for i in range(1, 5))
    assert _params(double.neck) == _params(head.scratch.output_conv1)
    assert [_params(h) for h in double.heads] == [_params(head.scratch.output_conv2),
                                                  _params(head.scratch.sky_output_conv2)]


def test_lowered_backbone_weights_give_da3s_values_under_autocast(real):
    """MetricDepthTeacher(lower_weights=True) on the real DA3 network: its backbone's Linear/Conv2d
    weights in bf16, the head's fp32, the same depth and sky as fp32 weights under bf16 autocast."""
    import copy

    from geovr.teachers import TeacherRequest
    from geovr.teachers.metric_depth import MetricDepthTeacher

    plain = MetricDepthTeacher(model=copy.deepcopy(real), device="cpu", lower_weights=False)
    low = MetricDepthTeacher(model=copy.deepcopy(real), device="cpu", lower_weights=True)
    dtypes = {p.dtype for p in low.model.backbone.parameters()}
    assert torch.bfloat16 in dtypes and {p.dtype for p in low.model.head.parameters()} == {torch.float32}
    r = TeacherRequest("s", torch.rand(2, 3, 56, 70, generator=torch.Generator().manual_seed(0)), [0, 1])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, b = plain(r), low(r)
    assert torch.equal(a.raw, b.raw) and torch.equal(a.sky, b.sky)
