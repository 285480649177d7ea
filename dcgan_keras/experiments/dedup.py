"""Near-duplicate removal with a hashing autoencoder, as the paper did for LSUN (section 4.1.1).

The paper trained a 3072-128-3072 de-noising, dropout-regularised ReLU
autoencoder on 32x32 down-sampled centre crops of the bedrooms, binarised the
128 code units by thresholding the ReLU activations (semantic hashing), and
treated images whose codes fell into the same hash bucket as near duplicates
(about 275,000 removed from 3M, precision estimated above 95%).

Here the input has `32 * 32 * channels` units: 3072 for colour images as in
the paper, 1024 for the single-channel digits. The autoencoder:

    input (in [-1, 1], flattened) -> Gaussian noise (training only, de-noising)
    -> Dense(code_size, ReLU) -> Dropout (training only) -> Dense(input size)

trained with mean squared error to rebuild the clean input. A unit is "on"
when its ReLU activation exceeds `threshold`; images with identical bit codes
share a bucket, and every bucket of two or more images is a group of near
duplicates. The first image of each group (in the source's order) is kept.

Nothing here deletes or moves files: `write_report` writes a JSON report and a
text file listing what to keep.

Example:

```python
from dcgan_keras.experiments import dedup

images, names = dedup.load_images("path/to/images/")          # (N, 32, 32, 3) in [-1, 1]
encoder, _ = dedup.train_hash_autoencoder(images, epochs=10)
result = dedup.find_duplicates(encoder, images)
print(result["counts"], result["groups"][:3])
```
"""

from __future__ import annotations

import os

import numpy as np

import keras
from keras import layers

from dcgan_keras.files import atomic_write_json, atomic_write_text
from dcgan_keras.sampling import batched_forward

HASH_SIZE = 32  # side of the down-sampled centre crops, as in the paper


# -- images ------------------------------------------------------------------------------


def _numpy_file(path: str) -> np.ndarray:
    data = np.load(path, allow_pickle=False)
    if isinstance(data, np.ndarray):
        return data
    with data:
        key = "images" if "images" in data.files else data.files[0]
        return data[key]


def load_images(source, image_size: int = HASH_SIZE, channels: int | None = None,
                max_images: int | None = None, batch_size: int = 256):
    """Images of a source, in order, centre-cropped and resized, with their names.

    Args:
        source: "digits" (the bundled 5,000), "twemoji" (the bundled 3,491
            colour emoji, in `load_twemoji`'s order), a folder of images (searched
            recursively, sorted by path), a `.npy` / `.npz` file (array
            `images` or the first one), or a NumPy array `(N, H, W[, C])`
            (uint8 0..255 or float 0..1).
        image_size: side of the output images (32 for hashing).
        channels: 1 or 3; `None` keeps the source's own (digits 1, folders 3).
        max_images: only the first this many.
        batch_size: images per preprocessing batch.

    Returns:
        `(images, names)`: float32 `(N, image_size, image_size, channels)` in
        [-1, 1], and a list of N names: the file paths for a folder, the
        indices (as strings) otherwise.
    """
    import tensorflow as tf

    from dcgan_keras.data import array_images, folder_images, load_digits, load_twemoji, preprocess, resolve_source

    kind, value = resolve_source(source, accepted=("digits", "twemoji", "folder", "numpy_file", "array"))
    names = None
    if kind == "folder":  # unreadable files are left out (and counted in a warning)
        ds, names = folder_images(value, skip_errors=False)
        if max_images:
            ds, names = ds.take(max_images), names[:max_images]
        channels = channels or 3
    else:
        if kind == "digits":
            array = load_digits()[0]
        elif kind == "twemoji":
            array = load_twemoji()["images"]
        elif kind == "numpy_file":
            array = _numpy_file(value)
        else:
            array = value
        ds = array_images(array)  # validated: rank, dtype, range, NaN
        if max_images:
            ds = ds.take(max_images)
        channels = channels or (1 if ds.element_spec.shape[-1] == 1 else 3)
    ds = ds.map(lambda image: preprocess(image, image_size, channels), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    images = np.concatenate([b.numpy() for b in ds.batch(batch_size)])
    return images, list(names) if names is not None else [str(i) for i in range(len(images))]


# -- the autoencoder -------------------------------------------------------------------------


def build_hash_autoencoder(input_size: int, code_size: int = 128, noise: float = 0.2,
                           dropout: float = 0.2) -> tuple:
    """The de-noising, dropout-regularised ReLU autoencoder (3072-128-3072 in the paper).

    Args:
        input_size: flattened image size (`32 * 32 * channels`).
        code_size: ReLU code units (= bits of the hash).
        noise: standard deviation of the Gaussian noise added to the input
            while training (pixel values are in [-1, 1]).
        dropout: dropout rate on the code while training.

    Returns:
        `(autoencoder, encoder)`: `keras.Model`s sharing layers; the encoder
        maps flattened images to the ReLU code.
    """
    if not 0.0 <= dropout < 1.0 or noise < 0:
        raise ValueError(f"Need 0 <= dropout < 1 and noise >= 0. Received: dropout={dropout}, noise={noise}")
    inputs = keras.Input(shape=(input_size,), name="pixels")
    x = layers.GaussianNoise(noise, name="corrupt")(inputs) if noise > 0 else inputs
    code = layers.Dense(code_size, activation="relu", name="code")(x)
    y = layers.Dropout(dropout, name="code_dropout")(code) if dropout > 0 else code
    outputs = layers.Dense(input_size, name="reconstruction")(y)
    autoencoder = keras.Model(inputs, outputs, name="hash_autoencoder")
    encoder = keras.Model(inputs, code, name="hash_encoder")
    return autoencoder, encoder


def train_hash_autoencoder(images, code_size: int = 128, epochs: int = 10, batch_size: int = 128,
                           noise: float = 0.2, dropout: float = 0.2, learning_rate: float = 1e-3,
                           seed: int = 0, verbose: int = 0) -> tuple:
    """Trains the hashing autoencoder on images and returns its encoder.

    Args:
        images: `(N, 32, 32, C)` in [-1, 1] (see `load_images`).
        code_size, noise, dropout: see `build_hash_autoencoder`.
        epochs, batch_size, learning_rate: Adam training of the mean squared
            reconstruction error of the clean images.
        seed: seed of the weights, noise and shuffling.
        verbose: Keras' progress output.

    Returns:
        `(encoder, history)`: the encoder model (flattened images -> ReLU
        code) and the Keras `History`.
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(f"images must be a batch (N >= 2, H, W, C). Received: shape {images.shape}")
    keras.utils.set_random_seed(seed)
    flat = images.reshape(len(images), -1)
    autoencoder, encoder = build_hash_autoencoder(flat.shape[1], code_size, noise, dropout)
    autoencoder.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    history = autoencoder.fit(flat, flat, epochs=epochs, batch_size=batch_size, shuffle=True, verbose=verbose)
    return encoder, history


def hash_codes(encoder: keras.Model, images, threshold: float = 0.0, batch_size: int = 512) -> np.ndarray:
    """Binary codes `(N, code_size)` (bool): a unit is on when its ReLU activation exceeds `threshold`."""
    images = np.asarray(images, dtype="float32")
    flat = images.reshape(len(images), -1)
    if flat.shape[1] != encoder.input_shape[-1]:
        raise ValueError(
            f"The encoder takes {encoder.input_shape[-1]} values per image, the images have {flat.shape[1]}; "
            f"resize them as for training (load_images). Received: images of shape {images.shape}"
        )
    codes = batched_forward(encoder, flat, batch_size)
    return codes > threshold


def find_duplicates(encoder: keras.Model, images, threshold: float = 0.0, names=None,
                    min_bits: int = 1) -> dict:
    """Groups of near-duplicate images: hash buckets of identical binary codes.

    Args:
        encoder: from `train_hash_autoencoder`.
        images: `(N, 32, 32, C)` in [-1, 1].
        threshold: a code unit is on when its activation exceeds this.
        names: optional names of the images (e.g. file paths) used in the groups.
        min_bits: codes with fewer bits on are not hashed (a nearly empty code
            says little about the image and would put unrelated images together).

    Returns:
        `{"groups", "group_indices", "keep", "drop", "counts", "threshold"}`:
        groups of two or more images (as names when given, else indices), the
        same as indices, the indices to keep (all images but the later members
        of each group) and to drop, and counts (images, groups, duplicates,
        kept, skipped for too few bits).
    """
    codes = hash_codes(encoder, images, threshold)
    n = len(codes)
    if names is not None and len(names) != n:
        raise ValueError(f"names must have one entry per image ({n}). Received: {len(names)} names")
    bits = codes.sum(axis=1)
    buckets: dict = {}
    for i in np.flatnonzero(bits >= min_bits):
        buckets.setdefault(np.packbits(codes[i]).tobytes(), []).append(int(i))
    groups = sorted((g for g in buckets.values() if len(g) > 1), key=lambda g: g[0])
    drop = sorted(i for g in groups for i in g[1:])
    dropped = set(drop)
    keep = [i for i in range(n) if i not in dropped]
    return {
        "groups": [[names[i] for i in g] for g in groups] if names is not None else groups,
        "group_indices": groups,
        "keep": keep,
        "drop": drop,
        "counts": {
            "images": n, "groups": len(groups), "duplicates": len(drop), "kept": len(keep),
            "largest_group": max((len(g) for g in groups), default=0),
            "too_few_bits": int((bits < min_bits).sum()), "mean_bits_on": float(bits.mean()),
        },
        "threshold": float(threshold),
    }


def pair_scores(groups, true_pairs) -> dict:
    """Precision and recall of predicted duplicate pairs against known ones.

    Args:
        groups: lists of indices found together (`find_duplicates`' `group_indices`).
        true_pairs: pairs `(i, j)` known to be duplicates.

    Returns:
        `{"precision", "recall", "predicted_pairs", "true_pairs", "found_pairs"}`:
        every pair inside a group counts as predicted.
    """
    predicted = {(min(a, b), max(a, b)) for g in groups for k, a in enumerate(g) for b in g[k + 1 :]}
    truth = {(min(a, b), max(a, b)) for a, b in true_pairs}
    found = len(predicted & truth)
    return {
        "precision": found / len(predicted) if predicted else float("nan"),
        "recall": found / len(truth) if truth else float("nan"),
        "predicted_pairs": len(predicted),
        "true_pairs": len(truth),
        "found_pairs": found,
    }


def tone_groups(base, skin_tone) -> np.ndarray:
    """Ground-truth groups of near duplicates: the skin-tone variants of one emoji.

    Args:
        base: per image, the emoji it is a variant of (`load_twemoji()["base"]`).
        skin_tone: per image, 0 (none) or 1..5 (`load_twemoji()["skin_tone"]`).

    Returns:
        int array `(N,)`: the group of each image with `skin_tone > 0` (one group
        per `base`, numbered in order of first appearance), -1 for the others.
    """
    base, skin_tone = np.asarray(base), np.asarray(skin_tone)
    if base.shape != skin_tone.shape or base.ndim != 1:
        raise ValueError(f"base and skin_tone must be 1-D and of the same length. "
                         f"Received: base of shape {base.shape}, skin_tone of shape {skin_tone.shape}")
    ids: dict = {}
    return np.array([ids.setdefault(b, len(ids)) if t > 0 else -1 for b, t in zip(base.tolist(), skin_tone.tolist())],
                    dtype="int64")


def group_pairs(group_ids) -> list:
    """Every pair `(i, j)`, i < j, of images in the same group (ids < 0 belong to none)."""
    group_ids = np.asarray(group_ids)
    members: dict = {}
    for i, g in enumerate(group_ids.tolist()):
        if g >= 0:
            members.setdefault(g, []).append(i)
    return [(a, b) for m in members.values() for k, a in enumerate(m) for b in m[k + 1 :]]


def group_pair_scores(groups, group_ids, family_ids=None) -> dict:
    """`pair_scores` of found groups against known groups, with the wrong pairs split up.

    A predicted pair (two images in one found group) is right when both images
    are in the same known group, and wrong when they are in different groups or
    either is in none.

    Args:
        groups: lists of indices found together (`find_duplicates`' `group_indices`).
        group_ids: per image, its known group (`tone_groups`), < 0 for none.
        family_ids: optional per-image ids of a looser relation (e.g. the
            `base` emoji, so that a variant and its toneless original are one
            family): wrong pairs inside one family are counted apart.

    Returns:
        `pair_scores`' dict plus `"across_groups"` (wrong pairs of two grouped
        images), `"with_ungrouped"` (wrong pairs with an ungrouped image) and,
        with `family_ids`, `"same_family"` (wrong pairs inside one family).
    """
    group_ids = np.asarray(group_ids)
    scores = pair_scores(groups, group_pairs(group_ids))
    predicted = {(min(a, b), max(a, b)) for g in groups for k, a in enumerate(g) for b in g[k + 1 :]}
    wrong = [(a, b) for a, b in predicted if not (group_ids[a] >= 0 and group_ids[a] == group_ids[b])]
    scores["across_groups"] = sum(1 for a, b in wrong if group_ids[a] >= 0 and group_ids[b] >= 0)
    scores["with_ungrouped"] = len(wrong) - scores["across_groups"]
    if family_ids is not None:
        family_ids = np.asarray(family_ids)
        scores["same_family"] = sum(1 for a, b in wrong if family_ids[a] == family_ids[b])
    return scores


def twemoji_tone_scores(groups) -> dict:
    """`group_pair_scores` of groups found among the bundled Twemoji (in `load_twemoji`'s order).

    The known groups are the 316 sets of five skin-tone variants of one emoji
    (3,160 pairs); the family of an image is its `base` emoji.
    """
    from dcgan_keras.data import load_twemoji

    emoji = load_twemoji()
    return group_pair_scores(groups, tone_groups(emoji["base"], emoji["skin_tone"]),
                             family_ids=np.unique(emoji["base"], return_inverse=True)[1])


# -- a test set with known duplicates ------------------------------------------------------------


def inject_duplicates(images, num_exact: int = 100, num_shifted: int = 100, num_noisy: int = 100,
                      shift: int = 1, noise: float = 0.05, seed: int = 0) -> tuple:
    """Appends copies of random images: exact, shifted by `shift` pixels, and with Gaussian noise.

    Args:
        images: `(N, H, W, C)` in [-1, 1].
        num_exact, num_shifted, num_noisy: copies of each kind (of distinct originals).
        shift: pixels of the shift (down or right, chosen at random; edges wrap).
        noise: standard deviation of the added noise, in units of the [-1, 1] range.
        seed: seed of the choices.

    Returns:
        `(images, pairs, kinds)`: the N originals followed by the copies, the
        `(original, copy)` index pairs, and each pair's kind.
    """
    images = np.asarray(images, dtype="float32")
    total = num_exact + num_shifted + num_noisy
    if total > len(images):
        raise ValueError(f"Cannot copy {total} distinct images out of {len(images)}. Received: {total} copies")
    rng = np.random.default_rng(seed)
    originals = rng.choice(len(images), total, replace=False)
    copies, pairs, kinds = [], [], []
    for k, i in enumerate(originals):
        x = images[i]
        if k < num_exact:
            kind = "exact"
        elif k < num_exact + num_shifted:
            kind, x = "shifted", np.roll(x, shift, axis=int(rng.integers(0, 2)))
        else:
            kind = "noisy"
            x = np.clip(x + rng.normal(0.0, noise, x.shape).astype("float32"), -1.0, 1.0)
        pairs.append((int(i), len(images) + k))
        copies.append(x)
        kinds.append(kind)
    return np.concatenate([images, np.stack(copies)]) if copies else images, pairs, kinds


# -- files -------------------------------------------------------------------------------------------


def write_report(result: dict, out_dir, names=None, extra: dict | None = None) -> dict:
    """Writes `dedup_report.json` and `keep.txt` (one kept name per line) into `out_dir`.

    Nothing else is written; no image is moved or deleted.

    Returns:
        `{"report": path, "keep": path}`.
    """
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    names = names if names is not None else [str(i) for i in range(result["counts"]["images"])]
    report = {
        "counts": result["counts"],
        "threshold": result["threshold"],
        "groups": [[names[i] for i in g] for g in result["group_indices"]],
        "group_indices": result["group_indices"],
        "dropped": [names[i] for i in result["drop"]],
        **(extra or {}),
    }
    report_path = os.path.join(out_dir, "dedup_report.json")
    keep_path = os.path.join(out_dir, "keep.txt")
    atomic_write_json(report_path, report, indent=1)
    atomic_write_text(keep_path, "".join(f"{names[i]}\n" for i in result["keep"]))
    return {"report": report_path, "keep": keep_path}
