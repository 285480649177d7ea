"""Sample quality and memorisation: FID/KID, precision/recall, the digit judge, nearest neighbours.

All images are float arrays `(N, H, W, C)` with pixel values in [-1, 1], as
the generators produce them. A *feature function* maps such a batch to a
2-D array `(N, D)` of features: build one from any Keras model and layer with
`feature_model`, or use `inception_features()` for the usual FID/KID
(InceptionV3 pool features; the ImageNet weights must be downloadable or
given as a file).

Example:

```python
from dcgan_keras.metrics import evaluate_digits, fid, inception_features

report = evaluate_digits(load_generator("saved_models/digits/1"), num=1000)
score = fid(real_images, generator, inception_features(), num=10_000)
```
"""

from __future__ import annotations

import math
import os
import warnings
from typing import Callable, NamedTuple

import numpy as np
from scipy import linalg

import keras
import tensorflow as tf

from dcgan_keras import judge as _judge
from dcgan_keras.data import load_digits, preprocess
from dcgan_keras.images import image_grid, save_png
from dcgan_keras.sampling import batched_forward, latent_size, latent_vectors

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


# -- feature functions --------------------------------------------------------


def _adapt_images(images, input_shape) -> tf.Tensor:
    """Resizes images and converts channels to a model's input shape `(H, W, C)`."""
    x = tf.convert_to_tensor(np.asarray(images, dtype="float32"))
    height, width, channels = input_shape[-3:]
    if height is not None and width is not None and tuple(x.shape[1:3]) != (height, width):
        x = tf.image.resize(x, (height, width), method="bilinear")
    if channels is not None and x.shape[-1] != channels:
        if x.shape[-1] == 1 and channels == 3:
            x = tf.image.grayscale_to_rgb(x)
        elif x.shape[-1] == 3 and channels == 1:
            x = tf.reduce_mean(x, axis=-1, keepdims=True)
        else:
            raise ValueError(f"Cannot convert {x.shape[-1]}-channel images to {channels} channels.")
    return x


def feature_model(
    model: keras.Model,
    layer_name: str | None = None,
    preprocess_fn: Callable | None = None,
    batch_size: int = 256,
) -> FeatureFn:
    """A feature function from any Keras model: images in [-1, 1] -> `(N, D)` float64 features.

    Args:
        model: a built Keras model taking images.
        layer_name: the layer whose output are the features (default: the
            model's output).
        preprocess_fn: applied to the images (after resizing to the model's
            input size and converting channels), e.g. an application's
            `preprocess_input`.
        batch_size: images per forward pass.
    """
    if layer_name is not None:
        try:
            layer = model.get_layer(layer_name)
        except ValueError as error:
            names = [layer.name for layer in model.layers]
            raise ValueError(f"Model {model.name!r} has no layer {layer_name!r}; its layers are {names}.") from error
        model = keras.Model(model.inputs, layer.output)
    input_shape = tuple(model.inputs[0].shape)

    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, training=False)

    def features(images) -> np.ndarray:
        images = np.asarray(images, dtype="float32")
        out = []
        for start in range(0, len(images), batch_size):
            x = _adapt_images(images[start : start + batch_size], input_shape)
            if preprocess_fn is not None:
                x = preprocess_fn(x)
            out.append(np.asarray(forward(x), dtype="float64").reshape(len(x), -1))
        return np.concatenate(out) if out else np.zeros((0, 0))

    return features


def inception_features(weights="imagenet", batch_size: int = 64) -> FeatureFn:
    """The standard FID/KID feature function: InceptionV3's 2048 average-pool features.

    Images in [-1, 1] are resized to 299x299 (grayscale repeated to RGB)
    and passed through `keras.applications.inception_v3.preprocess_input`.

    Args:
        weights: `"imagenet"` (downloaded on first use to `~/.keras/models`)
            or the path of a weights file
            (`inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`).

    Raises:
        RuntimeError: when the weights can be neither found nor downloaded.
    """
    try:
        model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=weights, input_shape=(299, 299, 3)
        )
    except Exception as error:  # URL errors, missing files: all mean "no weights"
        raise RuntimeError(
            f"Could not load the InceptionV3 weights ({type(error).__name__}: {error}). "
            "The ImageNet weights are downloaded on first use, which needs network access. "
            "Offline, download 'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5' "
            "(from https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/) "
            "on a connected machine and pass its path: inception_features(weights=PATH), "
            "or copy it to ~/.keras/models/. Or use another feature model, e.g. "
            "feature_model(model, layer_name) (for digits: the offline judge, see digit_judge_report)."
        ) from error

    def preprocess_fn(x):
        return keras.applications.inception_v3.preprocess_input((x + 1.0) * 127.5)

    return feature_model(model, preprocess_fn=preprocess_fn, batch_size=batch_size)


# -- images from any source ------------------------------------------------------


def _is_generator(source) -> bool:
    return hasattr(source, "predict") and (
        hasattr(source, "latent_dim") or hasattr(source, "sampler") or hasattr(source, "input_shape")
    )


def sample_images(generator, num: int = 1000, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """`num` images in [-1, 1] from a DCGAN, a Keras generator or a `SavedModelGenerator`.

    The noise is `latent_vectors(num, latent_dim, seed)`, as `DCGAN.noise`,
    so the same seed gives the same images from any of them.
    """
    return np.concatenate(list(_sample_batches(generator, num, seed, batch_size)))


def _sample_batches(generator, num, seed, batch_size):
    if num < 1:
        raise ValueError(f"num must be a positive integer. Received: num={num}")
    generator = getattr(generator, "sampler", generator)
    z = latent_vectors(num, latent_size(generator), seed)
    for start in range(0, num, batch_size):
        yield batched_forward(generator, z[start : start + batch_size], batch_size)


def iter_image_batches(source, batch_size: int = 256, num: int | None = None, seed: int = 0):
    """Yields float32 batches in [-1, 1] from an array, a `tf.data.Dataset`, a generator or an iterable.

    Args:
        source: images `(N, H, W, C)`; a dataset of batches (or of `(images,
            labels)`); a DCGAN/generator/`SavedModelGenerator` (sampled with
            `seed`; `num` defaults to 1000); or any iterable of batches.
        num: stop after this many images (all of the source when `None`).
    """
    if _is_generator(source):
        yield from _sample_batches(source, 1000 if num is None else num, seed, batch_size)
        return
    if isinstance(source, (np.ndarray, tf.Tensor)) or (
        isinstance(source, (list, tuple)) and len(source) and np.ndim(source[0]) == 3
    ):
        images = np.asarray(source, dtype="float32")
        images = images[:num] if num is not None else images
        for start in range(0, len(images), batch_size):
            yield images[start : start + batch_size]
        return
    seen = 0
    for batch in source:
        if isinstance(batch, (tuple, list)):
            batch = batch[0]
        batch = np.asarray(batch, dtype="float32")
        if num is not None:
            batch = batch[: num - seen]
        if len(batch):
            yield batch
        seen += len(batch)
        if num is not None and seen >= num:
            return


def collect_images(source, num: int | None = None, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """All images of a source (see `iter_image_batches`) in one array."""
    return np.concatenate(list(iter_image_batches(source, batch_size, num, seed)))


def compute_stats(source, feature_fn: FeatureFn, batch_size: int = 256, num: int | None = None, seed: int = 0) -> FeatureStats:
    """Streams a source's images (array, dataset, generator; see `iter_image_batches`) into `FeatureStats`."""
    stats = FeatureStats()
    for batch in iter_image_batches(source, batch_size, num, seed):
        stats.update(feature_fn(batch))
    if stats.count < 2:
        raise ValueError(f"The source gave {stats.count} image(s); statistics need at least 2.")
    return stats


def compute_features(source, feature_fn: FeatureFn, batch_size: int = 256, num: int | None = None, seed: int = 0) -> np.ndarray:
    """All features `(N, D)` of a source (for KID and precision/recall, which need them all)."""
    return np.concatenate([feature_fn(b) for b in iter_image_batches(source, batch_size, num, seed)])


def fid(real, fake, feature_fn: FeatureFn, batch_size: int = 256, num: int | None = None, seed: int = 0) -> float:
    """Fréchet distance between the features of two image sources (FID with `inception_features()`).

    `real`/`fake` may be arrays, datasets or generators (see `iter_image_batches`);
    `num` caps the images taken from each (generators: 1000 when `None`).
    """
    a = real if isinstance(real, FeatureStats) else compute_stats(real, feature_fn, batch_size, num, seed)
    b = fake if isinstance(fake, FeatureStats) else compute_stats(fake, feature_fn, batch_size, num, seed)
    return frechet_distance(a.mean, a.cov, b.mean, b.cov)


def frechet_metric(real, feature_fn: FeatureFn, batch_size: int = 256) -> Callable[[np.ndarray], float]:
    """A function images -> Fréchet distance to `real`, whose statistics are computed once (for callbacks)."""
    reference = compute_stats(real, feature_fn, batch_size)

    def metric(images) -> float:
        return fid(reference, images, feature_fn, batch_size)

    return metric


# -- the digit judge ----------------------------------------------------------------


def real_digits(image_size: int = 32) -> np.ndarray:
    """The 5,000 bundled digits, preprocessed to `image_size` (float32 in [-1, 1], one channel)."""
    images, _ = load_digits()
    return preprocess(images[..., None], image_size, 1).numpy()


def _to_gray(images: np.ndarray) -> np.ndarray:
    return images.mean(axis=-1, keepdims=True) if images.shape[-1] == 3 else images


def judge_context(image_size: int = 32):
    """`(classifier, accuracy, feature_fn)`: the judge and its penultimate-layer ("features") feature function."""
    classifier, accuracy = _judge.load_digit_classifier(image_size)
    return classifier, accuracy, feature_model(classifier, "features")


def digit_judge_report(generator_or_images, num: int = 1000, seed: int = 0, context=None) -> dict:
    """Judges generated digits against the bundled real ones.

    Args:
        generator_or_images: a generator (sampled `num` times with `seed`) or images in [-1, 1].
        num: images to sample from a generator.
        seed: seed of the noise.
        context: `judge_context(image_size)`'s result, to reuse a loaded judge.

    Returns:
        `judge_accuracy` (the judge's held-out accuracy), `digit_fd` (Fréchet
        distance on the judge's 128 "features" between the samples and all
        5,000 real digits) and `digit_scores`' entries (`classifier_score`,
        `coverage`, `class_shares`, ...).
    """
    images = _images_of(generator_or_images, num, seed)
    classifier, accuracy, feature_fn = context or judge_context(images.shape[1])
    real_stats = compute_stats(real_digits(images.shape[1]), feature_fn)
    fake_stats = compute_stats(images, feature_fn)
    report = {"judge_accuracy": float(accuracy), "num_images": int(len(images))}
    report["digit_fd"] = frechet_distance(real_stats.mean, real_stats.cov, fake_stats.mean, fake_stats.cov)
    report.update(_judge.digit_scores(classifier, images))
    return report


def _images_of(generator_or_images, num, seed) -> np.ndarray:
    if _is_generator(generator_or_images):
        images = sample_images(generator_or_images, num, seed)
    else:
        images = np.asarray(generator_or_images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"Expected images of shape (N, H, W, C). Received: shape {images.shape}")
    return _to_gray(images)


def evaluate_digits(generator_or_images, num: int = 1000, seed: int = 0, k: int = 3, context=None) -> dict:
    """Everything `evaluate` prints for digits: `digit_judge_report`, precision/recall, memorisation.

    Precision and recall (k-NN, `k`) are in the judge's feature space against
    `num` random real digits; the memorisation ratio is in pixel space
    against all 5,000 bundled (training) digits.
    """
    images = _images_of(generator_or_images, num, seed)
    context = context or judge_context(images.shape[1])
    report = digit_judge_report(images, context=context)
    feature_fn = context[2]
    train = real_digits(images.shape[1])
    chosen = np.random.default_rng(seed).choice(len(train), min(len(images), len(train)), replace=False)
    k = min(k, len(images) - 1, len(chosen) - 1)
    report.update(precision_recall(feature_fn(train[chosen]), feature_fn(images), k=k))
    report["memorisation_ratio"] = memorisation_ratio(images, train, seed=seed)
    return report


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


# -- training callback --------------------------------------------------------------------


class EvaluationCallback(keras.callbacks.Callback):
    """Scores the model's samples from fixed noise every `every` epochs and logs the score.

    The score goes into the epoch's `logs` under `name` (so it appears in
    `History` and in a `CSVLogger` listed after this callback); on epochs
    without evaluation it is NaN, so the columns stay the same. A metric
    returning a dict logs `name_KEY` for each numeric entry.

    Args:
        metric_fn: images in [-1, 1] -> float (or dict of floats), e.g.
            `frechet_metric(real_images, feature_fn)`.
        name: the log key.
        every: evaluate every this many epochs (and after the last one).
        num_images: samples per evaluation.
        seed: seed of the fixed noise.
        log_dir: if given, also writes TensorBoard scalars there.

    Example:

    ```python
    fd = frechet_metric(real, feature_model(classifier, "features"))
    gan.fit(ds, epochs=25, callbacks=[EvaluationCallback(fd, "digit_fd", every=5), CSVLogger("log.csv")])
    ```
    """

    def __init__(self, metric_fn, name: str = "eval", every: int = 1, num_images: int = 1000,
                 seed: int = 0, log_dir=None, batch_size: int = 256):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be a positive number of epochs. Received: every={every}")
        if num_images < 2:
            raise ValueError(f"num_images must be at least 2. Received: num_images={num_images}")
        self.metric_fn = metric_fn
        self.name = name
        self.every = every
        self.num_images = num_images
        self.seed = seed
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.batch_size = batch_size
        self.noise = None
        self.history: list[tuple[int, dict]] = []  # (epoch, counted from 1; the values)
        self._keys: list[str] = [name]
        self._writer = None

    def on_train_begin(self, logs=None):
        if self.noise is None:
            self.noise = latent_vectors(self.num_images, latent_size(self.model), self.seed)

    def _samples(self) -> np.ndarray:
        return batched_forward(getattr(self.model, "sampler", self.model), self.noise, self.batch_size)

    def evaluate(self) -> dict:
        """Scores the current samples now; returns `{log key: value}`."""
        value = self.metric_fn(self._samples())
        if isinstance(value, dict):
            return {f"{self.name}_{k}": float(v) for k, v in value.items() if isinstance(v, (int, float, np.number))}
        return {self.name: float(value)}

    def on_epoch_end(self, epoch, logs=None):
        last = self.params.get("epochs") if self.params else None
        if logs is None:
            logs = {}
        if (epoch + 1) % self.every and (last is None or epoch + 1 != last):
            for key in self._keys:
                logs[key] = math.nan
            return
        values = self.evaluate()
        self._keys = list(values)
        logs.update(values)
        self.history.append((epoch + 1, values))
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for key, value in values.items():
                    tf.summary.scalar(key, value, step=epoch + 1)
            self._writer.flush()
