"""Helpers that several experiments share: finding a network's layers, and a fresh copy of it.

The experiments (`features`, `guided`, `ablation`, `latent`) import these from
here, never from each other; `features.conv_activations`,
`features.random_discriminator` and `guided.resolve_layer` stay importable
under their documented names.
"""

from __future__ import annotations

import numpy as np

import keras
from keras import layers

_ACTIVATIONS = (layers.LeakyReLU, layers.ReLU, layers.ELU, layers.PReLU, layers.Activation, layers.Softmax)


def conv_activations(discriminator: keras.Model) -> list:
    """The layer whose output is each convolution's activated output, in order.

    For each `Conv2D`, the first activation layer (LeakyReLU, ReLU, ...) that
    follows it before the next convolution; the convolution itself (or its batch
    norm) when there is none.
    """
    found, current = [], None
    for layer in discriminator.layers:
        if isinstance(layer, layers.Conv2D):
            if current is not None:
                found.append(current[1])
            current = [layer, layer, False]  # conv, output layer, activation seen
        elif current is not None and not current[2]:
            if isinstance(layer, _ACTIVATIONS):
                current[1], current[2] = layer, True
            elif isinstance(layer, (layers.BatchNormalization, layers.LayerNormalization)):
                current[1] = layer
            elif isinstance(layer, (layers.Flatten, layers.Dense, layers.GlobalAveragePooling2D)):
                found.append(current[1])
                current = None
    if current is not None:
        found.append(current[1])
    if not found:
        raise ValueError(f"Model {discriminator.name!r} has no Conv2D layer to take features from.")
    return found


def resolve_layer(model: keras.Model, layer, candidates=None):
    """The layer of `model` named by `layer`.

    Args:
        model: a functional model.
        layer: a layer name (e.g. "down3_lrelu"), an integer index into
            `candidates` (0 is the first, -1 the last), or `None` for the last
            candidate.
        candidates: the layers an index counts; by default the model's
            convolution outputs (`conv_activations`), whose last is the
            paper's choice.

    Returns:
        The `keras.layers.Layer`.
    """
    if layer is None:
        layer = -1
    if isinstance(layer, (int, np.integer)):
        candidates = conv_activations(model) if candidates is None else candidates
        if not -len(candidates) <= int(layer) < len(candidates):
            raise ValueError(
                f"layer index {layer} is out of range: {model.name!r} has {len(candidates)} "
                f"candidate layers ({', '.join(c.name for c in candidates)}). Received: layer={layer}"
            )
        return candidates[int(layer)]
    if isinstance(layer, layers.Layer):
        return layer
    names = [lay.name for lay in model.layers]
    if layer not in names:
        raise ValueError(
            f"Model {model.name!r} has no layer named {layer!r}; its layers are "
            f"{', '.join(names)}. Received: layer={layer!r}"
        )
    return model.get_layer(layer)


def random_like(model: keras.Model, seed: int = 0) -> keras.Model:
    """The same architecture with freshly initialised weights (`clone_model`): the paper's baseline.

    For a discriminator, the random-init D of sections 5 and 6.2; for a
    generator, the untrained G a walk's smoothness is compared with. A
    generator's latent prior is copied, so that it is fed the same z.
    """
    from dcgan_keras.sampling import latent_prior, record_prior

    keras.utils.set_random_seed(seed)
    copy = keras.models.clone_model(model)
    if hasattr(model, "latent_modes"):  # a generator that records its prior
        record_prior(copy, *latent_prior(model))
    return copy
