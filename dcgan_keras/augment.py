"""Differentiable augmentation of the images the discriminator sees.

DiffAugment (Zhao et al. 2020, "Differentiable Augmentation for Data-Efficient
GAN Training") transforms real *and* generated images with the same random
policy before every discriminator pass, including the one the generator's
gradient flows through. The transforms are plain tensor ops (shifts, masks,
gathers), so the gradient reaches the generator through them. The
discriminator then cannot win by memorising a small training set, and the
generator is not taught to produce augmented images, because the fakes are
augmented exactly like the reals.

The paper (Radford et al. 2016) uses no augmentation; `Config(augment=None)`
is that setting.

Pixel values of inputs and outputs are in [-1, 1] (brightness may leave it
slightly, as in the reference implementation).
"""

from __future__ import annotations

import tensorflow as tf

from dcgan_keras.config import parse_policy

def _uniform(shape, seed, minval=0.0, maxval=1.0, dtype=tf.float32):
    return tf.random.stateless_uniform(shape, seed=seed, minval=minval, maxval=maxval, dtype=dtype)


def color(images, seed):
    """Random brightness (+-0.5), saturation (x0..2) and contrast (x0.5..1.5) per image."""
    seeds = tf.random.experimental.stateless_split(seed, 3)
    batch = tf.shape(images)[0]
    shape = tf.stack([batch, 1, 1, 1])
    dtype = images.dtype
    images = images + tf.cast(_uniform(shape, seeds[0]) - 0.5, dtype)
    mean = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - mean) * tf.cast(_uniform(shape, seeds[1]) * 2.0, dtype) + mean
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * tf.cast(_uniform(shape, seeds[2]) + 0.5, dtype) + mean


def translation(images, seed, ratio: float = 0.125):
    """Shifts each image by up to `ratio` of its size in x and y, filling with zeros (mid-grey)."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    ty = _uniform(tf.stack([batch, 1, 1]), seeds[0], -shift_y, shift_y + 1, tf.int32)
    tx = _uniform(tf.stack([batch, 1, 1]), seeds[1], -shift_x, shift_x + 1, tf.int32)
    padded = tf.pad(images, [[0, 0], [shift_y, shift_y], [shift_x, shift_x], [0, 0]])
    rows = tf.range(height)[None, :, None] + shift_y + ty  # (batch, height, 1)
    cols = tf.range(width)[None, None, :] + shift_x + tx  # (batch, 1, width)
    index = tf.broadcast_to(tf.range(batch)[:, None, None], tf.stack([batch, height, width]))
    where = tf.stack(
        [index, tf.broadcast_to(rows, tf.shape(index)), tf.broadcast_to(cols, tf.shape(index))], axis=-1
    )
    return tf.gather_nd(padded, where)


def cutout(images, seed, ratio: float = 0.5):
    """Zeroes (mid-grey) one square of `ratio` times the image size, at a random place per image."""
    batch, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    size_y, size_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    seeds = tf.random.experimental.stateless_split(seed, 2)
    # The square's centre, anywhere such that part of it lies inside the image.
    cy = _uniform(tf.stack([batch, 1, 1]), seeds[0], 0, height + (1 - size_y % 2), tf.int32)
    cx = _uniform(tf.stack([batch, 1, 1]), seeds[1], 0, width + (1 - size_x % 2), tf.int32)
    rows = tf.range(height)[None, :, None] - (cy - size_y // 2)
    cols = tf.range(width)[None, None, :] - (cx - size_x // 2)
    inside = (rows >= 0) & (rows < size_y) & (cols >= 0) & (cols < size_x)
    return images * tf.cast(~inside, images.dtype)[..., None]


_TRANSFORMS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(images, policy, seed, probability=1.0):
    """Applies a policy's transforms, in order, each to a random share of the images.

    Args:
        images: a batch `(N, H, W, C)` with pixel values in [-1, 1].
        policy: a policy string (`"color,translation,cutout"`) or the tuple
            of `parse_policy`.
        seed: a stateless seed, an int32/int64 tensor of shape `(2,)`; the
            same seed gives the same transforms.
        probability: chance that each transform is applied to each image
            (a float or a scalar tensor; 1 = always, as DiffAugment; less as
            the adaptive augmentation of Karras et al. 2020).

    Returns:
        The augmented batch, same shape and dtype; differentiable with
        respect to `images`.
    """
    names = parse_policy(policy) if isinstance(policy, (str, type(None))) else tuple(policy)
    if not names:
        return images
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2 * len(names))
    always = isinstance(probability, (int, float)) and probability >= 1.0
    for i, name in enumerate(names):
        augmented = _TRANSFORMS[name](images, seeds[2 * i])
        if always:
            images = augmented
        else:
            chosen = _uniform(tf.shape(images)[:1], seeds[2 * i + 1]) < tf.cast(probability, tf.float32)
            images = tf.where(chosen[:, None, None, None], augmented, images)
    return images
