"""The PCA picture: components recovered on planted states, and the figure from a real model."""
import numpy as np

from geovr.eval.pca_picture import pca_figure, pca_rgb


def test_pca_rgb_recovers_the_planted_directions():
    """States spanned by three known directions (plus small noise): each output channel is one
    component, so it is an affine function of one planted coordinate (up to sign and order)."""
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(500, 3)) * [5.0, 3.0, 1.5]
    basis = np.linalg.qr(rng.normal(size=(32, 3)))[0].T  # [3, 32], orthonormal
    states = (coords @ basis + 0.01 * rng.normal(size=(500, 32))).reshape(5, 10, 10, 32)
    rgb = pca_rgb(states)
    assert rgb.shape == (5, 10, 10, 3) and rgb.min() >= 0 and rgb.max() <= 1
    flat = rgb.reshape(500, 3)
    inside = (flat > 0.01).all(1) & (flat < 0.99).all(1)  # away from the percentile clip
    for c in range(3):  # channel c follows coordinate c (largest variance first)
        corr = np.corrcoef(flat[inside, c], coords[inside, c])[0, 1]
        assert abs(corr) > 0.99, (c, corr)


def test_pca_figure_from_the_tiny_model(tiny_model_dir, tmp_path):
    from geovr.data.synthetic import WorldConfig, generate
    from geovr.eval.probe_data import find_probe_videos

    generate(tmp_path / "w", scenes=1, seed=2, cfg=WorldConfig(height=96, width=128, fps=4.0, seconds=3.0),
             progress=False)
    video = find_probe_videos(str(tmp_path / "w"))[0]
    out = pca_figure({"a": tiny_model_dir, "b": tiny_model_dir}, video, 1, tmp_path / "pca.png", columns=3)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not list(tmp_path.glob("*.part.png"))
