"""Latent space walks and vector arithmetic (Radford et al. 2016, sections 6.1 and 6.3).

Every function takes a generator: a `keras.Model` or an exported
`SavedModelGenerator` (anything callable as `generator(z, training=False)`
that maps z of shape `(batch, latent_dim)` float32 to images in [-1, 1]), plus
arrays, and returns arrays or numbers. Only `save_walk_grid` and `save_gif`
write files.

Example:

```python
from dcgan_keras.export import load_generator
from dcgan_keras.experiments import latent

gen = load_generator("runs/digits/ckpt.keras")
images, path = latent.walk_loop(gen, num_points=4, steps=8, seed=0)
print(latent.smoothness(images, closed=True))
z = latent.latent_vectors_for(gen, 64, seed=0)
result = latent.arithmetic(gen, plus=z[[1, 5, 9]], minus=z[[2, 3, 4]], base=z[[7, 8, 11]])
```
"""

from __future__ import annotations

import os

import numpy as np

from dcgan_keras.files import atomic_path
from dcgan_keras.sampling import batched_forward, latent_prior, latent_size, latent_vectors, latent_vectors_for

METHODS = ("slerp", "lerp")
# Most images one `walk` command renders (walks x points x steps): every frame is held in
# memory several times over (the frames, the grid, the GIF), so this bounds the memory,
# and a GIF of 2048 frames already lasts 3.4 minutes at 100 ms a frame.
MAX_WALK_IMAGES = 2048
# Most numbered samples in an arithmetic pick grid (`arithmetic --grid-size`).
MAX_PICK_IMAGES = 1024


def check_walk_size(walks: int, num_points: int, steps: int, names=("walks", "num_points", "steps")) -> None:
    """Raises a ValueError unless `walks` walks through `num_points` points with `steps` frames each can be made.

    `names` are the names of the three values in the message (e.g. the CLI's `--walks`).
    """
    w, p, s = names
    if walks < 1 or num_points < 2 or steps < 1:
        raise ValueError(
            f"A walk needs {w} >= 1, {p} >= 2 and {s} >= 1. "
            f"Received: {w}={walks}, {p}={num_points}, {s}={steps}"
        )
    if walks * num_points * steps > MAX_WALK_IMAGES:
        raise ValueError(
            f"{walks} walk(s) x {num_points} points x {steps} steps make {walks * num_points * steps} images, more "
            f"than the {MAX_WALK_IMAGES} that bound the memory (every frame is held several times) and the GIF's "
            f"length (dcgan_keras.experiments.latent.MAX_WALK_IMAGES). Lower {s}, {p} or {w}. "
            f"Received: {w}={walks}, {p}={num_points}, {s}={steps}"
        )


# -- generators --------------------------------------------------------------


def render(generator, z, batch_size: int = 256) -> np.ndarray:
    """Images in [-1, 1] of `generator` for z `(N, latent_dim)`, batch norm in inference mode."""
    z = np.asarray(z, dtype="float32")
    return batched_forward(generator, z[None] if z.ndim == 1 else z, batch_size)


# -- interpolation -----------------------------------------------------------


def _t_array(t):
    t = np.asarray(t, dtype="float64")
    return t, t.ndim == 0


def lerp(z0, z1, t) -> np.ndarray:
    """Linear interpolation `(1 - t) z0 + t z1`; `t` a number or a 1-D array (then one row per t)."""
    z0, z1 = np.asarray(z0), np.asarray(z1)
    t, scalar = _t_array(t)
    t = t.reshape(-1, 1)
    out = (1.0 - t) * z0.astype("float64") + t * z1.astype("float64")
    return (out[0] if scalar else out).astype(np.result_type(z0, z1, "float32"))


def slerp(z0, z1, t) -> np.ndarray:
    """Spherical interpolation along the great circle from z0 to z1 (White 2016).

    Endpoints are exact; for z0, z1 of equal norm every point keeps that norm.
    Falls back to `lerp` when z0 and z1 are (anti)parallel.
    """
    z0, z1 = np.asarray(z0), np.asarray(z1)
    a, b = z0.astype("float64"), z1.astype("float64")
    t, scalar = _t_array(t)
    t = t.reshape(-1, 1)
    norms = np.linalg.norm(a) * np.linalg.norm(b)
    cos = np.clip(np.dot(a, b) / norms, -1.0, 1.0) if norms > 0 else 1.0
    omega = np.arccos(cos)
    sin = np.sin(omega)
    if sin < 1e-6:
        return lerp(z0, z1, t[:, 0] if not scalar else t[0, 0])
    out = np.sin((1.0 - t) * omega) / sin * a + np.sin(t * omega) / sin * b
    return (out[0] if scalar else out).astype(np.result_type(z0, z1, "float32"))


def _interp(method: str):
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}. Received: method={method!r}")
    return slerp if method == "slerp" else lerp


def interpolate(generator, z_start, z_end, steps: int = 8, method: str = "slerp") -> np.ndarray:
    """Images `(steps, H, W, C)` along the path from `z_start` to `z_end`, both included.

    slerp by default: Gaussian z in high dimension concentrates on a shell of radius ~sqrt(d), and a straight line passes through lower-norm points the generator rarely saw.
    """
    if steps < 2:
        raise ValueError(f"steps must be at least 2. Received: steps={steps}")
    z = _interp(method)(z_start, z_end, np.linspace(0.0, 1.0, steps))
    return render(generator, z)


def walk_loop(generator, num_points: int = 4, steps: int = 8, seed: int = 0,
              latent_dim: int | None = None, method: str = "slerp"):
    """A closed walk through `num_points` random z from the generator's prior and back to the first.

    Each of the `num_points` segments contributes `steps` frames (its start
    included, its end left to the next segment), so the frames loop seamlessly.
    The points are `latent_vectors(num_points, latent_dim, seed)`, with the
    generator's prior (`sampling.latent_prior`).

    Returns:
        `(images, z_path)`: `(num_points * steps, H, W, C)` in [-1, 1] and
        `(num_points * steps, latent_dim)`.
    """
    check_walk_size(1, num_points, steps)
    points = latent_vectors(num_points, latent_dim or latent_size(generator), seed, *latent_prior(generator))
    interp = _interp(method)
    t = np.arange(steps) / steps
    path = np.concatenate([interp(points[i], points[(i + 1) % num_points], t) for i in range(num_points)])
    return render(generator, path), path.astype("float32")


# -- measurements ------------------------------------------------------------


def _step_ratio(x, closed: bool) -> dict:
    x = np.asarray(x, dtype="float64").reshape(len(x), -1)
    if closed:
        x = np.concatenate([x, x[:1]])
    steps = np.linalg.norm(np.diff(x, axis=0), axis=1)
    mean = float(steps.mean())
    return {
        "smoothness": float(steps.max() / mean) if mean > 0 else 1.0,
        "max_step": float(steps.max()),
        "mean_step": mean,
    }


def smoothness(images, features=None, closed: bool = False) -> dict:
    """How even a sequence of images changes: largest step over mean step (1.0 = perfectly even).

    A jump (an abrupt change of the image between two frames of a walk)
    makes the score large; a memorizing generator's walk would jump.

    Args:
        images: `(N, H, W, C)` frames, N >= 2.
        features: optional function or model from images to feature vectors
            (e.g. the judge's `features` layer); then the same ratio is also
            measured in that feature space.
        closed: also count the step from the last frame back to the first.

    Returns:
        `{"smoothness", "max_step", "mean_step", "steps"}` with L2 distances in
        pixel space, and `"feature_smoothness"`, `"feature_max_step"`,
        `"feature_mean_step"` when `features` is given. A constant sequence
        scores 1.0.
    """
    images = np.asarray(images, dtype="float32")
    if len(images) < 2:
        raise ValueError(f"smoothness needs at least 2 frames. Received: {len(images)}")
    result = _step_ratio(images, closed)
    result["steps"] = len(images) - (0 if closed else 1)
    if features is not None:
        if hasattr(features, "predict"):  # a Keras model
            feats = features.predict(images, batch_size=256, verbose=0)
        else:
            feats = features(images)
        feats = np.asarray(feats, dtype="float32")
        result.update({"feature_" + k: v for k, v in _step_ratio(feats, closed).items()})
    return result


def walk_smoothness(generator, walks: int = 4, num_points: int = 4, steps: int = 8, seed: int = 0,
                    method: str = "slerp", features=None) -> dict:
    """`walks` closed walks (`walk_loop` with seeds `seed`, `seed + 1`, ...) and their smoothness.

    Section 6.1's check: compare the numbers with those of an untrained
    generator of the same architecture (`_shared.random_like(generator)`),
    walked through the same z.

    Args:
        generator: maps z to images (see the module's docstring).
        walks, num_points, steps, seed, method: as for `walk_loop`.
        features: optional, as for `smoothness` (e.g. a judge's feature layer).

    Returns:
        `{"images": (walks, num_points * steps, H, W, C), "pixel": [per walk],
        "mean_pixel"}`, and `"feature"`, `"mean_feature"` when `features` is given.
    """
    check_walk_size(walks, num_points, steps)
    images = [walk_loop(generator, num_points, steps, seed=seed + i, method=method)[0] for i in range(walks)]
    scores = [smoothness(w, features=features, closed=True) for w in images]
    out = {"images": np.stack(images), "pixel": [s["smoothness"] for s in scores]}
    out["mean_pixel"] = float(np.mean(out["pixel"]))
    if features is not None:
        out["feature"] = [s["feature_smoothness"] for s in scores]
        out["mean_feature"] = float(np.mean(out["feature"]))
    return out


def ink_mass(images) -> np.ndarray:
    """Mean brightness `(x + 1) / 2` of each image, in [0, 1]: stroke thickness for digits."""
    images = np.asarray(images, dtype="float32")
    return ((images.reshape(len(images), -1) + 1.0) / 2.0).mean(axis=1)


# -- vector arithmetic -------------------------------------------------------


def concept_vector(z_exemplars) -> np.ndarray:
    """The mean of exemplar z's `(k, latent_dim)` (k=3 in the paper: single samples were unstable)."""
    z = np.asarray(z_exemplars, dtype="float32")
    if z.ndim == 1:
        return z
    if z.ndim != 2 or len(z) == 0:
        raise ValueError(f"concept_vector needs z of shape (k, latent_dim). Received: {z.shape}")
    return z.mean(axis=0)


def _groups(terms) -> list:
    """One or more groups of exemplars -> a list of (k, d) arrays."""
    if terms is None:
        return []
    if isinstance(terms, np.ndarray):
        if terms.ndim == 1:
            return [terms[None]]
        if terms.ndim == 2:
            return [terms]
        return list(terms)
    items = [np.asarray(t, dtype="float32") for t in terms]
    if not items:
        return []
    if all(t.ndim == 1 for t in items):  # a list of vectors is one group
        return [np.stack(items)]
    return [t[None] if t.ndim == 1 else t for t in items]


def arithmetic(generator, plus=(), minus=(), base=None, num_variants: int = 8,
               noise_scale: float = 0.25, seed: int = 0) -> dict:
    """Vector arithmetic on averaged exemplars, as in the paper's figure 7.

    `z = mean(base) + (sum of mean(plus group) - sum of mean(minus group))`.
    `plus`, `minus` and `base` are arrays of exemplar z `(k, latent_dim)` (one
    group) or lists of such arrays (several groups); each group is averaged.
    Besides the result, `num_variants` more images are drawn with uniform
    noise in [-noise_scale, noise_scale] added to z.

    Returns:
        `{"image": (H, W, C), "images": (1 + num_variants, H, W, C)` (the
        result first), `"z": (latent_dim,)`, `"zs": (1 + num_variants, latent_dim)}`.
    """
    plus, minus, bases = _groups(plus), _groups(minus), _groups(base)
    if not plus and not minus and not bases:
        raise ValueError("arithmetic needs at least one of plus, minus or base.")
    d = (plus + minus + bases)[0].shape[-1]
    delta = np.zeros(d, "float32")
    for g in plus:
        delta = delta + concept_vector(g)
    for g in minus:
        delta = delta - concept_vector(g)
    z = delta
    if bases:
        start = sum(concept_vector(g) for g in bases)
        z = (start + delta).astype("float32")
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-noise_scale, noise_scale, (num_variants, d)).astype("float32")
    zs = np.concatenate([z[None], z[None] + noise]).astype("float32")
    images = render(generator, zs)
    return {"image": images[0], "images": images, "z": z.astype("float32"), "zs": zs}


def direction(z_group_a, z_group_b) -> np.ndarray:
    """The vector from concept a to concept b: `mean(b) - mean(a)` (the paper's "turn" vector)."""
    return concept_vector(z_group_b) - concept_vector(z_group_a)


def along_direction(generator, z, direction, scales=None) -> np.ndarray:
    """Images `(len(scales), H, W, C)` of `z + s * direction` for each scale s (default -2..2 in 9)."""
    scales = np.linspace(-2.0, 2.0, 9) if scales is None else np.asarray(scales, dtype="float64")
    z = np.asarray(z, dtype="float32").reshape(-1)
    d = np.asarray(direction, dtype="float32").reshape(-1)
    zs = (z[None] + scales.reshape(-1, 1).astype("float32") * d[None]).astype("float32")
    return render(generator, zs)


def label_arithmetic(generator, z, classify, source: int, target: int, k: int = 3, num_bases: int = 32,
                     seed: int = 0) -> dict:
    """Vector arithmetic with exemplars picked by a classifier (section 6.3.2), scored by it.

    The paper picked its three "smiling woman" / "neutral woman" / "neutral
    man" exemplars by eye among samples; here a classifier picks them. Among
    the samples of `z`, the `k` classified `target` with the highest
    probability and the `k` classified `source` likewise are the exemplars;
    `v = mean(z of target exemplars) - mean(z of source exemplars)` is added to
    up to `num_bases` other samples classified `source`, and the results are
    classified again. The control adds, to the same samples, random vectors of
    the same norm as `v` (one random direction per sample).

    Args:
        generator: maps z to images (see the module's docstring).
        z: the pool of latent vectors `(N, latent_dim)` to pick samples from.
        classify: maps images `(n, H, W, C)` in [-1, 1] to class probabilities `(n, C)`.
        source, target: class indices (e.g. male, female).
        k: exemplars per class (3 in the paper).
        num_bases: most samples the vector is added to.
        seed: seed of which samples are bases and of the random vectors.

    Returns:
        `{"source_exemplars", "target_exemplars", "bases"}` (indices into `z`),
        `"vector"` `(latent_dim,)`, `"images"` and `"random_images"`
        `(num, H, W, C)`, their `"labels"` and `"random_labels"`,
        `"share_target"` / `"share_target_random"` (shares of results
        classified `target`), and `"pool_counts"` (samples of each class).
    """
    z = np.asarray(z, dtype="float32")
    if z.ndim != 2 or k < 1 or num_bases < 1 or source == target:
        raise ValueError(f"Need z of shape (N, latent_dim), k >= 1, num_bases >= 1 and source != target. "
                         f"Received: z of shape {z.shape}, k={k}, num_bases={num_bases}, "
                         f"source={source}, target={target}")
    probs = np.asarray(classify(render(generator, z)))
    labels = probs.argmax(axis=1)
    counts = np.bincount(labels, minlength=probs.shape[1])
    picked = {}
    for name, c in (("source", source), ("target", target)):
        members = np.flatnonzero(labels == c)
        if len(members) < k + (1 if c == source else 0):
            raise ValueError(
                f"Only {len(members)} of the {len(z)} samples are classified {c} ({name}); need {k} exemplars"
                f"{' and a sample to add the vector to' if c == source else ''}. Pass more z. "
                f"Received: {name}={c}, k={k}, len(z)={len(z)}")
        picked[name] = members[np.argsort(-probs[members, c], kind="stable")[:k]]
    rng = np.random.default_rng(seed)
    rest = np.setdiff1d(np.flatnonzero(labels == source), picked["source"])
    bases = np.sort(rng.permutation(rest)[:num_bases])
    vector = (z[picked["target"]].mean(axis=0) - z[picked["source"]].mean(axis=0)).astype("float32")
    random = rng.standard_normal((len(bases), z.shape[1])).astype("float32")
    random *= np.linalg.norm(vector) / np.linalg.norm(random, axis=1, keepdims=True)
    images = render(generator, z[bases] + vector[None])
    random_images = render(generator, z[bases] + random)
    out_labels = np.asarray(classify(images)).argmax(axis=1)
    random_labels = np.asarray(classify(random_images)).argmax(axis=1)
    return {
        "source_exemplars": picked["source"], "target_exemplars": picked["target"], "bases": bases,
        "vector": vector, "images": images, "random_images": random_images,
        "labels": out_labels, "random_labels": random_labels,
        "share_target": float((out_labels == target).mean()),
        "share_target_random": float((random_labels == target).mean()),
        "pool_counts": counts.tolist(),
    }


def exemplars_by_label(probs, label: int, k: int = 3, exclude=()) -> np.ndarray:
    """Indices of the `k` samples a classifier finds most likely `label`, most likely first.

    How the exemplars of a concept are picked among generated samples here,
    where the paper picked them by eye. `probs` is `(N, classes)`; indices in
    `exclude` are never picked (e.g. the other concept's exemplars).
    """
    probs = np.asarray(probs, dtype="float64")
    if probs.ndim != 2 or not 0 <= label < probs.shape[1]:
        raise ValueError(f"probs must be (N, classes) and label one of its classes. "
                         f"Received: probs of shape {probs.shape}, label={label}")
    candidates = np.setdiff1d(np.arange(len(probs)), np.asarray(list(exclude), dtype="int64"))
    if len(candidates) < k or k < 1:
        raise ValueError(f"Need k >= 1 and at least k samples to pick from. Received: k={k}, "
                         f"{len(candidates)} samples left after excluding {len(probs) - len(candidates)}")
    return candidates[np.argsort(-probs[candidates, label], kind="stable")[:k]]


def figure7(generator, z, classify, plus: int, minus: int, base: int, k: int = 3, num_variants: int = 8,
            noise_scale: float = 0.25, seed: int = 0) -> dict:
    """The paper's figure 7 with exemplars picked by a classifier: mean(plus) - mean(minus) + mean(base).

    Among the samples of `z`, the `k` most likely of class `plus`, of class
    `minus` and (others than those) of class `base` are the exemplars
    (`exemplars_by_label`); `arithmetic` gives the result and `num_variants`
    noisy variants (uniform noise of `noise_scale`), and the classifier labels
    them.

    Returns:
        `{"exemplars": {"plus", "minus", "base"}` (indices into `z`),
        `"exemplar_images": (3, k, H, W, C)`, `"mean_images": (3, H, W, C)` (the
        image of each group's mean z), `"images": (1 + num_variants, H, W, C)`
        (the result first), `"labels"` of those, and `"share_plus"` (their share
        classified `plus`).
    """
    z = np.asarray(z, dtype="float32")
    probs = np.asarray(classify(render(generator, z)))
    picked = {"plus": exemplars_by_label(probs, plus, k)}
    picked["minus"] = exemplars_by_label(probs, minus, k, exclude=picked["plus"])
    picked["base"] = exemplars_by_label(probs, base, k, exclude=np.concatenate(list(picked.values())))
    result = arithmetic(generator, plus=z[picked["plus"]], minus=z[picked["minus"]], base=z[picked["base"]],
                        num_variants=num_variants, noise_scale=noise_scale, seed=seed)
    order = ("plus", "minus", "base")
    labels = np.asarray(classify(result["images"])).argmax(axis=1)
    return {
        "exemplars": picked,
        "exemplar_images": np.stack([render(generator, z[picked[g]]) for g in order]),
        "mean_images": render(generator, np.stack([concept_vector(z[picked[g]]) for g in order])),
        "images": result["images"], "z": result["z"], "labels": labels,
        "share_plus": float((labels == plus).mean()),
    }


def figure7_plot(result: dict, names=("plus", "minus", "base"), dpi: int = 100):
    """Draws `figure7`'s result as the paper's figure 7: three exemplar columns, then the result grid.

    Each concept is a column of its k exemplars with the image of their mean
    z below (framed); then "plus - minus + base =" and the result with its
    noisy variants in a 3x3 grid (the result at the centre when there are 8).

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    from dcgan_keras.images import image_grid

    exemplars, means, images = result["exemplar_images"], result["mean_images"], result["images"]
    k = exemplars.shape[1]

    def show(ax, grid):
        grid = (grid + 1) / 2
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")

    fig = Figure(figsize=(7.5, 0.95 * (k + 1) + 0.4), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 4, gridspec_kw={"width_ratios": [1, 1, 1, 3]})
    for col, (ax, name) in enumerate(zip(axes[:3], names)):
        column = image_grid(np.concatenate([exemplars[col], means[col][None]]), rows=k + 1, padding=2)
        show(ax, column)
        height = column.shape[0] / (k + 1)
        ax.add_patch(Rectangle((0.5, k * height + 0.5), column.shape[1] - 2, height - 1, fill=False,
                               edgecolor="red", linewidth=1.2))
        ax.set_title(("" if col == 0 else "- " if col == 1 else "+ ") + name, fontsize=9)
        ax.axis("off")
    order = list(range(len(images)))
    if len(images) == 9:  # the result in the middle of the variants, as in the paper
        order = [1, 2, 3, 4, 0, 5, 6, 7, 8]
    grid = image_grid(images[order], rows=int(np.ceil(np.sqrt(len(images)))), padding=2)
    show(axes[3], grid)
    axes[3].set_title(f"= result{' (centre)' if len(images) == 9 else ''} and {len(images) - 1} noisy variants",
                      fontsize=9)
    axes[3].axis("off")
    return fig


GENDER_CLASSES = ("male", "female", "other")


TONE_CLASSES = ("none", "tone1", "tone2", "tone3", "tone4", "tone5")


def _train_twemoji_attribute_classifier(labels, num_classes: int, name: str, epochs: int, seed: int):
    """A small CNN (the judge's trunk) trained on the judge's split of the Twemoji, class-balanced.

    Returns `(classify, held_out_accuracy)`, `classify` mapping images in [-1, 1] to probabilities.
    """
    import keras

    from dcgan_keras.twemoji_judge import IMAGE_SIZE, convolutional_trunk, held_out_split, real_twemoji

    images, _ = real_twemoji()
    train, held = held_out_split(seed)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input((IMAGE_SIZE, IMAGE_SIZE, 3)),
        *convolutional_trunk(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ], name=name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    counts = np.bincount(labels[train], minlength=num_classes)
    weights = {c: len(train) / (num_classes * max(int(n), 1)) for c, n in enumerate(counts)}
    model.fit(images[train], labels[train], batch_size=64, epochs=epochs, class_weight=weights, verbose=0)
    _, accuracy = model.evaluate(images[held], labels[held], verbose=0)
    return (lambda x: batched_forward(model, np.asarray(x, "float32"))), float(accuracy)


def train_twemoji_gender_classifier(epochs: int = 8, seed: int = 0):
    """A small classifier of the bundled Twemoji into male, female and other (`GENDER_CLASSES`).

    "male" and "female" are the emoji with that `gender` label (People & Body
    for the most part, all skin tones), "other" every other emoji (neutral
    people, and all other categories), so that on generated samples it can
    tell a man or a woman from something else. Trained on the judge's training
    split (`twemoji_judge.held_out_split`: whole skin-tone groups held out),
    with class weights balancing the three classes.

    Returns:
        `(classify, held_out_accuracy)`: `classify` maps images in [-1, 1]
        `(n, 64, 64, 3)` to probabilities `(n, 3)`; the accuracy is on the
        held-out emoji.
    """
    from dcgan_keras.data import load_twemoji

    gender = load_twemoji()["gender"]
    labels = np.where(gender == "male", 0, np.where(gender == "female", 1, 2)).astype("int32")
    return _train_twemoji_attribute_classifier(labels, len(GENDER_CLASSES), "twemoji_gender", epochs, seed)


def train_twemoji_tone_classifier(epochs: int = 8, seed: int = 0):
    """A small classifier of the bundled Twemoji into skin tones (`TONE_CLASSES`).

    Classes: "none" (every emoji without a skin tone: the default yellow
    people and all other categories) and "tone1" (light) .. "tone5" (dark),
    from the emoji's `skin_tone` (1,580 images, 316 per tone). Trained like
    `train_twemoji_gender_classifier`: the judge's training split, whole
    skin-tone groups held out, class weights balancing the six classes.

    Returns:
        `(classify, held_out_accuracy)`: `classify` maps images in [-1, 1]
        `(n, 64, 64, 3)` to probabilities `(n, 6)`; the accuracy is on the
        held-out emoji.
    """
    from dcgan_keras.data import load_twemoji

    labels = np.asarray(load_twemoji()["skin_tone"], dtype="int32")
    return _train_twemoji_attribute_classifier(labels, len(TONE_CLASSES), "twemoji_tone", epochs, seed)


def mean_tone(probs) -> np.ndarray:
    """The expected skin tone (1..5) of each image under a tone classifier's probabilities, its "none" left out."""
    p = np.asarray(probs, dtype="float64")[:, 1:]
    return (p * np.arange(1, p.shape[1] + 1)).sum(axis=1) / np.maximum(p.sum(axis=1), 1e-12)


# -- files ---------------------------------------------------------------------


def save_walk_grid(images_per_walk, path, padding: int = 2) -> str:
    """Writes one row per walk: `images_per_walk` is `(walks, frames, H, W, C)` or a list of walks."""
    from dcgan_keras.images import image_grid, save_png

    walks = [np.asarray(w, dtype="float32") for w in images_per_walk]
    if not walks:
        raise ValueError("save_walk_grid needs at least one walk.")
    frames = max(len(w) for w in walks)
    rows = []
    for w in walks:  # pad shorter walks with white frames
        if len(w) < frames:
            w = np.concatenate([w, np.ones((frames - len(w), *w.shape[1:]), "float32")])
        rows.append(w)
    return save_png(image_grid(np.concatenate(rows), rows=len(rows), padding=padding), path)


def save_gif(images, path, duration_ms: int = 100) -> str:
    """Writes frames `(N, H, W, C)` in [-1, 1] as a looping GIF (PIL), atomically."""
    from PIL import Image

    from dcgan_keras.images import to_uint8

    if not isinstance(duration_ms, (int, np.integer)) or duration_ms < 10:
        raise ValueError(
            "duration_ms must be an integer of at least 10: GIF frame times are whole hundredths of a "
            f"second (100 is 10 frames a second). Received: duration_ms={duration_ms!r}"
        )
    pixels = to_uint8(images)
    if pixels.ndim == 4 and pixels.shape[-1] == 1:
        pixels = pixels[..., 0]
    frames = [Image.fromarray(p) for p in pixels]
    with atomic_path(path) as tmp:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:],
                       duration=int(duration_ms), loop=0, optimize=False)
    return os.fspath(path)
