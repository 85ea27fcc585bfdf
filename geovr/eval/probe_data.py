"""Hidden states of a frozen Qwen3-VL on videos with known geometry, and the probe targets.

Input layout (the synthetic world's; export real scans to it): `videos/<name>.mp4` and
`geometry/<name>.npz` holding `depth` [T, H, W] (metres, per video frame), `extrinsics` [T, 3, 4]
(camera-from-world, OpenCV) and `metric_scale` [] (metres).

Per video the model reads `<video>` + VSI-Bench's pre-prompt (the video comes first, so its
tokens' states do not depend on any question). Hidden state k is the input of LLM layer k
(0: the embeddings, i.e. the vision tower's merged tokens at the visual positions; L: the last
layer's output). Targets:
  depth  per visual token: log of the mean depth (m) over the token's footprint in its frame
  pose   per frame t >= 1: the camera-from-frame-0 transform: translation (m) and rotation vector
         (rad); features: the frame's mean visual state minus frame 0's (a state that encodes each
         camera linearly encodes the change of camera linearly in the difference; concatenating
         frame 0's state instead gives a probe half of whose inputs take one value per video)
  scale  per video: log metric scale (m); features: the mean of all its visual states (one row a
         video: the planted per-video target shows how many videos a D-wide probe needs)

Planted targets check the instrument itself (`probe.PLANTED`): per visual token its row and column
in the frame's token grid and the mean RGB of its footprint (pooled from the decoded frames exactly
as the depth target is pooled from the depth maps, so a wrong token-to-footprint mapping shows as an
unrecoverable colour); per frame and per video a fixed random linear function of the probe's own
features (recoverable by construction wherever the rows suffice).
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sampling import FrameSampling, QwenVision
from ..teachers.pose_encoding import relative_to_first, rotation_to_quaternion
from .inputs import QuestionEncoder
from .questions import PRE_PROMPT


@dataclass(frozen=True)
class ProbeVideo:
    name: str
    video: str
    geometry: str


def find_probe_videos(data: str) -> list[ProbeVideo]:
    """Videos with geometry under `data` (a folder, or a file inside it such as train.jsonl)."""
    root = data if os.path.isdir(data) else os.path.dirname(os.path.abspath(data))
    out = []
    for g in sorted(glob.glob(os.path.join(root, "geometry", "*.npz"))):
        name = os.path.splitext(os.path.basename(g))[0]
        video = os.path.join(root, "videos", f"{name}.mp4")
        if os.path.isfile(video):
            out.append(ProbeVideo(name, video, g))
    if not out:
        raise FileNotFoundError(f"--data {data}: no videos/<name>.mp4 with geometry/<name>.npz (the synthetic "
                                "world's layout: python -m geovr.data.synthetic --out DIR --scenes N)")
    return out


def rotation_vector(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> axis * angle [..., 3] (rad), through the quaternion."""
    q = rotation_to_quaternion(r)
    xyz, w = q[..., :3], q[..., 3:]
    n = xyz.norm(dim=-1, keepdim=True)
    factor = torch.where(n > 1e-8, 2 * torch.atan2(n, w) / n.clamp_min(1e-12), 2 / w.clamp_min(1e-12))
    return xyz * factor


@dataclass
class ProbeData:
    """Features per layer and targets, with the video each row comes from (`*_group`)."""

    layers: list[int]
    names: list[str] = field(default_factory=list)
    token_feats: dict[int, list[np.ndarray]] = field(default_factory=dict)
    token_depth: list[np.ndarray] = field(default_factory=list)
    token_group: list[np.ndarray] = field(default_factory=list)
    frame_feats: dict[int, list[np.ndarray]] = field(default_factory=dict)
    frame_pose: list[np.ndarray] = field(default_factory=list)
    frame_group: list[np.ndarray] = field(default_factory=list)
    video_feats: dict[int, list[np.ndarray]] = field(default_factory=dict)
    video_scale: list[float] = field(default_factory=list)
    token_planted: list[np.ndarray] = field(default_factory=list)  # [n, 8] (`footprint_targets`)

    def stacked(self) -> dict:
        """Every list concatenated into arrays."""
        cat = np.concatenate
        return {
            "token_feats": {k: cat(v) for k, v in self.token_feats.items()}, "token_depth": cat(self.token_depth),
            "token_group": cat(self.token_group),
            "frame_feats": {k: cat(v) for k, v in self.frame_feats.items()}, "frame_pose": cat(self.frame_pose),
            "frame_group": cat(self.frame_group),
            "video_feats": {k: np.stack(v) for k, v in self.video_feats.items()},
            "video_scale": np.array(self.video_scale), "video_group": np.arange(len(self.names)),
            "token_planted": cat(self.token_planted) if self.token_planted else None,
        }


def footprint_targets(frames: torch.Tensor, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 frames [T, 3, H, W] -> [T*h*w, 8] per visual token in token order: its row and column
    in the h x w token grid (0..1), the mean R, G, B of its footprint (0..1), pooled as the depth
    target is, and the control: the R, G, B of another token of the same frame (a permutation
    within each frame), which keeps each frame's colours but not their places."""
    t = frames.shape[0]
    rgb = F.adaptive_avg_pool2d(frames.float() / 255.0, (h, w)).permute(0, 2, 3, 1).reshape(t, h * w, 3)
    rows = torch.linspace(0, 1, h).view(h, 1).expand(h, w) if h > 1 else torch.zeros(h, w)
    cols = torch.linspace(0, 1, w).view(1, w).expand(h, w) if w > 1 else torch.zeros(h, w)
    grid = torch.stack([rows, cols], -1).reshape(1, h * w, 2).expand(t, h * w, 2)
    perm = torch.stack([torch.from_numpy(rng.permutation(h * w)) for _ in range(t)])  # [T, h*w]
    shuffled = torch.gather(rgb, 1, perm[..., None].expand(t, h * w, 3))
    return torch.cat([grid, rgb, shuffled], -1).reshape(t * h * w, 8).numpy().astype(np.float64)


@torch.no_grad()
def visual_states(model, encoder: QuestionEncoder, video: ProbeVideo, layers: list[int]
                  ) -> tuple[dict[int, np.ndarray], list[int]]:
    """Run `model` on `<video>` + the pre-prompt: ({layer: float32 [T, h, w, D] hidden states at the
    visual tokens, on the merged token grid}, the decoded frame indices). `encoder.frames` then
    holds the frames."""
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    enc = encoder.encode(video.video, PRE_PROMPT, video.name)
    ids, mm = enc.input_ids[None].to(device), enc.mm_token_type_ids[None].to(device)
    out = model(input_ids=ids, attention_mask=torch.ones_like(ids), mm_token_type_ids=mm,
                pixel_values_videos=enc.pixel_values_videos.to(device, dtype),
                video_grid_thw=enc.video_grid_thw.to(device), output_hidden_states=True, logits_to_keep=1)
    t, gh, gw = (int(x) for x in enc.video_grid_thw[0])
    m = encoder.vision.merge_size
    pos = (mm[0] == 2).nonzero().squeeze(1)
    return ({k: out.hidden_states[k][0, pos].float().reshape(t, gh // m, gw // m, -1).cpu().numpy() for k in layers},
            list(enc.frame_indices))


@torch.no_grad()
def collect(model, tokenizer, videos: list[ProbeVideo], layers: list[int] | None = None,
            sampling: FrameSampling = FrameSampling(), vision: QwenVision = QwenVision(), backend: str = "auto",
            max_tokens_per_video: int = 256, seed: int = 0, progress: bool = True) -> ProbeData:
    """Run `model` (a Qwen3VLForConditionalGeneration) on each video and gather probe rows.
    layers: hidden-state indices (default all, 0..L). max_tokens_per_video: visual tokens kept per
    video for the depth probe (a seeded random subset; frame and video means use all tokens)."""
    n_layers = model.config.text_config.num_hidden_layers
    layers = list(range(n_layers + 1)) if layers is None else sorted(set(layers))
    bad = [k for k in layers if not 0 <= k <= n_layers]
    if bad:
        raise ValueError(f"layers {bad} are outside 0..{n_layers} (hidden state k is the input of layer k)")
    data = ProbeData(layers, token_feats={k: [] for k in layers}, frame_feats={k: [] for k in layers},
                     video_feats={k: [] for k in layers})
    encoder = QuestionEncoder(tokenizer, sampling, vision, backend)
    from ..progress import progress as progress_display

    it = progress_display(videos, enabled=progress, desc="probe features", unit="videos")
    for v_idx, v in enumerate(it):
        all_states, idx = visual_states(model, encoder, v, layers)
        t, h, w = next(iter(all_states.values())).shape[:3]
        geo = np.load(v.geometry)
        depth = torch.from_numpy(np.asarray(geo["depth"][idx], dtype=np.float32))[:, None]
        depth = F.adaptive_avg_pool2d(depth, (h, w)).reshape(-1).numpy()  # [T*h*w] in token order
        ok = np.isfinite(depth) & (depth > 0)
        keep = np.flatnonzero(ok)
        rng = np.random.default_rng(seed * 1_000_003 + v_idx)
        planted = footprint_targets(encoder.frames, h, w, rng)
        if len(keep) > max_tokens_per_video:
            keep = np.sort(rng.choice(keep, max_tokens_per_video, replace=False))
        ext = relative_to_first(torch.from_numpy(np.asarray(geo["extrinsics"][idx], dtype=np.float64)))
        pose = torch.cat([ext[:, :, 3], rotation_vector(ext[:, :, :3])], -1).numpy()  # [T, 6]
        for k in layers:
            states = all_states[k].reshape(t, h * w, -1)
            data.token_feats[k].append(states.reshape(t * h * w, -1)[keep].astype(np.float32))
            per_frame = states.mean(1)  # [T, D]
            data.frame_feats[k].append(per_frame[1:] - per_frame[:1])
            data.video_feats[k].append(per_frame.mean(0))
        data.names.append(v.name)
        data.token_depth.append(np.log(depth[keep]))
        data.token_planted.append(planted[keep])
        data.token_group.append(np.full(len(keep), v_idx))
        data.frame_pose.append(pose[1:])
        data.frame_group.append(np.full(t - 1, v_idx))
        data.video_scale.append(float(np.log(float(geo["metric_scale"]))))
    return data
