"""Distances between sets of images or their features: Fréchet distance, KID,
precision/recall, nearest neighbours and memorisation.

Everything here takes NumPy arrays and returns numbers or arrays: features
`(N, D)` (or images, compared pixel by pixel, or through a *feature function*
that maps images in [-1, 1] to features, see `metrics.feature_model`).

Example:

```python
from dcgan_keras.distances import FeatureStats, frechet_distance, precision_recall

real, fake = FeatureStats().update(real_features), FeatureStats().update(fake_features)
frechet_distance(real.mean, real.cov, fake.mean, fake.cov)
precision_recall(real_features, fake_features, k=3)  # {"precision": ..., "recall": ...}
```
"""

from __future__ import annotations

import warnings
from typing import Callable, NamedTuple

import numpy as np
from scipy import linalg

from dcgan_keras.images import image_grid, save_png

FeatureFn = Callable[[np.ndarray], np.ndarray]


# -- streaming statistics ---------------------------------------------------


class FeatureStats:
    """Streaming mean and covariance of feature vectors, batch by batch.

    Keeps float64 sums of x and of x x^T (shifted by the first batch's mean
    for accuracy), never the features themselves, so memory is O(D^2)
    whatever the number of images.

    Example:

    ```python
    stats = FeatureStats()
    for batch in batches:
        stats.update(feature_fn(batch))
    mu, sigma = stats.mean, stats.cov
    ```
    """

    def __init__(self):
        self.count = 0
        self._shift = None
        self._sum = None
        self._outer = None

    def update(self, features) -> "FeatureStats":
        """Adds a batch `(N, D)` of feature vectors (more dimensions are flattened)."""
        x = np.asarray(features, dtype="float64")
        x = x.reshape(len(x), -1) if x.ndim != 2 else x
        if len(x) == 0:
            return self
        if self._shift is None:
            self._shift = x.mean(axis=0)
            dim = x.shape[1]
            self._sum = np.zeros(dim)
            self._outer = np.zeros((dim, dim))
        elif x.shape[1] != len(self._shift):
            raise ValueError(
                f"Feature size changed between batches: {len(self._shift)} then {x.shape[1]}."
            )
        x = x - self._shift
        self._sum += x.sum(axis=0)
        self._outer += x.T @ x
        self.count += len(x)
        return self

    @property
    def dim(self) -> int | None:
        return None if self._shift is None else len(self._shift)

    @property
    def mean(self) -> np.ndarray:
        self._check(1)
        return self._shift + self._sum / self.count

    @property
    def cov(self) -> np.ndarray:
        """The unbiased covariance (as `np.cov(x, rowvar=False)`)."""
        self._check(2)
        centred_mean = self._sum / self.count
        return (self._outer - self.count * np.outer(centred_mean, centred_mean)) / (self.count - 1)

    def _check(self, least):
        if self.count < least:
            raise ValueError(f"FeatureStats needs at least {least} feature vectors; it has {self.count}.")


# -- distances between feature distributions ---------------------------------


def frechet_distance(mu1, cov1, mu2, cov2, eps: float = 1e-6) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2) (FID on Inception features).

    d^2 = |mu1 - mu2|^2 + Tr(cov1 + cov2 - 2 (cov1 cov2)^(1/2)), computed as in
    the FID reference code: when the product is singular, `eps` is added to
    both diagonals; tiny imaginary parts of the square root are dropped.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, "float64")), np.atleast_1d(np.asarray(mu2, "float64"))
    cov1, cov2 = np.atleast_2d(np.asarray(cov1, "float64")), np.atleast_2d(np.asarray(cov2, "float64"))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape or cov1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            "Means and covariances must have matching shapes (D,) and (D, D). Received: "
            f"mu1 {mu1.shape}, cov1 {cov1.shape}, mu2 {mu2.shape}, cov2 {cov2.shape}"
        )
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
    if not np.isfinite(covmean).all() or (
        np.iscomplexobj(covmean) and not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3)
    ):
        offset = np.eye(len(mu1)) * eps
        covmean = linalg.sqrtm((cov1 + offset) @ (cov2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"The covariance product has a matrix square root with imaginary "
                f"component {np.max(np.abs(covmean.imag)):.3g}; use more images than feature dimensions."
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))


def kernel_inception_distance(f1, f2, num_subsets: int = 10, subset_size: int = 1000, seed: int = 0):
    """Kernel Inception Distance (Bińkowski et al. 2018) between two feature sets.

    The unbiased estimate of MMD^2 with the cubic polynomial kernel
    k(x, y) = (x.y / d + 1)^3, on `num_subsets` random subsets of
    `min(subset_size, len(f1), len(f2))` vectors of each set.

    Returns:
        `(mean, std)` of the subsets' MMD^2 estimates.
    """
    f1, f2 = np.asarray(f1, "float64"), np.asarray(f2, "float64")
    f1, f2 = f1.reshape(len(f1), -1), f2.reshape(len(f2), -1)
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"Feature sizes differ: {f1.shape[1]} and {f2.shape[1]}.")
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set. Received: {len(f1)} and {len(f2)}")
    rng = np.random.default_rng(seed)
    estimates = []
    for _ in range(num_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx = (x @ x.T / d + 1.0) ** 3
        kyy = (y @ y.T / d + 1.0) ** 3
        kxy = (x @ y.T / d + 1.0) ** 3
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        estimates.append(within - 2.0 * kxy.mean())
    return float(np.mean(estimates)), float(np.std(estimates))


def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _knn(queries, points, k: int, exclude_self: bool = False, chunk: int = 1024):
    """Indices and L2 distances `(N, k)` of each query's k nearest points, nearest first."""
    queries = np.asarray(queries, "float64").reshape(len(queries), -1)
    points = np.asarray(points, "float64").reshape(len(points), -1)
    if queries.shape[1] != points.shape[1]:
        raise ValueError(
            f"Queries and points differ in size: {queries.shape[1:]} and {points.shape[1:]} values each."
        )
    limit = len(points) - (1 if exclude_self else 0)
    if not 1 <= k <= limit:
        raise ValueError(f"k must be in [1, {limit}]. Received: k={k}")
    indices = np.empty((len(queries), k), dtype="int64")
    distances = np.empty((len(queries), k))
    for start in range(0, len(queries), chunk):
        d = _sq_distances(queries[start : start + chunk], points)
        if exclude_self:
            rows = np.arange(len(d))
            d[rows, start + rows] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, part, 1), axis=1)
        idx = np.take_along_axis(part, order, 1)
        indices[start : start + chunk] = idx
        distances[start : start + chunk] = np.sqrt(np.take_along_axis(d, idx, 1))
    return indices, distances


def precision_recall(real_features, fake_features, k: int = 3, chunk: int = 1024) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of k-NN manifold estimates.

    Each set's manifold is the union of balls around its points with radius
    the distance to the point's k-th nearest neighbour in the same set.
    Precision: share of fakes inside the real manifold (quality); recall:
    share of reals inside the fake manifold (coverage).

    Returns:
        `{"precision": float, "recall": float}`.
    """
    real = np.asarray(real_features, "float64").reshape(len(real_features), -1)
    fake = np.asarray(fake_features, "float64").reshape(len(fake_features), -1)
    real_radii = _knn(real, real, k, exclude_self=True, chunk=chunk)[1][:, -1]
    fake_radii = _knn(fake, fake, k, exclude_self=True, chunk=chunk)[1][:, -1]

    def inside(queries, points, radii):
        hits = np.zeros(len(queries), dtype=bool)
        for start in range(0, len(queries), chunk):
            d = np.sqrt(_sq_distances(queries[start : start + chunk], points))
            hits[start : start + chunk] = (d <= radii[None, :]).any(axis=1)
        return float(hits.mean())

    return {"precision": inside(fake, real, real_radii), "recall": inside(real, fake, fake_radii)}


# -- nearest neighbours and memorisation -----------------------------------------------


class Neighbours(NamedTuple):
    indices: np.ndarray  # (N, k) indices into the training images, nearest first
    distances: np.ndarray  # (N, k) L2 distances


def nearest_neighbours(samples, train_images, k: int = 3, feature_fn: FeatureFn | None = None) -> Neighbours:
    """Each sample's `k` nearest training images, by pixel L2 or, with `feature_fn`, feature L2.

    Returns:
        `Neighbours(indices, distances)`, both `(len(samples), k)`, nearest first.
    """
    samples, train_images = np.asarray(samples, "float32"), np.asarray(train_images, "float32")
    if feature_fn is not None:
        samples, train_images = feature_fn(samples), feature_fn(train_images)
    return Neighbours(*_knn(samples, train_images, k))


def memorisation_ratio(samples, train, feature_fn: FeatureFn | None = None, num_queries: int | None = None, seed: int = 0) -> float:
    """Mean sample-to-nearest-training distance over mean training-to-nearest-other-training distance.

    About 1 (or above) when samples are as far from the training set as its
    own images are from each other; well below 1 means samples copy
    training images (0: exact copies).

    Args:
        samples, train: images (or, with `feature_fn`, compared in its feature space).
        num_queries: training images whose nearest other one is measured (a
            random subset; default: as many as there are samples).
    """
    samples, train = np.asarray(samples, "float32"), np.asarray(train, "float32")
    if len(train) < 2:
        raise ValueError(f"The training set needs at least 2 images. Received: {len(train)}")
    if feature_fn is not None:
        samples, train = feature_fn(samples), feature_fn(train)
    sample_distance = _knn(samples, train, 1)[1][:, 0].mean()
    num_queries = min(num_queries or len(samples), len(train))
    chosen = np.sort(np.random.default_rng(seed).choice(len(train), num_queries, replace=False))
    train_flat = train.reshape(len(train), -1).astype("float64")
    d = _sq_distances(train_flat[chosen], train_flat)
    d[np.arange(len(chosen)), chosen] = np.inf  # not itself
    train_distance = np.sqrt(d.min(axis=1)).mean()
    if train_distance == 0:
        return float("inf") if sample_distance > 0 else 1.0
    return float(sample_distance / train_distance)


def neighbours_figure(samples, train, idx, path, padding: int = 2) -> str:
    """Writes a PNG with one row per sample: the sample, then its neighbours `train[idx[i]]`.

    Args:
        samples: images `(N, H, W, C)` in [-1, 1].
        train: the training images.
        idx: `(N, k)` indices into `train` (e.g. `nearest_neighbours(...).indices`).
        path: the PNG file.
    """
    samples, train = np.asarray(samples, "float32"), np.asarray(train, "float32")
    idx = np.asarray(idx).reshape(len(samples), -1)
    rows = [np.concatenate([samples[i : i + 1], train[idx[i]]]) for i in range(len(samples))]
    return save_png(image_grid(np.concatenate(rows), rows=len(samples), padding=padding), path)
