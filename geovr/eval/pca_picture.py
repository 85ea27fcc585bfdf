"""What the latents look like: the first three principal components of a layer's visual-token
states, shown as RGB over each frame's token grid, beside the frame and its true depth, one row
per model (the picture of the paper's own analysis of its latents).

The components are fitted per model over all of the video's tokens, so colours are comparable
across frames of one model, not across models (a component's sign and order are arbitrary); what
to compare is the structure: whether the colours follow the room's surfaces and depth, or the
objects' paint.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..figures import save_figure


def pca_rgb(states: np.ndarray) -> np.ndarray:
    """states [..., D] -> [..., 3] in 0..1: the projections on the first three principal
    components over all rows, each stretched between its 2nd and 98th percentiles."""
    x = states.reshape(-1, states.shape[-1]).astype(np.float64)
    x = x - x.mean(0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    k = min(3, vt.shape[0])
    proj = x @ vt[:k].T
    if k < 3:
        proj = np.concatenate([proj, np.zeros((len(proj), 3 - k))], 1)
    lo, hi = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
    out = np.clip((proj - lo) / np.where(hi - lo > 1e-12, hi - lo, 1.0), 0, 1)
    return out.reshape(states.shape[:-1] + (3,))


def pca_figure(models: dict[str, str | os.PathLike], video, layer: int, path: str | os.PathLike,
               columns: int = 4) -> Path:
    """One figure: row 1 the frames, row 2 their depth (log, metres), then per model the PCA of
    hidden state `layer` at its visual tokens. models: {name: HF folder or GeoVR checkpoint};
    video: a `probe_data.ProbeVideo`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from ..data.sampling import FrameSampling
    from .inputs import QuestionEncoder
    from .model_io import load_model
    from .probe_data import visual_states

    rows, frames, idx = {}, None, None
    for name, folder in models.items():
        model, tok = load_model(folder, torch.device("cpu"), torch.float32)
        encoder = QuestionEncoder(tok, FrameSampling(max_frames=16), backend="pyav")
        states, idx = visual_states(model, encoder, video, [layer])
        rows[name] = pca_rgb(states[layer])
        frames = encoder.frames.permute(0, 2, 3, 1).numpy()
    depth = np.load(video.geometry)["depth"][idx]
    show = np.linspace(0, len(idx) - 1, min(columns, len(idx))).round().astype(int)
    n_rows = 2 + len(rows)
    fig, axes = plt.subplots(n_rows, len(show), figsize=(2.4 * len(show), 1.9 * n_rows), squeeze=False)
    log_depth = np.log(np.clip(depth, 1e-3, None))
    for j, t in enumerate(show):
        axes[0, j].imshow(frames[t])
        axes[0, j].set_title(f"frame {idx[t]}", fontsize=8)
        axes[1, j].imshow(log_depth[t], cmap="viridis", vmin=log_depth.min(), vmax=log_depth.max())
        for i, (name, rgb) in enumerate(rows.items()):
            axes[2 + i, j].imshow(rgb[t], interpolation="nearest")
    labels = ["frame", "depth (log m)"] + [f"{n}\nPCA @{layer}" for n in rows]
    for i, label in enumerate(labels):
        axes[i, 0].set_ylabel(label, fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{video.name}: first three principal components of hidden state {layer} as RGB", fontsize=9)
    return save_figure(fig, path)
