"""Guided backpropagation of discriminator features (Radford et al. 2016, section 6.2, figure 5).

Guided backpropagation (Springenberg et al. 2014, "Striving for simplicity")
shows the input-space pattern that excites one feature map: the gradient of
the map's activation with respect to the input image, where every rectifier
passes a gradient back only where its forward input was positive **and** the
gradient arriving from above is positive. Plain backpropagation keeps the
negative gradients too (which makes the picture noisy); the "deconvnet" keeps
only the positive gradients. The paper showed that the trained discriminator's
last convolutional features respond to beds and windows of LSUN bedrooms,
while a randomly initialised one's show no structure.

The guided rule here, for ReLU and LeakyReLU alike:

    dL/dx = dL/dy * [x > 0] * [dL/dy > 0]

LeakyReLU's small negative-side slope (0.2 in D) is treated as zero on the way
back, i.e. as ReLU's guided rule: the pattern shows what *drives the unit up*,
and the negative side never does. The forward pass is unchanged (LeakyReLU
stays LeakyReLU), so the activations being explained are the model's own.

The model is not modified: the discriminator is run layer by layer (batch norm
in inference mode) and only the rectifier layers' calls are replaced by a
`tf.custom_gradient` function.

Example:

```python
from dcgan_keras.experiments import dedup, features, guided

d = features.load_discriminator("runs/digits/ckpt.keras")
images, _ = dedup.load_images("digits", image_size=32, max_images=2000)  # (N, 32, 32, 1) in [-1, 1]
top = guided.top_activating(d, images, layer="down3_lrelu", k=6)
maps = guided.guided_backprop(d, images[top["indices"][0]], "down3_lrelu", channel=0)
fig = guided.guided_figure(d, features.random_discriminator(d), images, channels=range(6))
fig.savefig("guided.png")
```
"""

from __future__ import annotations

import numpy as np

import keras
import tensorflow as tf
from keras import layers

from dcgan_keras.experiments._shared import random_like, resolve_layer  # noqa: F401 (guided.resolve_layer is documented)
from dcgan_keras.sampling import batched_forward

REDUCTIONS = ("max", "sum")


# -- the guided rectifier -------------------------------------------------------


def guided_rectifier(forward):
    """Wraps a rectifier `forward(x)` so that its gradient follows the guided rule.

    The forward value is `forward(x)` unchanged; the gradient is
    `dy * [x > 0] * [dy > 0]`.

    Args:
        forward: a function of one tensor, e.g. a `keras.layers.LeakyReLU`
            layer or `tf.nn.relu`.

    Returns:
        A function of one tensor with the guided gradient.
    """

    @tf.custom_gradient
    def guided(x):
        def grad(dy):
            return dy * tf.cast(x > 0, dy.dtype) * tf.cast(dy > 0, dy.dtype)

        return forward(x), grad

    return guided


def _is_rectifier(layer) -> bool:
    if isinstance(layer, (layers.ReLU, layers.LeakyReLU)):
        return True
    if isinstance(layer, layers.Activation):
        name = getattr(layer.activation, "__name__", "")
        return name in ("relu", "leaky_relu", "relu6")
    return False


# -- running a discriminator layer by layer ------------------------------------------


def _chain_upto(model: keras.Model, target) -> list:
    """The layers from the input to `target` (included), checking the model is a chain."""
    chain = [lay for lay in model.layers if not isinstance(lay, layers.InputLayer)]
    previous = model.inputs[0] if len(model.inputs) == 1 else None
    for lay in chain:
        try:
            ok = previous is not None and lay.input is previous
        except (AttributeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(
                "guided backpropagation runs the model layer by layer and needs a "
                "single-input chain of layers, each fed by the one before (as "
                f"build_discriminator's). Layer {lay.name!r} of {model.name!r} is not. "
                f"Received: model={model.name!r}"
            )
        previous = lay.output
        if lay is target:
            return chain[: chain.index(lay) + 1]
    raise ValueError(f"Layer {target.name!r} is not part of {model.name!r}. Received: layer={target.name!r}")


def guided_forward(model: keras.Model, images, layer=None, guided: bool = True):
    """The output of `layer` for `images`, computed with guided rectifiers.

    Runs the model's layers one after the other with `training=False` (batch
    norm uses its moving statistics), replacing each rectifier's call with
    `guided_rectifier(layer)` when `guided` is true. Values equal the model's
    own; only the gradient differs. Use inside a `tf.GradientTape`.

    Args:
        model: a chain-shaped functional model, e.g. a DCGAN discriminator.
        images: a float32 tensor `(N, H, W, C)` in the model's input range.
        layer: see `resolve_layer`.
        guided: `False` gives the plain forward pass (and plain gradients).

    Returns:
        The layer's output as a tensor.
    """
    target = resolve_layer(model, layer)
    x = images
    for lay in _chain_upto(model, target):
        if guided and _is_rectifier(lay):
            x = guided_rectifier(lambda t, lay=lay: lay(t))(x)
        else:
            x = lay(x, training=False)
    return x


def _objective(activations, channel: int, reduce: str):
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}. Received: reduce={reduce!r}")
    channels = int(activations.shape[-1])
    if not -channels <= channel < channels:
        raise ValueError(f"channel must be in 0..{channels - 1} for this layer. Received: channel={channel}")
    maps = tf.reshape(activations[..., channel], (tf.shape(activations)[0], -1))
    return tf.reduce_max(maps, axis=1) if reduce == "max" else tf.reduce_sum(maps, axis=1)


def guided_backprop(discriminator: keras.Model, images, layer=None, channel: int = 0,
                    reduce: str = "max", guided: bool = True, batch_size: int = 64) -> np.ndarray:
    """The input-space pattern that excites one feature map, image by image.

    Args:
        discriminator: a chain-shaped functional model (`DCGAN.discriminator`);
            it is not modified.
        images: `(N, H, W, C)` in the model's input range ([-1, 1] for D).
        layer: a layer name, an index into the convolution outputs, or `None`
            for the last convolution's activated output (see `resolve_layer`).
        channel: the feature map (last axis of the layer's output).
        reduce: "max" explains the map's strongest position in each image
            (Springenberg et al.'s choice); "sum" the whole map.
        guided: `False` gives the plain gradient, for comparison.
        batch_size: images per pass.

    Returns:
        float32 array of the shape of `images`: d(activation)/d(image).
    """
    images = np.asarray(images, dtype="float32")
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(discriminator.input_shape[1:]):
        raise ValueError(
            f"images must have shape (N, {', '.join(str(s) for s in discriminator.input_shape[1:])}) "
            f"to match the discriminator's input. Received: images of shape {images.shape}"
        )
    out = []
    for i in range(0, len(images), batch_size):
        x = tf.convert_to_tensor(images[i : i + batch_size])
        with tf.GradientTape() as tape:
            tape.watch(x)
            act = guided_forward(discriminator, x, layer, guided=guided)
            objective = tf.reduce_sum(_objective(act, int(channel), reduce))
        out.append(tape.gradient(objective, x).numpy())
    return np.concatenate(out) if out else np.zeros_like(images)


def layer_activations(model: keras.Model, images, layer=None, batch_size: int = 256) -> np.ndarray:
    """The output of `layer` for `images` (inference mode), as a float32 array."""
    target = resolve_layer(model, layer)
    sub = keras.Model(model.inputs[0], target.output)  # shares the layers, changes nothing
    return batched_forward(sub, images, batch_size)


def top_activating(discriminator: keras.Model, images, layer=None, k: int = 9,
                   channels=None, batch_size: int = 256) -> dict:
    """The k images that excite each feature map most (largest value anywhere in the map).

    Args:
        discriminator: the model; not modified.
        images: `(N, H, W, C)` in the model's input range.
        layer: see `resolve_layer`.
        k: images per channel (at most N).
        channels: the channels to rank (default: all).
        batch_size: images per pass.

    Returns:
        `{"layer", "channels", "indices", "values"}`: indices into `images` and
        their maximal activations, both of shape `(len(channels), k)`, best first.
    """
    target = resolve_layer(discriminator, layer)
    if k < 1 or k > len(images):
        raise ValueError(f"k must be in 1..{len(images)} (the number of images). Received: k={k}")
    act = layer_activations(discriminator, images, target, batch_size)
    peak = act.reshape(len(act), -1, act.shape[-1]).max(axis=1)  # (N, C)
    channels = list(range(peak.shape[1])) if channels is None else [int(c) for c in channels]
    bad = [c for c in channels if not 0 <= c < peak.shape[1]]
    if bad:
        raise ValueError(f"channels must be in 0..{peak.shape[1] - 1} for {target.name!r}. Received: {bad}")
    order = np.argsort(-peak[:, channels], axis=0, kind="stable")[:k].T  # (channels, k)
    values = np.take_along_axis(peak[:, channels].T, order, axis=1)
    return {"layer": target.name, "channels": channels, "indices": order, "values": values}


def label_purity(top_indices, labels) -> np.ndarray:
    """For each feature map, the share of its top images that carry its most common label.

    `top_indices` is `top_activating`'s `(channels, k)` "indices"; `labels`
    one label per image (e.g. the Twemoji category, or `base`: the same emoji
    in any skin tone). 1.0 means all k images of a map share a label; a map
    that picks images at random scores about the largest class's share.
    """
    labels = np.asarray(labels)
    top = np.asarray(top_indices)
    if top.ndim != 2:
        raise ValueError(f"top_indices must be (channels, k). Received: shape {top.shape}")
    out = []
    for row in top:
        _, counts = np.unique(labels[row], return_counts=True)
        out.append(counts.max() / len(row))
    return np.asarray(out, dtype="float64")


# -- figures ----------------------------------------------------------------------------


def to_display(gradients) -> np.ndarray:
    """Gradients scaled image by image to [-1, 1] around mid-grey (zero gradient = grey).

    Each image is divided by its largest absolute value, so the strongest
    positive input direction is white, the strongest negative one black.
    """
    g = np.asarray(gradients, dtype="float32")
    scale = np.abs(g.reshape(len(g), -1)).max(axis=1).reshape(-1, *([1] * (g.ndim - 1)))
    return np.where(scale > 0, g / np.maximum(scale, 1e-12), 0.0).astype("float32")


def guided_panel(discriminator: keras.Model, images, layer=None, channels=range(6), k: int = 6,
                 with_inputs: bool = False) -> dict:
    """Guided backprop maps of the top-k images of each channel, as one grid image.

    Returns:
        `{"grid", "top"}`: a float32 image `(rows, cols, C)` in [-1, 1] with
        one row per channel (k maps, or k input/map pairs with `with_inputs`)
        and `top_activating`'s result.
    """
    from dcgan_keras.images import image_grid

    images = np.asarray(images, dtype="float32")
    channels = list(channels)
    top = top_activating(discriminator, images, layer, k=k, channels=channels)
    cells = []
    for row, channel in enumerate(channels):
        picked = images[top["indices"][row]]
        maps = to_display(guided_backprop(discriminator, picked, top["layer"], channel))
        if with_inputs:
            cells.extend(x for pair in zip(picked, maps) for x in pair)
        else:
            cells.extend(maps)
    grid = image_grid(np.stack(cells), rows=len(channels), padding=1, pad_value=1.0)
    return {"grid": grid, "top": top}


def guided_figure(trained: keras.Model, random: keras.Model | None, images, layer=None,
                  channels=range(6), k: int = 6, with_inputs: bool = False, dpi: int = 100):
    """The paper's figure 5: guided backprop of a trained and a random-init discriminator.

    For each of `channels` of `layer` (by default the last convolution's
    activated output), the k images that excite it most, each shown as its
    guided-backprop map (grey = zero gradient, white = pixels whose brightening
    raises the feature). Left: the trained D; right: the same architecture with
    random weights (`features.random_discriminator(trained)`, i.e. `_shared.random_like`, when `random` is `None`).

    Returns:
        A `matplotlib.figure.Figure` (save it with `fig.savefig(path)`).
    """
    from matplotlib.figure import Figure

    random = random_like(trained) if random is None else random
    panels = [("trained D", trained), ("random-init D", random)]
    fig = Figure(figsize=(2 * (0.6 * k * (2 if with_inputs else 1) + 0.6), 0.6 * len(list(channels)) + 0.9),
                 dpi=dpi, layout="constrained")
    axes = fig.subplots(1, 2)
    name = resolve_layer(trained, layer).name
    for ax, (title, model) in zip(axes, panels):
        panel = guided_panel(model, images, name, channels, k, with_inputs)
        grid = (panel["grid"] + 1.0) / 2.0
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1,
                  interpolation="nearest")
        ax.set_title(f"{title}: {name}", fontsize=9)
        ax.set_yticks([(i + 0.5) * (grid.shape[0] - 1) / len(panel["top"]["channels"])
                       for i in range(len(panel["top"]["channels"]))])
        ax.set_yticklabels([f"ch {c}" for c in panel["top"]["channels"]], fontsize=7)
        ax.set_xticks([])
    return fig
