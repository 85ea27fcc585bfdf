"""Closed-form ridge regression for linear probes, with the penalty chosen by generalised
cross-validation and scores from grouped (per-video) K-fold cross-validation.

Features are standardised and targets centred on the training fold. With the eigendecomposition
X^T X = V diag(s) V^T and Z = V^T X^T Y, every quantity GCV needs is closed form in D x D terms:
    W(lam) = V diag(1 / (s + lam)) Z,      df(lam) = sum s / (s + lam),
    RSS(lam) = |Y|^2 - 2 sum |Z_i|^2 / (s_i + lam) + sum s_i |Z_i|^2 / (s_i + lam)^2,
    GCV(lam) = N RSS / (N - df)^2,
so the fit costs one D x D eigendecomposition per fold however many rows there are. When the rows
come in groups (videos) and the training part holds at least 3 of them, the penalty is instead the
one with the lowest error under an inner grouped K-fold split: GCV assumes independent rows and,
with fewer rows than features (a per-video probe on a few videos), picks a near-zero penalty.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LAMBDAS = tuple(10.0 ** k for k in range(-3, 7))  # relative to the mean eigenvalue (scale-free)


@dataclass
class RidgeFit:
    """weights [D, K], bias [K] in the original units; lam: the chosen penalty (absolute);
    penalty: the same relative to the mean eigenvalue of the standardised Gram matrix (one of
    `LAMBDAS`: 1e-3 barely regularises, 1e6 predicts the training mean)."""

    weights: np.ndarray
    bias: np.ndarray
    lam: float
    penalty: float = float("nan")

    def predict(self, x: np.ndarray) -> np.ndarray:
        return x @ self.weights + self.bias


def _solve(xs: np.ndarray, yc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(eigenvalues s [D], eigenvectors V [D, D], Z = V^T X^T Y [D, K]) of standardised xs."""
    s, v = np.linalg.eigh(xs.T @ xs)
    return np.clip(s, 0.0, None), v, v.T @ (xs.T @ yc)


def _gcv_penalty(n: int, s: np.ndarray, z: np.ndarray, yy: float, lambdas) -> float:
    z2 = (z ** 2).sum(1)
    best = None
    for lam in lambdas:
        rss = yy - 2 * float((z2 / (s + lam)).sum()) + float((s * z2 / (s + lam) ** 2).sum())
        df = float((s / (s + lam)).sum())
        gcv = n * max(rss, 0.0) / max(n - df, 1e-9) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, lam)
    return best[1]


def _grouped_penalty(xs: np.ndarray, yc: np.ndarray, groups: np.ndarray, lambdas, folds: int, seed: int) -> float:
    fold = group_folds(groups, folds, seed + 1)
    err = np.zeros(len(lambdas))
    for f in range(fold.max() + 1):
        test = fold == f
        xt, yt = xs[~test], yc[~test]
        mt = yt.mean(0)
        s, v, z = _solve(xt, yt - mt)
        proj = xs[test] @ v  # [n_test, D]
        for j, lam in enumerate(lambdas):
            err[j] += float(((proj @ (z / (s + lam)[:, None]) + mt - yc[test]) ** 2).sum())
    return float(lambdas[int(np.argmin(err))])


def fit_ridge(x: np.ndarray, y: np.ndarray, lambdas: tuple[float, ...] = LAMBDAS, groups: np.ndarray | None = None,
              folds: int = 5, seed: int = 0) -> RidgeFit:
    """x [N, D], y [N, K] (or [N]) -> the ridge fit whose penalty minimises GCV, or, with `groups`
    holding >= 3 distinct values, the inner grouped cross-validation error. The penalties are
    multiples of the mean eigenvalue of the standardised Gram matrix."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    if n < 2:
        raise ValueError(f"a probe needs at least 2 training rows, got {n}")
    mu, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    xs = (x - mu) / sd
    ym = y.mean(0)
    yc = y - ym
    s, v, z = _solve(xs, yc)
    unit = max(float(s.mean()), 1e-12)
    absolute = [rel * unit for rel in lambdas]
    if groups is not None and len(np.unique(groups)) >= 3:
        lam = _grouped_penalty(xs, yc, np.asarray(groups), absolute, folds, seed)
    else:
        lam = _gcv_penalty(n, s, z, float((yc ** 2).sum()), absolute)
    w_std = v @ (z / (s + lam)[:, None])  # [D, K] on standardised features
    w = w_std / sd[:, None]
    return RidgeFit(w, ym - mu @ w, lam, lam / unit)


def r2_score(y: np.ndarray, pred: np.ndarray) -> tuple[float, np.ndarray]:
    """(pooled R^2 over all target columns, per-column R^2 [K]): 1 - SSE / SST around the mean.
    A column without variance gets NaN."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(y), -1)
    sse = ((y - pred) ** 2).sum(0)
    sst = ((y - y.mean(0)) ** 2).sum(0)
    per = np.where(sst > 0, 1 - sse / np.where(sst > 0, sst, 1), np.nan)
    pooled = 1 - sse.sum() / sst.sum() if sst.sum() > 0 else float("nan")
    return float(pooled), per


def group_folds(groups: np.ndarray, folds: int, seed: int = 0) -> np.ndarray:
    """A fold number per row such that all rows of a group (a video) share a fold."""
    uniq = np.unique(groups)
    if len(uniq) < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 videos, got {len(uniq)}")
    k = min(folds, len(uniq))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of = {g: int(i % k) for i, g in zip(range(len(uniq)), uniq[order])}
    return np.array([fold_of[g] for g in groups])


@dataclass
class ProbeScore:
    """Out-of-fold predictions [N, K] for every row, the pooled and per-column R^2, the penalty
    chosen in each fold (absolute, and relative as `RidgeFit.penalty`), and train_r2: the mean
    over folds of the R^2 on the fold's own training rows. Train far above out-of-fold means the
    probe overfits; both near 0 means nothing linear is there (or the rows are mis-assigned)."""

    pred: np.ndarray
    r2: float
    r2_per_target: np.ndarray
    lambdas: list[float]
    train_r2: float = float("nan")
    penalties: list[float] = field(default_factory=list)

    @property
    def penalty(self) -> float:
        """The median relative penalty over the folds."""
        return float(np.median(self.penalties)) if self.penalties else float("nan")


def cross_validate(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0) -> ProbeScore:
    """Grouped K-fold ridge probe: each video's rows are predicted by a probe fitted on other videos
    (its penalty chosen by an inner grouped split of those videos)."""
    y2 = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    fold = group_folds(np.asarray(groups), folds, seed)
    pred = np.zeros_like(y2)
    lams, rels, train = [], [], []
    for f in range(fold.max() + 1):
        test = fold == f
        fit = fit_ridge(x[~test], y2[~test], groups=np.asarray(groups)[~test], folds=folds, seed=seed)
        pred[test] = fit.predict(np.asarray(x[test], dtype=np.float64))
        train.append(r2_score(y2[~test], fit.predict(np.asarray(x[~test], dtype=np.float64)))[0])
        lams.append(fit.lam)
        rels.append(fit.penalty)
    r2, per = r2_score(y2, pred)
    return ProbeScore(pred, r2, per, lams, float(np.mean(train)), rels)
