"""An offline judge for the bundled Twemoji (64x64 colour): a category classifier, its scores, and
its report on generated emoji beside the same numbers for held-out real emoji."""

from __future__ import annotations

import sys

import numpy as np

import keras

from dcgan_keras.data import load_twemoji, preprocess, twemoji_categories
from dcgan_keras.distances import FeatureStats, frechet_distance, memorisation_ratio, nearest_neighbours, precision_recall
from dcgan_keras.epoch_log import EpochLog
from dcgan_keras.judge import cached_classifier
from dcgan_keras.metrics import feature_model, is_generator, sample_images

IMAGE_SIZE = 64
HELD_OUT = 0.2  # the share of emoji (whole skin-tone groups) the judge never trains on
# Draws of noise `evaluate_twemoji` averages a generator's numbers over. One draw of 672 samples
# gives a noisy Fréchet distance: one generator scored 0.68 to 1.40 over five (docs/quality.md).
DEFAULT_DRAWS = 5


def held_out_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`(train, held_out)` indices of the Twemoji: a seeded 20% of the emoji held out.

    An emoji and its skin-tone variants (`base`) fall on the same side, so no
    held-out image has a near copy on the training side.
    """
    bases = load_twemoji()["base"]
    groups = np.unique(bases)
    chosen = np.random.default_rng(seed).permutation(len(groups))[: int(round(HELD_OUT * len(groups)))]
    held = np.isin(bases, groups[chosen])
    return np.flatnonzero(~held), np.flatnonzero(held)


def real_twemoji() -> tuple[np.ndarray, np.ndarray]:
    """`(images, labels)`: the 3,491 Twemoji in [-1, 1] (float32, 64x64x3) and their category indices."""
    emoji = load_twemoji()
    images = preprocess(emoji["images"], IMAGE_SIZE, 3).numpy()
    return images, np.searchsorted(twemoji_categories(), emoji["category"]).astype("int32")


def convolutional_trunk() -> list:
    """The layers of a small CNN from 64x64x3 images to 128 pooled features (about 20 MFLOP per
    image: it trains in a few minutes on 2 CPU cores). The judge's, and other Twemoji classifiers'."""
    return [
        keras.layers.AveragePooling2D(2),  # 32x32: the category shows at that size
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(128, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
    ]


def _classifier(num_classes: int) -> keras.Model:
    return keras.Sequential([
        keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)), *convolutional_trunk(), keras.layers.Dropout(0.3),
        keras.layers.Dense(128, activation="relu", name="features"), keras.layers.Dense(num_classes),
    ], name="twemoji_judge")


def train_twemoji_classifier(epochs: int = 30, seed: int = 0):
    """Trains the judge on the categories of the training split (`held_out_split`).

    Returns:
        `(model, held_out_accuracy)`; the model maps images in [-1, 1] to one logit per category.
    """
    images, labels = real_twemoji()
    train, held = held_out_split(seed)
    keras.utils.set_random_seed(seed)
    model = _classifier(len(twemoji_categories()))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    model.fit(images[train], labels[train], batch_size=64, epochs=epochs, verbose=0,
              callbacks=[EpochLog(stream=sys.stderr, prefix="twemoji judge: ")])  # a line per epoch on stderr
    _, accuracy = model.evaluate(images[held], labels[held], verbose=0)
    return model, float(accuracy)


def load_twemoji_classifier(cache_dir: str | None = "default"):
    """The judge, trained on first use and cached (`judge.cached_classifier`): `(model, held_out_accuracy)`."""
    return cached_classifier("twemoji_judge_v1.keras", train_twemoji_classifier, cache_dir)


def probabilities(classifier, images) -> np.ndarray:
    """The judge's category probabilities `(n, categories)` for images in [-1, 1] `(n, 64, 64, 3)`."""
    from dcgan_keras.sampling import batched_forward

    logits = batched_forward(classifier, images)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def _real(images, classifier, feature_fn) -> dict:
    """What `_report` measures images against, computed once: real images, their features,
    the statistics of those and the judge's category shares."""
    p, features = probabilities(classifier, images), feature_fn(images)
    return {"images": images, "features": features, "stats": FeatureStats().update(features),
            "shares": np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / len(p)}


def _report(images, real: dict, classifier, feature_fn, k: int, confident: float, seed: int) -> dict:
    """The judge's numbers for `images` against the `real` images (`_real`)."""
    p = probabilities(classifier, images)
    shares = np.bincount(p.argmax(axis=1), minlength=p.shape[1]) / len(p)
    features = feature_fn(images)
    stats = FeatureStats().update(features)
    report = {
        "num_images": int(len(images)),
        "twemoji_fd": frechet_distance(real["stats"].mean, real["stats"].cov, stats.mean, stats.cov),
        "confident_fraction": float((p.max(axis=1) >= confident).mean()),
        # Half the L1 distance between the category shares here and in the reference: 0 = the same mix.
        "category_share_gap": float(0.5 * np.abs(shares - real["shares"]).sum()),
    }
    report.update(precision_recall(real["features"], features, k=k))
    report["nearest_train_distance"] = float(nearest_neighbours(images, real["images"], k=1).distances.mean())
    report["memorisation_ratio"] = memorisation_ratio(images, real["images"], seed=seed)
    report["category_shares"] = [round(float(s), 4) for s in shares]
    return report


def judge_context():
    """`(classifier, accuracy, feature_fn)`: the judge and its "features" layer."""
    classifier, accuracy = load_twemoji_classifier()
    return classifier, accuracy, feature_model(classifier, "features")


def evaluate_twemoji(generator_or_images, num: int | None = None, seed: int = 0, k: int = 3, context=None,
                     draws: int | None = None) -> dict:
    """Everything `evaluate --dataset twemoji` prints, for samples and for held-out real emoji.

    The samples are compared with the judge's training split (what it and,
    usually, the generator trained on); the held-out real emoji (20%, whole
    skin-tone groups) with the same split, as the line a generator's samples
    are measured against. Both sets have the same size, so that the Fréchet
    distance's small-sample bias is the same.

    Args:
        generator_or_images: a generator (sampled with `seed`; it must make
            64x64x3 images) or images in [-1, 1] of that shape.
        num: samples to draw; default: as many as there are held-out emoji (672).
        seed: seed of the noise.
        k: neighbours of the precision/recall manifolds.
        context: `judge_context()`'s result, to reuse a loaded judge.
        draws: for a generator, how many sets of `num` samples to score, from the
            noise seeds `seed`, `seed + 1`, ...; the samples' numbers are their
            means. Default: `DEFAULT_DRAWS` (5); images are one draw.

    Returns:
        `judge_accuracy` (on the held-out emoji), then for `samples` and `real_held_out`
        each: `twemoji_fd` (Fréchet distance on the judge's 128 features),
        `confident_fraction` (share with max p(category) >= 0.9),
        `category_share_gap` (half the L1 distance of predicted category shares
        to the training split's), `precision`, `recall`, `nearest_train_distance`
        (mean pixel distance, in [-1, 1] units, to the nearest training emoji),
        `memorisation_ratio` and `category_shares`. The samples' report adds `draws`
        and `twemoji_fd_sd`, the Fréchet distance's standard deviation over the draws,
        and with more than one draw `twemoji_fd_pooled`, the Fréchet distance of all
        the draws' samples at once: steadier, for ranking generators, but with less
        of the small-sample bias than the held-out row's, so not comparable with it.
    """
    images, _ = real_twemoji()
    train, held = held_out_split()
    num = len(held) if num is None else int(num)
    generator = is_generator(generator_or_images)
    draws = (DEFAULT_DRAWS if generator else 1) if draws is None else draws
    if not (isinstance(draws, int) and draws >= 1) or (draws > 1 and not generator):
        raise ValueError(
            "draws must be a positive integer, and 1 for images (only a generator draws new samples). "
            f"Received: draws={draws!r} for {'a generator' if generator else 'images'}"
        )
    sets = [sample_images(generator_or_images, num, seed + i) for i in range(draws)] if generator else [
        np.asarray(generator_or_images, dtype="float32")]
    if sets[0].shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ValueError(
            f"The Twemoji judge scores 64x64 colour images. Train with --dataset twemoji --image-size 64. "
            f"Received: images of shape {sets[0].shape[1:]}"
        )
    classifier, accuracy, feature_fn = context or judge_context()
    k = min(k, len(sets[0]) - 1)
    real = _real(images[train], classifier, feature_fn)
    reports = [_report(samples, real, classifier, feature_fn, k, 0.9, seed) for samples in sets]
    samples = _mean_report(reports)
    if draws > 1:  # all the draws' samples at once: far less noise than one draw, and a smaller bias
        pooled = FeatureStats().update(feature_fn(np.concatenate(sets)))
        samples["twemoji_fd_pooled"] = frechet_distance(real["stats"].mean, real["stats"].cov, pooled.mean, pooled.cov)
    return {
        "judge_accuracy": float(accuracy),
        "samples": samples,
        "real_held_out": _report(images[held], real, classifier, feature_fn, k, 0.9, seed),
    }


def _mean_report(reports: list[dict]) -> dict:
    """The mean of `_report`s over draws, with `draws` and the Fréchet distance's spread, `twemoji_fd_sd`."""
    mean = {}
    for key, value in reports[0].items():
        values = np.array([report[key] for report in reports], dtype="float64")
        mean[key] = value if key == "num_images" else (
            [round(float(v), 4) for v in values.mean(axis=0)] if isinstance(value, list) else float(values.mean()))
    fds = [report["twemoji_fd"] for report in reports]
    mean["twemoji_fd_sd"] = float(np.std(fds, ddof=1)) if len(fds) > 1 else 0.0
    mean["draws"] = len(reports)
    return mean
