"""Sample quality of a generator: feature functions, images from any source, FID.

All images are float arrays `(N, H, W, C)` with pixel values in [-1, 1], as
the generators produce them. A *feature function* maps such a batch to a
2-D array `(N, D)` of features: build one from any Keras model and layer with
`feature_model`, or use `inception_features()` for the usual FID/KID
(InceptionV3 pool features; the ImageNet weights must be downloadable or
given as a file). The distances themselves are in `distances`; the digit
judge's report in `judge`; the training callback in `callbacks`.

Example:

```python
from dcgan_keras.metrics import fid, inception_features

score = fid(real_images, generator, inception_features(), num=10_000)
```
"""

from __future__ import annotations

from typing import Callable

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras.distances import FeatureFn, FeatureStats, frechet_distance
from dcgan_keras.sampling import batched_forward, latent_vectors_for


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


def is_generator(source) -> bool:
    """Whether `source` is a generator (a DCGAN, a Keras generator, a SavedModelGenerator), not images."""
    return hasattr(source, "predict") and (
        hasattr(source, "latent_dim") or hasattr(source, "sampler") or hasattr(source, "input_shape")
    )


def sample_images(generator, num: int = 1000, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """`num` images in [-1, 1] from a DCGAN, a Keras generator or a `SavedModelGenerator`.

    The noise is `latent_vectors_for(generator, num, seed)`: the generator's
    prior, as `DCGAN.noise`, so the same seed gives the same images from any
    of them.
    """
    return np.concatenate(list(_sample_batches(generator, num, seed, batch_size)))


def _sample_batches(generator, num, seed, batch_size):
    if num < 1:
        raise ValueError(f"num must be a positive integer. Received: num={num}")
    generator = getattr(generator, "sampler", generator)
    z = latent_vectors_for(generator, num, seed)
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
    if is_generator(source):
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


def discriminator_features(discriminator: keras.Model, batch_size: int = 256) -> FeatureFn:
    """Features of a DCGAN discriminator: its last convolutional block, averaged over positions.

    The feature network of last resort (no judge, no Inception weights): it
    follows the discriminator's weights as they train, so distances measured
    with it compare epochs of one run only.
    """
    last = [layer for layer in discriminator.layers if isinstance(layer, keras.layers.LeakyReLU)][-1]
    pooled = keras.layers.GlobalAveragePooling2D(dtype="float32")(last.output)
    return feature_model(keras.Model(discriminator.inputs, pooled), batch_size=batch_size)


def frechet_metric(real, feature_fn: FeatureFn, batch_size: int = 256) -> Callable[[np.ndarray], float]:
    """A function images -> Fréchet distance to `real`, whose statistics are computed once (for callbacks)."""
    reference = compute_stats(real, feature_fn, batch_size)

    def metric(images) -> float:
        return fid(reference, images, feature_fn, batch_size)

    return metric
