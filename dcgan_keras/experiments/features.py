"""The discriminator as a feature extractor (Radford et al. 2016, section 5.1, tables 1 and 2).

The paper's recipe: run images through the trained discriminator, take the
output of every convolutional layer (after its activation), max-pool each map
to a 4x4 grid, flatten and concatenate the grids into one feature vector, and
train a regularised linear L2-SVM on top. Accuracy with few labels measures how
useful the unsupervised features are.

The protocol here compares four rows on the same label draws:

- `pixels`: the (preprocessed) pixels, flattened;
- `random_d`: the same discriminator architecture with freshly drawn weights;
- `trained_d`: the trained discriminator;
- `supervised`: the same architecture, fresh weights, its logit replaced by a
  10-way softmax and trained on the same few labels.

Example:

```python
from dcgan_keras.data import load_digits
from dcgan_keras.experiments import features

discriminator = features.load_discriminator("runs/NAME/ckpt.keras")
images, labels = load_digits()
table = features.features_protocol(discriminator, images, labels,
                                   labels_per_class=100, draws=5)
print(features.markdown_table(table))
```
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import keras
from keras import layers

from dcgan_keras.checkpoints import load_discriminator  # noqa: F401  (public here too)
from dcgan_keras.experiments._shared import conv_activations, random_like
from dcgan_keras.sampling import batched_forward

# `features.conv_activations` and `features.random_discriminator` are documented names.
random_discriminator = random_like

ROWS = ("pixels", "random_d", "trained_d", "supervised")
ROW_NAMES = {
    "pixels": "raw pixels + L2-SVM",
    "random_d": "random D features + L2-SVM",
    "trained_d": "trained D features + L2-SVM",
    "supervised": "same D architecture, supervised",
}


# -- feature extraction --------------------------------------------------------


def _pool_size(side: int, grid: int) -> int:
    return max(side // grid, 1)


def feature_extractor(discriminator: keras.Model, grid: int = 4) -> keras.Model:
    """A model from the discriminator's input to its pooled, concatenated conv features.

    Every convolution's activated output of side S is max-pooled with pool size
    and stride `S // grid` (adaptive pooling to a `grid x grid` map), flattened,
    and the flat vectors are concatenated.

    Args:
        discriminator: a functional model with `Conv2D` layers (e.g. from
            `build_discriminator`, or `DCGAN.discriminator`).
        grid: side of the pooled grid (4 in the paper).

    Returns:
        A `keras.Model` named "features" sharing the discriminator's layers
        (call it with `training=False` so batch norm uses its moving statistics).
    """
    if grid < 1:
        raise ValueError(f"grid must be a positive integer. Received: grid={grid}")
    pooled = []
    for layer in conv_activations(discriminator):
        x = layer.output
        size = _pool_size(int(x.shape[1]), grid)
        x = layers.MaxPooling2D(pool_size=size, strides=size, name=f"{layer.name}_maxpool{grid}")(x)
        pooled.append(layers.Flatten(name=f"{layer.name}_flat")(x))
    out = pooled[0] if len(pooled) == 1 else layers.Concatenate(name="features_concat")(pooled)
    return keras.Model(discriminator.input, out, name="features")


def feature_length(discriminator: keras.Model, grid: int = 4) -> int:
    """Length of `feature_extractor(discriminator, grid)`'s vectors: sum of grid**2 * channels."""
    total = 0
    for layer in conv_activations(discriminator):
        _, h, _, c = layer.output.shape
        cells = int(h) // _pool_size(int(h), grid)
        total += cells * cells * int(c)
    return total


def extract(extractor, images, batch_size: int = 256) -> np.ndarray:
    """Features of `images` (float32, already in the model's input range) as a float32 array."""
    return batched_forward(extractor, images, batch_size).reshape(len(images), -1)


# -- the linear L2-SVM -----------------------------------------------------------


def _stratified_split(labels, fraction: float, seed: int):
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    fit, val = [], []
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * fraction)) if len(idx) > 1 else 0
        n_val = min(max(n_val, 1 if len(idx) > 1 else 0), len(idx) - 1)
        val.append(idx[:n_val])
        fit.append(idx[n_val:])
    return np.sort(np.concatenate(fit)), np.sort(np.concatenate(val))


def _span_projection():
    from sklearn.base import BaseEstimator, TransformerMixin

    class SpanProjection(TransformerMixin, BaseEstimator):
        """Coordinates in the span of the training examples (an exact shortcut).

        With an L2 penalty the SVM's weight vector lies in the span of its
        training examples, and the dual problem depends only on their inner
        products, which an orthonormal basis of that span preserves. So when
        there are fewer examples (N) than features (D), fitting on the N
        coordinates gives the same classifier as fitting on the D features,
        D / N times faster. Identity when N >= D.
        """

        def fit(self, x, y=None):
            x = np.asarray(x, dtype="float64")
            n, d = x.shape
            if n >= d:
                self.basis_ = None
                return self
            values, vectors = np.linalg.eigh(x @ x.T)  # Gram matrix, N x N
            keep = values > values.max() * 1e-10
            self.basis_ = (x.T @ vectors[:, keep]) / np.sqrt(values[keep])  # D x rank, orthonormal
            return self

        def transform(self, x):
            x = np.asarray(x, dtype="float64")
            return x if self.basis_ is None else x @ self.basis_

    return SpanProjection()


def _svm(c: float, shape):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    n, d = shape
    if n >= d:
        return make_pipeline(
            StandardScaler(),
            LinearSVC(C=c, loss="squared_hinge", penalty="l2", dual="auto", max_iter=1000, random_state=0),
        )
    # Fewer examples than features: dual="auto" picks the dual problem, which
    # only sees inner products, so solve it on the span coordinates (exact,
    # D / N times cheaper). dual=True keeps the choice "auto" made on the D features.
    return make_pipeline(
        StandardScaler(),
        _span_projection(),
        LinearSVC(C=c, loss="squared_hinge", penalty="l2", dual=True, max_iter=1000, random_state=0),
    )


def train_linear_svm(x_train, y_train, x_val=None, y_val=None, cs=(0.01, 0.1, 1.0, 10.0), seed: int = 0):
    """A standardised one-vs-rest linear L2-SVM, its C chosen on a validation split.

    Args:
        x_train, y_train: features `(N, D)` and integer labels `(N,)`.
        x_val, y_val: validation features and labels; when omitted, 20% of the
            training examples (stratified) are held out to choose C, and the
            final model is refitted on all training examples.
        cs: the values of C to try.
        seed: seed of the validation split.

    Returns:
        `(pipeline, c)`: a fitted sklearn `Pipeline` (StandardScaler, an exact
        projection onto the span of the training examples when they are fewer
        than the features, LinearSVC) and the chosen C.
    """
    from sklearn.exceptions import ConvergenceWarning

    x_train = np.asarray(x_train, dtype="float32").reshape(len(x_train), -1)
    y_train = np.asarray(y_train)
    if not cs:
        raise ValueError("cs must name at least one value of C.")
    refit = x_val is None
    if refit:
        if len(cs) == 1:
            fit_idx, val_idx = np.arange(len(y_train)), np.array([], dtype=int)
        else:
            fit_idx, val_idx = _stratified_split(y_train, 0.2, seed)
        x_fit, y_fit, x_val, y_val = x_train[fit_idx], y_train[fit_idx], x_train[val_idx], y_train[val_idx]
    else:
        x_fit, y_fit = x_train, y_train
        x_val = np.asarray(x_val, dtype="float32").reshape(len(x_val), -1)
        y_val = np.asarray(y_val)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        best_c, best_acc, best_model = cs[0], -1.0, None
        for c in cs:
            model = _svm(c, x_fit.shape).fit(x_fit, y_fit)
            acc = float(model.score(x_val, y_val)) if len(y_val) else 0.0
            if acc > best_acc:
                best_c, best_acc, best_model = c, acc, model
        if refit and len(y_val):
            best_model = _svm(best_c, x_train.shape).fit(x_train, y_train)
    return best_model, best_c


# -- the few-labels protocol -----------------------------------------------------


def label_draws(labels, labels_per_class: int = 100, draws: int = 5, seed: int = 0, groups=None):
    """Random splits: N labelled examples per class to train on, the rest to test on.

    Args:
        labels: integer labels `(N,)`.
        labels_per_class, draws, seed: N, the number of splits, their seed.
        groups: optional per-image group ids (e.g. an emoji and its skin-tone
            variants share one). Then each class's N labelled examples come
            from N distinct groups (one image of each), and every image of a
            chosen group is left out of the test set, so no test image is a
            near copy of a labelled one.

    Returns:
        A list of `draws` pairs `(train_indices, test_indices)`; draw i uses
        the random generator seeded with `(seed, i)`, so every method sees the
        same splits.
    """
    labels = np.asarray(labels)
    if labels_per_class < 1 or draws < 1:
        raise ValueError(
            f"labels_per_class and draws must be positive. Received: {labels_per_class}, {draws}")
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"Need labels of at least 2 classes. Received: only class {classes.tolist()}")
    if groups is not None:
        groups = np.asarray(groups)
        if groups.shape != labels.shape:
            raise ValueError(f"groups must have one entry per label. Received: groups of shape {groups.shape}, "
                             f"labels of shape {labels.shape}")
    sizes = class_sizes(labels, groups)
    small = {int(c): n for c, n in sizes.items() if n <= labels_per_class}
    if small:
        unit = "groups" if groups is not None else "examples"
        raise ValueError(
            f"Every class needs more than labels_per_class={labels_per_class} {unit} (some to test on); "
            f"classes {sorted(small)} have {sorted(small.values())}. Lower labels_per_class or drop those "
            f"classes (drop_small_classes). Received: labels_per_class={labels_per_class}")
    out = []
    for d in range(draws):
        rng = np.random.default_rng([seed, d])
        train = []
        for c in classes:
            members = np.flatnonzero(labels == c)
            if groups is None:
                train.append(rng.choice(members, labels_per_class, replace=False))
                continue
            chosen = rng.choice(np.unique(groups[members]), labels_per_class, replace=False)
            train.append([rng.choice(members[groups[members] == g]) for g in chosen])
        train = np.sort(np.concatenate(train)).astype("int64")
        mask = np.ones(len(labels), bool)
        mask[train] = False
        if groups is not None:
            mask &= ~np.isin(groups, groups[train])
        out.append((train, np.flatnonzero(mask)))
    return out


def class_sizes(labels, groups=None) -> dict:
    """`{class: size}`: examples per class, or distinct groups per class when `groups` is given."""
    labels = np.asarray(labels)
    if groups is None:
        classes, counts = np.unique(labels, return_counts=True)
        return {int(c): int(n) for c, n in zip(classes, counts)}
    groups = np.asarray(groups)
    return {int(c): len(np.unique(groups[labels == c])) for c in np.unique(labels)}


def drop_small_classes(labels, labels_per_class: int, groups=None) -> tuple:
    """The classes too small for `label_draws`, and the indices of the examples of the others.

    Returns:
        `(keep, dropped)`: sorted indices of the examples whose class has more
        than `labels_per_class` examples (distinct groups, with `groups`), and
        `{class: size}` of the classes left out.
    """
    labels = np.asarray(labels)
    sizes = class_sizes(labels, groups)
    dropped = {c: n for c, n in sizes.items() if n <= labels_per_class}
    keep = np.flatnonzero(~np.isin(labels, list(dropped)))
    if len(sizes) - len(dropped) < 2:
        raise ValueError(f"Fewer than 2 classes have more than labels_per_class={labels_per_class} examples: "
                         f"sizes {sizes}. Lower labels_per_class. Received: labels_per_class={labels_per_class}")
    return keep, dropped


def _summary(accuracies, **extra) -> dict:
    acc = [float(a) for a in accuracies]
    return {"mean": float(np.mean(acc)), "std": float(np.std(acc)), "accuracies": acc, **extra}


def evaluate_features(feature_fn, images, labels, labels_per_class: int = 100, draws: int = 5,
                      seed: int = 0, cs=(0.01, 0.1, 1.0, 10.0), groups=None) -> dict:
    """Linear L2-SVM test accuracy on features, over random few-label draws.

    Args:
        feature_fn: maps all `images` to features `(N, D)` (called once).
        images, labels: the whole labelled pool.
        labels_per_class: N, the labelled training examples per class.
        draws: number of random draws (see `label_draws`).
        seed: seed of the draws.
        cs: the values of C tried (chosen per draw on 20% of its training labels).
        groups: optional group ids keeping near copies out of the test set (`label_draws`).

    Returns:
        `{"mean", "std", "accuracies", "cs", "feature_length", "balanced_mean",
        "balanced_accuracies"}`: test accuracy over draws, its per-draw values,
        each draw's chosen C, and the balanced accuracy (mean per-class recall,
        the number to read when the test classes are unbalanced).
    """
    labels = np.asarray(labels)
    feats = np.asarray(feature_fn(images), dtype="float32").reshape(len(labels), -1)
    accs, balanced, chosen = [], [], []
    for d, (train, test) in enumerate(label_draws(labels, labels_per_class, draws, seed, groups)):
        model, c = train_linear_svm(feats[train], labels[train], cs=cs, seed=seed + d)
        predicted = model.predict(feats[test])
        accs.append(float(np.mean(predicted == labels[test])))
        balanced.append(_balanced_accuracy(labels[test], predicted))
        chosen.append(c)
    return _summary(accs, cs=chosen, feature_length=int(feats.shape[1]),
                    balanced_mean=float(np.mean(balanced)), balanced_accuracies=balanced)


def _balanced_accuracy(truth, predicted) -> float:
    """The mean over the classes of the share of each class's examples predicted right."""
    return float(np.mean([np.mean(predicted[truth == c] == c) for c in np.unique(truth)]))


def supervised_baseline(discriminator: keras.Model, x_train, y_train, x_test, y_test,
                        epochs: int = 20, batch_size: int = 64, num_classes: int | None = None,
                        learning_rate: float = 1e-3, seed: int = 0) -> float:
    """Test accuracy of the discriminator's architecture trained with labels only.

    The architecture is cloned (fresh weights); its last layer (the logit) is
    replaced by a `num_classes`-way softmax `Dense`, and the whole network is
    trained from scratch with Adam on `(x_train, y_train)`.
    """
    keras.utils.set_random_seed(seed)
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    num_classes = num_classes or int(max(y_train.max(), y_test.max())) + 1
    clone = keras.models.clone_model(discriminator)
    head_input = clone.layers[-1].input
    out = layers.Dense(num_classes, activation="softmax", dtype="float32", name="classes")(head_input)
    model = keras.Model(clone.input, out, name="supervised_d")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(np.asarray(x_train, "float32"), y_train, epochs=epochs, batch_size=batch_size,
              shuffle=True, verbose=0)
    return float(model.evaluate(np.asarray(x_test, "float32"), y_test, batch_size=256,
                                verbose=0, return_dict=True)["accuracy"])


def prepare_images(discriminator: keras.Model, images) -> np.ndarray:
    """Images resized and scaled to [-1, 1] for the discriminator's input."""
    from dcgan_keras.data import preprocess

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    _, size, _, channels = discriminator.input_shape
    out = [np.asarray(preprocess(images[i : i + 1024], int(size), int(channels)))
           for i in range(0, len(images), 1024)]
    return np.concatenate(out).astype("float32")


def features_protocol(discriminator: keras.Model, images, labels, labels_per_class: int = 100,
                      draws: int = 5, seed: int = 0, include_supervised: bool = True,
                      supervised_epochs: int = 20, grid: int = 4, log=None, groups=None,
                      drop_small: bool = False) -> dict:
    """The four rows (pixels, random D, trained D, supervised D) on the same draws.

    Args:
        discriminator: the trained discriminator.
        images: uint8 `(N, H, W[, C])` or float images in [0, 1] (resized and
            scaled to [-1, 1] for the discriminator), or float32 images already
            of the discriminator's input shape in [-1, 1].
        labels: integer labels `(N,)`.
        labels_per_class, draws, seed: see `label_draws`.
        include_supervised: also train the supervised same-architecture row.
        supervised_epochs: its training epochs.
        grid: pooled grid side (4 in the paper).
        log: optional callable taking one progress line.
        groups: optional per-image group ids: labelled examples come from
            distinct groups and no test image shares a group with one
            (`label_draws`), e.g. Twemoji's `base` emoji.
        drop_small: leave out the classes with too few examples (groups) for
            `labels_per_class` (`drop_small_classes`) instead of failing.

    Returns:
        `{"labels_per_class", "draws", "num_train", "num_test", "dropped_classes",
        "rows": {name: summary}}` (`dropped_classes`: `{class: size}`)
        where each summary holds `mean`, `std` and per-draw `accuracies`
        (plus `seconds`).
    """
    log = log or (lambda line: None)
    labels = np.asarray(labels)
    images = np.asarray(images)
    dropped = {}
    if drop_small:
        keep, dropped = drop_small_classes(labels, labels_per_class, groups)
        if dropped:
            log(f"dropped classes {dropped} (class: size): too small for {labels_per_class} labels per class")
            images, labels = images[keep], labels[keep]
            groups = None if groups is None else np.asarray(groups)[keep]
    want = tuple(int(s) for s in discriminator.input_shape[1:])
    if images.dtype == np.float32 and images.shape[1:] == want and images.min() < 0:
        x = images
    else:
        x = prepare_images(discriminator, images)
    splits = label_draws(labels, labels_per_class, draws, seed, groups)
    common = dict(labels_per_class=labels_per_class, draws=draws, seed=seed, groups=groups)
    rows = {}

    def timed(name, fn):
        start = time.time()
        rows[name] = fn()
        rows[name]["seconds"] = round(time.time() - start, 1)
        log(f"{name}: {rows[name]['mean']:.4f} +- {rows[name]['std']:.4f} ({rows[name]['seconds']} s)")

    timed("trained_d", lambda: evaluate_features(
        lambda im: extract(feature_extractor(discriminator, grid), im), x, labels, **common))
    random_d = random_discriminator(discriminator, seed)
    timed("random_d", lambda: evaluate_features(
        lambda im: extract(feature_extractor(random_d, grid), im), x, labels, **common))
    timed("pixels", lambda: evaluate_features(lambda im: im.reshape(len(im), -1), x, labels, **common))
    if include_supervised:
        def supervised():
            accs = []
            for d, (train, test) in enumerate(splits):
                accs.append(supervised_baseline(
                    discriminator, x[train], labels[train], x[test], labels[test],
                    epochs=supervised_epochs, num_classes=int(labels.max()) + 1, seed=seed + d))
                log(f"supervised draw {d}: {accs[-1]:.4f}")
            return _summary(accs, epochs=supervised_epochs)
        timed("supervised", supervised)
    return {
        "labels_per_class": labels_per_class,
        "draws": draws,
        "seed": seed,
        "num_train": int(len(splits[0][0])),
        "num_test": int(len(splits[0][1])),
        "grouped": groups is not None,
        "dropped_classes": {str(c): n for c, n in dropped.items()},
        "rows": rows,
    }


def markdown_table(table: dict) -> str:
    """The protocol's table as markdown: method, feature length, accuracy and error."""
    lines = [
        f"{table['labels_per_class']} labels per class ({table['num_train']} train, "
        f"{table['num_test']} test), {table['draws']} draws"
        + (", no test image shares a group with a labelled one" if table.get("grouped") else "")
        + (f"; classes left out (class: size): {table['dropped_classes']}" if table.get("dropped_classes") else ""),
        "",
        "| method | features | accuracy (mean +- std) | error | per draw | balanced accuracy |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for key in ROWS:
        if key not in table["rows"]:
            continue
        row = table["rows"][key]
        length = row.get("feature_length", "-")
        per = ", ".join(f"{a:.4f}" for a in row["accuracies"])
        balanced = f"{100 * row['balanced_mean']:.2f}%" if "balanced_mean" in row else "-"
        lines.append(f"| {ROW_NAMES[key]} | {length} | {100 * row['mean']:.2f}% +- {100 * row['std']:.2f} "
                     f"| {100 * (1 - row['mean']):.2f}% | {per} | {balanced} |")
    return "\n".join(lines)
