"""An offline judge for the bundled digits: a small classifier, its scores, and
its report on generated digits (Fréchet distance in its feature space,
precision/recall, memorisation)."""

from __future__ import annotations

import os
import sys

import numpy as np

import keras

from dcgan_keras.data import load_digits, preprocess
from dcgan_keras.distances import frechet_distance, memorisation_ratio, precision_recall
from dcgan_keras.epoch_log import EpochLog
from dcgan_keras.checkpoints import load_checkpoint
from dcgan_keras.files import atomic_path, atomic_write_text
from dcgan_keras.metrics import compute_stats, feature_model, is_generator, sample_images
from dcgan_keras.sampling import batched_forward

CACHE_ENV = "DCGAN_KERAS_CACHE"  # the variable that moves the judge's cache


def default_cache_dir() -> str:
    """Where the judge is cached: `$DCGAN_KERAS_CACHE`, else `~/.cache/dcgan_keras`."""
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "dcgan_keras")


def _classifier(image_size: int) -> keras.Model:
    return keras.Sequential([
        keras.Input((image_size, image_size, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(128, activation="relu", name="features"),
        keras.layers.Dense(10),
    ], name="digit_judge")


def train_digit_classifier(image_size: int = 32, epochs: int = 15, held_out: int = 1000, seed: int = 0):
    """Trains the judge on the bundled digits; the last `held_out` of a seeded shuffle are the test split.

    Returns:
        `(model, test_accuracy)`; the model maps images in [-1, 1] to 10 logits.
    """
    images, labels = load_digits()
    order = np.random.default_rng(seed).permutation(len(images))
    x = preprocess(images[order][..., None], image_size, 1).numpy()
    y = labels[order].astype("int32")
    keras.utils.set_random_seed(seed)
    model = _classifier(image_size)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(x[:-held_out], y[:-held_out], batch_size=64, epochs=epochs, verbose=0,
              callbacks=[EpochLog(stream=sys.stderr, prefix="digit judge: ")])  # a line per epoch on stderr
    _, accuracy = model.evaluate(x[-held_out:], y[-held_out:], verbose=0)
    return model, float(accuracy)


def load_digit_classifier(image_size: int = 32, cache_dir: str | None = "default"):
    """The judge, trained on first use and cached.

    Args:
        image_size: side of the images it judges.
        cache_dir: the cache folder: "default" for `default_cache_dir()`, or
            `None` for no cache.

    Returns:
        `(model, test_accuracy)`.
    """
    return cached_classifier(f"digit_judge_v2_{image_size}.keras", lambda: train_digit_classifier(image_size), cache_dir)


def cached_classifier(filename: str, train_fn, cache_dir: str | None = "default"):
    """`train_fn()`'s `(model, test_accuracy)`, trained on first use and cached as `cache_dir/filename`.

    Args:
        filename: the cached model's file name (a `.keras` file; its accuracy goes beside it).
        train_fn: a function of no arguments that trains the classifier.
        cache_dir: "default" for `default_cache_dir()`, or `None` for no cache.
    """
    cache_dir = default_cache_dir() if cache_dir == "default" else cache_dir
    path = os.path.join(cache_dir, filename) if cache_dir else None
    if path and os.path.exists(path) and os.path.exists(path + ".accuracy"):
        with open(path + ".accuracy") as f:
            return load_checkpoint(path), float(f.read())
    # The first use trains for a minute or more: say so on stderr (stdout may be a --json report).
    kept = f"; it is kept in {cache_dir} for next time" if path else ""
    print(f"Training the judge {filename} on first use{kept}.", file=sys.stderr, flush=True)
    model, accuracy = train_fn()
    if path:
        with atomic_path(path) as tmp:
            model.save(tmp)
        atomic_write_text(path + ".accuracy", str(accuracy))
    return model, accuracy


def digit_scores(classifier: keras.Model, images, confident: float = 0.9) -> dict:
    """How digit-like a batch of images in [-1, 1] is, by the judge.

    Returns:
        - `mean_confidence`: mean of max p(y|x);
        - `confident_fraction`: share of images with max p(y|x) >= `confident`;
        - `classifier_score`: exp(E_x KL(p(y|x) || p(y))), 1 (worst) to 10 (best);
        - `class_shares`: share of images predicted as each digit 0..9;
        - `coverage`: number of digits with at least 2% of the images.
    """
    logits = batched_forward(classifier, images)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    marginal = p.mean(axis=0)
    kl = np.sum(p * (np.log(p + 1e-12) - np.log(marginal + 1e-12)), axis=1)
    shares = np.bincount(p.argmax(axis=1), minlength=10) / len(p)
    return {
        "mean_confidence": float(p.max(axis=1).mean()),
        "confident_fraction": float((p.max(axis=1) >= confident).mean()),
        "classifier_score": float(np.exp(kl.mean())),
        "class_shares": [round(float(s), 4) for s in shares],
        "coverage": int((shares >= 0.02).sum()),
    }


# -- the judge's report on generated digits ---------------------------------------------


def real_digits(image_size: int = 32) -> np.ndarray:
    """The 5,000 bundled digits, preprocessed to `image_size` (float32 in [-1, 1], one channel)."""
    images, _ = load_digits()
    return preprocess(images[..., None], image_size, 1).numpy()


def _to_gray(images: np.ndarray) -> np.ndarray:
    return images.mean(axis=-1, keepdims=True) if images.shape[-1] == 3 else images


def judge_context(image_size: int = 32):
    """`(classifier, accuracy, feature_fn)`: the judge and its penultimate-layer ("features") feature function."""
    classifier, accuracy = load_digit_classifier(image_size)
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
    report.update(digit_scores(classifier, images))
    return report


def _images_of(generator_or_images, num, seed) -> np.ndarray:
    if is_generator(generator_or_images):
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
