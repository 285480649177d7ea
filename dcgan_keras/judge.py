"""An offline judge for the bundled digits: a small classifier and its scores."""

from __future__ import annotations

import os

import numpy as np

import keras

from dcgan_keras.data import load_digits, preprocess
from dcgan_keras.export import load_checkpoint
from dcgan_keras.files import atomic_path, atomic_write_text
from dcgan_keras.sampling import batched_forward

DEFAULT_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "dcgan_keras")


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
    model.fit(x[:-held_out], y[:-held_out], batch_size=64, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x[-held_out:], y[-held_out:], verbose=0)
    return model, float(accuracy)


def load_digit_classifier(image_size: int = 32, cache_dir: str | None = DEFAULT_CACHE):
    """The judge, trained on first use and cached in `cache_dir` (`None`: no cache).

    Returns:
        `(model, test_accuracy)`.
    """
    path = os.path.join(cache_dir, f"digit_judge_v2_{image_size}.keras") if cache_dir else None
    if path and os.path.exists(path) and os.path.exists(path + ".accuracy"):
        with open(path + ".accuracy") as f:
            return load_checkpoint(path), float(f.read())
    model, accuracy = train_digit_classifier(image_size)
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
