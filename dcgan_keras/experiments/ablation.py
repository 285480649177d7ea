"""Filter ablation, "forgetting to draw" (Radford et al. 2016, section 6.2, figure 6).

The paper fitted a logistic regression on the generator's second-highest
convolutional features (150 samples, 52 hand-drawn window boxes) to predict
whether a position lies inside a window, dropped every feature map whose
weight was positive (at all spatial positions), and regenerated the same z:
windows vanished or turned into other objects, while the rest of the scene
stayed.

Here the user gives the region as a box (or a mask) in pixels of the output
image, the same for every sample; `fit_box_filters` fits the regression
(scikit-learn, one example per spatial position of the feature map, balanced
classes) and returns the feature maps with positive weight. `ablate_filters`
zeroes chosen maps in a **copy** of the generator: the weights that read them
in the next convolution are set to 0, which gives exactly the output of
multiplying the maps by 0 (the next layer is linear). The copy has the same
architecture, so it saves, exports and serves like any generator; the model
passed in is never changed.

Example:

```python
from dcgan_keras.experiments import ablation

gen = ablation.load_keras_generator("saved_models/digits/1")   # or runs/digits/ckpt.keras
fit = ablation.fit_box_filters(gen, "up2_relu", box=(4, 4, 16, 28), num_samples=150)
ablated = ablation.ablate_filters(gen, "up2_relu", fit["filters"])
z = latent_vectors_for(gen, 16, seed=1)
before, after = batched_forward(gen, z), batched_forward(ablated, z)
print(ablation.ablation_change(before, after, box=(4, 4, 16, 28)))
ablation.ablation_figure(before, after, box=(4, 4, 16, 28)).savefig("ablation.png")
```
"""

from __future__ import annotations

import numpy as np

import keras
from keras import layers

from dcgan_keras.checkpoints import generator_from_saved_model, load_keras_generator  # noqa: F401  (public here too)
from dcgan_keras.experiments._shared import resolve_layer
from dcgan_keras.sampling import batched_forward, latent_prior, latent_vectors_for, record_prior

_WEIGHTED = (layers.Conv2D, layers.Conv2DTranspose, layers.Dense)
_PASS_THROUGH = (layers.Dropout, layers.Activation, layers.ReLU, layers.LeakyReLU, layers.Identity)


# -- which feature maps ----------------------------------------------------------------------


def feature_layers(generator: keras.Model) -> list:
    """Names of the generator's hidden feature maps that can be ablated, input side first.

    These are the activated outputs (e.g. `project_relu`, `up1_relu`, ...)
    read by a following convolution; for `build_generator` the "second-highest
    convolutional features" of the paper are the last of them.
    """
    names = []
    chain = [lay for lay in generator.layers if not isinstance(lay, layers.InputLayer)]
    for i, lay in enumerate(chain):
        if isinstance(lay, (layers.ReLU, layers.LeakyReLU)) or (
            isinstance(lay, layers.Activation) and getattr(lay.activation, "__name__", "") == "relu"
        ):
            if _consumer_after(chain, i) is not None:
                names.append(lay.name)
    return names


def _consumer_after(chain, index):
    for lay in chain[index + 1 :]:
        if isinstance(lay, _WEIGHTED):
            return lay
        if not isinstance(lay, _PASS_THROUGH):
            return None
    return None


def _resolve(generator: keras.Model, layer):
    """(feature layer name, consumer layer name) for a name or index into `feature_layers`."""
    names = feature_layers(generator)
    if not names:
        raise ValueError(f"Model {generator.name!r} has no rectified feature maps read by a convolution.")
    all_names = [lay.name for lay in generator.layers]
    if layer is None or isinstance(layer, (int, np.integer)) or layer in all_names:
        layer = resolve_layer(generator, layer, [generator.get_layer(n) for n in names]).name
    if layer not in names:
        # A convolution or batch norm name means the same stage's activated maps.
        stage = [n for n in names if layer in all_names and n.startswith(f"{layer.split('_')[0]}_")]
        if len(stage) != 1:
            raise ValueError(
                f"Cannot ablate {layer!r} of {generator.name!r}: pick one of its feature layers "
                f"{names} (or their index). Received: layer={layer!r}"
            )
        layer = stage[0]
    chain = [lay for lay in generator.layers if not isinstance(lay, layers.InputLayer)]
    index = [lay.name for lay in chain].index(layer)
    return layer, _consumer_after(chain, index).name


def _check_filters(filters, channels: int, layer: str) -> list:
    filters = [int(f) for f in np.asarray(list(filters), dtype="int64").ravel()]
    bad = [f for f in filters if not 0 <= f < channels]
    if bad:
        raise ValueError(f"filters of {layer!r} must be in 0..{channels - 1}. Received: filters={bad}")
    if len(set(filters)) != len(filters):
        raise ValueError(f"filters must not repeat. Received: filters={filters}")
    return sorted(filters)


def num_filters(generator: keras.Model, layer=None) -> int:
    """The number of feature maps of `layer` (see `feature_layers`)."""
    name, _ = _resolve(generator, layer)
    return int(generator.get_layer(name).output.shape[-1])


def ablate_filters(generator, layer=None, filters=()) -> keras.Model:
    """A copy of the generator whose chosen feature maps are always zero.

    Args:
        generator: a Keras generator, or a path / `SavedModelGenerator` (see
            `load_keras_generator`); never modified.
        layer: a feature layer name (`up2_relu`; `up2` or `up2_bn` mean the
            same maps), an index into `feature_layers(generator)`, or `None`
            for the second-highest feature maps (the paper's choice).
        filters: indices of the feature maps (channels) to zero.

    Returns:
        A new `keras.Model` of the same architecture with its own weights,
        equal to the generator's except that the next convolution reads the
        chosen maps with zero weights. `model.ablated` records
        `{"layer", "filters"}`.
    """
    generator = load_keras_generator(generator)
    name, consumer_name = _resolve(generator, layer)
    filters = _check_filters(filters, int(generator.get_layer(name).output.shape[-1]), name)
    copy = keras.models.clone_model(generator)
    copy.set_weights(generator.get_weights())
    consumer = copy.get_layer(consumer_name)
    kernel = np.array(consumer.kernel.numpy())
    # The axis of the kernel that indexes the input channels.
    axis = -1 if isinstance(consumer, layers.Conv2DTranspose) else (2 if kernel.ndim == 4 else 0)
    index = [slice(None)] * kernel.ndim
    index[axis] = filters
    kernel[tuple(index)] = 0.0
    consumer.kernel.assign(kernel)
    copy.ablated = {"layer": name, "filters": filters}
    record_prior(copy, *latent_prior(generator))  # the same prior as the original
    return copy


def feature_maps(generator, z, layer=None, batch_size: int = 256) -> np.ndarray:
    """The activated feature maps `(N, h, w, C)` of `layer` for z (batch norm in inference mode)."""
    generator = load_keras_generator(generator)
    name, _ = _resolve(generator, layer)
    sub = keras.Model(generator.inputs[0], generator.get_layer(name).output)
    return batched_forward(sub, z, batch_size)


# -- the box and the logistic regression --------------------------------------------------------


def box_mask(box, image_size: int) -> np.ndarray:
    """A boolean `(image_size, image_size)` mask, True inside `box = (y0, x0, y1, x1)` (y1, x1 excluded)."""
    try:
        y0, x0, y1, x1 = (int(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"box must be four integers (y0, x0, y1, x1) in pixels. Received: box={box!r}") from None
    if not (0 <= y0 < y1 <= image_size and 0 <= x0 < x1 <= image_size):
        raise ValueError(
            f"box must satisfy 0 <= y0 < y1 <= {image_size} and 0 <= x0 < x1 <= {image_size} "
            f"(pixels of the output image, end excluded). Received: box={box!r}"
        )
    mask = np.zeros((image_size, image_size), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _region(box, mask, shape) -> np.ndarray:
    """A boolean mask `(N, H, W)` or `(H, W)` from a box or a mask, checked against image shape (H, W)."""
    if (box is None) == (mask is None):
        raise ValueError(f"Pass exactly one of box and mask. Received: box={box!r}, mask={'given' if mask is not None else None}")
    if box is not None:
        return box_mask(box, shape[0])
    mask = np.asarray(mask).astype(bool)
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape[-2:] != tuple(shape):
        raise ValueError(f"mask must have shape (H, W) or (N, H, W) with H, W = {tuple(shape)}. Received: {mask.shape}")
    return mask


def _cell_labels(mask, side: int) -> np.ndarray:
    """Fraction of each feature-map cell covered by the mask, `(..., side, side)`."""
    size = mask.shape[-1]
    if size % side:
        raise ValueError(f"The image side ({size}) must be a multiple of the feature map side ({side}).")
    s = size // side
    return mask.reshape(*mask.shape[:-2], side, s, side, s).mean(axis=(-3, -1))


def fit_box_filters(generator, layer=None, box=None, mask=None, num_samples: int = 150, seed: int = 0,
                    c: float = 1.0, max_filters: int | None = None) -> dict:
    """Feature maps that predict a region, by logistic regression (the paper's window experiment).

    Draws `num_samples` z, takes `layer`'s feature maps and labels every
    spatial position 1 when at least half of the pixels it covers lie inside
    the region, 0 otherwise; fits a class-balanced, L2-regularised logistic
    regression (standardised features) on all positions of all samples and
    picks the maps with positive weight, strongest first.

    Args:
        generator: a Keras generator or a path (see `load_keras_generator`).
        layer: see `ablate_filters` (default: the second-highest feature maps).
        box: `(y0, x0, y1, x1)` in pixels of the output image (end excluded).
        mask: instead of a box, a boolean mask `(H, W)` for all samples, or
            `(num_samples, H, W)`, one per sample (e.g. hand-drawn objects).
        num_samples: generated images to fit on (150 in the paper).
        seed: seed of the z.
        c: inverse regularisation strength of the regression.
        max_filters: keep only this many of the positive maps (all by default,
            as the paper).

    Returns:
        `{"layer", "filters", "weights", "accuracy", "positives", "z"}`:
        the chosen channel indices, every channel's weight, the regression's
        balanced accuracy on its training positions, the share of positions
        labelled inside, and the z used.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    generator = load_keras_generator(generator)
    name, _ = _resolve(generator, layer)
    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2. Received: num_samples={num_samples}")
    region = _region(box, mask, generator.output_shape[1:3])
    z = latent_vectors_for(generator, num_samples, seed)
    maps = feature_maps(generator, z, name)  # (N, h, w, C)
    n, h, w, channels = maps.shape
    labels = _cell_labels(region, h) >= 0.5
    labels = np.broadcast_to(labels, (n, h, w)).reshape(-1)
    if labels.all() or not labels.any():
        raise ValueError(
            f"The region covers {'every' if labels.all() else 'no'} position of the {h}x{w} feature map "
            f"of {name!r}; draw a box that covers some positions and leaves others. Received: box={box!r}"
        )
    x = maps.reshape(-1, channels)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, class_weight="balanced", max_iter=2000))
    model.fit(x, labels)
    # Standardising divides by positive scales, so signs are those of the raw features' weights.
    weights = model[-1].coef_[0] / np.where(model[0].scale_ > 0, model[0].scale_, 1.0)
    positive = [int(i) for i in np.argsort(-weights) if weights[i] > 0]
    if max_filters is not None:
        positive = positive[: int(max_filters)]
    return {
        "layer": name,
        "filters": positive,
        "weights": weights.astype("float32"),
        "accuracy": float(balanced_accuracy_score(labels, model.predict(x))),
        "positives": float(labels.mean()),
        "z": z,
    }


def foreground_mask(images, threshold: float = 0.9) -> np.ndarray:
    """`(N, H, W)` True where a pixel is drawn: its mean over channels is below `threshold` (white = 1.0).

    For images on a white background in [-1, 1], such as the bundled Twemoji.
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W, C). Received: images of shape {images.shape}")
    return images.mean(axis=-1) < threshold


def fit_concept_filters(generator, classify, concept: int, layer=None, num_samples: int = 600, seed: int = 0,
                        c: float = 1.0, max_filters: int | None = None, threshold: float = 0.9) -> dict:
    """Feature maps that draw a concept, fitted on samples a classifier labels (the paper's windows).

    The paper drew boxes around the windows of 150 generated bedrooms and
    fitted a logistic regression from G's features to "inside a window". Here
    a classifier (for Twemoji, the judge's categories) labels `num_samples`
    generated images; the drawn pixels (`foreground_mask`) of the samples
    classified `concept` are the object, and every other position, the
    background and all of the other samples' drawings, is not. The regression
    and the choice of maps are `fit_box_filters`'s, with this per-sample mask.

    Args:
        generator: a Keras generator or a path (see `load_keras_generator`).
        classify: maps images `(n, H, W, C)` in [-1, 1] to class probabilities or logits `(n, classes)`.
        concept: the class whose drawings are the object.
        layer, c, max_filters: as for `fit_box_filters`.
        num_samples: generated images to fit on.
        seed: seed of their z (the same z `fit_box_filters` draws).
        threshold: see `foreground_mask`.

    Returns:
        `fit_box_filters`'s result, plus `"concept_samples"`: how many of the
        samples were classified `concept`.
    """
    generator = load_keras_generator(generator)
    z = latent_vectors_for(generator, num_samples, seed)
    images = batched_forward(generator, z)
    labels = np.asarray(classify(images)).argmax(axis=1)
    mask = foreground_mask(images, threshold) & (labels == concept)[:, None, None]
    if not mask.any():
        raise ValueError(
            f"None of the {num_samples} samples is classified {concept} (with drawn pixels); draw more samples "
            f"or pick a concept the generator draws. Received: concept={concept}, num_samples={num_samples}"
        )
    fit = fit_box_filters(generator, layer, mask=mask, num_samples=num_samples, seed=seed, c=c,
                          max_filters=max_filters)
    fit["concept_samples"] = int((labels == concept).sum())
    return fit


def concept_removal(labels_before, labels_after, concept: int) -> dict:
    """How often a concept disappears when the same z are drawn again by an ablated generator.

    Args:
        labels_before, labels_after: a classifier's classes `(N,)` of the
            images of the same z before and after.
        concept: the class.

    Returns:
        `{"share_before", "share_after", "removed", "appeared", "others_kept",
        "count_before"}`: the shares of images classified `concept`, the share
        of those classified `concept` before that are not after (1 = every one
        gone), the share of the others that are after, and the share of the
        others whose class is unchanged (1 = the rest of the pictures kept
        what they were).
    """
    labels_before, labels_after = np.asarray(labels_before), np.asarray(labels_after)
    if labels_before.shape != labels_after.shape or labels_before.ndim != 1:
        raise ValueError(f"labels_before and labels_after must be (N,) of one length. "
                         f"Received: {labels_before.shape}, {labels_after.shape}")
    before, after = labels_before == concept, labels_after == concept
    same = labels_before == labels_after
    return {
        "share_before": float(before.mean()),
        "share_after": float(after.mean()),
        "removed": float((before & ~after).sum() / before.sum()) if before.any() else float("nan"),
        "appeared": float((~before & after).sum() / (~before).sum()) if (~before).any() else float("nan"),
        "others_kept": float((~before & same).sum() / (~before).sum()) if (~before).any() else float("nan"),
        "count_before": int(before.sum()),
    }


# -- measuring and showing --------------------------------------------------------------------------


def ablation_change(before, after, box=None, mask=None) -> dict:
    """How much the images changed inside and outside the region, and how their ink moved.

    Args:
        before, after: images `(N, H, W, C)` in [-1, 1] from the same z.
        box, mask: the region, as for `fit_box_filters`.

    Returns:
        `{"change_inside", "change_outside", "ratio", "brightness_inside_before",
        "brightness_inside_after", "brightness_outside_before",
        "brightness_outside_after"}`: mean absolute pixel change (in [0, 2]) per
        region, inside / outside, and the mean brightness `(x + 1) / 2` per
        region (for digits, the ink).
    """
    before = np.asarray(before, dtype="float32")
    after = np.asarray(after, dtype="float32")
    if before.shape != after.shape or before.ndim != 4:
        raise ValueError(f"before and after must be image batches of one shape. Received: {before.shape}, {after.shape}")
    region = np.broadcast_to(_region(box, mask, before.shape[1:3]), before.shape[:3])
    diff = np.abs(after - before).mean(axis=-1)

    def mean(values, where):
        return float(values[where].mean()) if where.any() else float("nan")

    inside, outside = mean(diff, region), mean(diff, ~region)
    bright_before, bright_after = (before.mean(axis=-1) + 1) / 2, (after.mean(axis=-1) + 1) / 2
    return {
        "change_inside": inside,
        "change_outside": outside,
        "ratio": inside / outside if outside > 0 else float("inf"),
        "brightness_inside_before": mean(bright_before, region),
        "brightness_inside_after": mean(bright_after, region),
        "brightness_outside_before": mean(bright_before, ~region),
        "brightness_outside_after": mean(bright_after, ~region),
    }


def ablation_figure(before, after, box=None, titles=("generated", "filters dropped"), columns: int = 8,
                    dpi: int = 100):
    """Before/after images in two rows of panels, with the box drawn (the paper's figure 6).

    Args:
        before, after: images `(N, H, W, C)` in [-1, 1] from the same z.
        box: optional `(y0, x0, y1, x1)` drawn on every image.
        titles: the two rows' titles.
        columns: images per row (the first `columns` images are shown).

    Returns:
        A `matplotlib.figure.Figure`.
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    before = np.asarray(before, dtype="float32")[:columns]
    after = np.asarray(after, dtype="float32")[:columns]
    n = len(before)
    fig = Figure(figsize=(1.1 * n, 2.5), dpi=dpi, layout="constrained")
    axes = fig.subplots(2, n, squeeze=False)
    for row, (images, title) in enumerate(((before, titles[0]), (after, titles[1]))):
        for col in range(n):
            ax = axes[row, col]
            image = (np.clip(images[col], -1, 1) + 1) / 2
            ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1,
                      interpolation="nearest")
            if box is not None:
                y0, x0, y1, x1 = box
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                       edgecolor="red", linewidth=1))
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(title, fontsize=8)
    return fig
