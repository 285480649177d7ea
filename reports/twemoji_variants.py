"""The Twemoji default trained with one change, for docs/quality.md's levers.

Usage: python reports/twemoji_variants.py VARIANT RUN_DIR EXPORT_DIR [--seed 0] [--base-width W] [--epochs N]

Trains the default recipe on the bundled Twemoji at 64x64 for its 130 epochs (7,020 steps; the
rows of docs/quality.md that pass `--epochs 87` were made before the default had more) with:
- `lr-decay`: both Adam learning rates scaled by min(1, 2 (1 - step / steps)), a linear decay
  to 0 over the second half; the generator is exported to EXPORT_DIR.
- `swa`: the generator's weights also averaged uniformly over the last third of the steps
  (stochastic weight averaging), beside the default's moving average, whose warm-up
  min(0.999, (1 + t) / (10 + t)) weighs about the last tenth. The default's EMA generator is
  exported to EXPORT_DIR/ema; then the uniform average is put into it, given batch-norm
  statistics of its own (`DCGAN.recalibrate_batch_norm`) and exported to EXPORT_DIR/swa.
- `minibatch-std`: a discriminator that also sees the standard deviation of its last 4x4
  features over groups of 4 images (ProGAN's minibatch standard deviation), one more channel
  before the logit; exported to EXPORT_DIR.
- `d-without-batch-norm`: a discriminator without batch norm (as StyleGAN2's beside R1);
  exported to EXPORT_DIR.
The last two lie outside the paper's networks. `--base-width` overrides the recipe's width
(the rows of docs/quality.md made at width 32 pass `--base-width 32`).
Compare the exports with the default's over the same draws by `reports/twemoji_draws.py`.
"""

import argparse
import os

import keras
import tensorflow as tf

from dcgan_keras import gan as gan_module
from dcgan_keras import networks
from dcgan_keras.config import Config, default_epochs
from dcgan_keras.export import export_generator
from dcgan_keras.train_lib import train

STEPS_PER_EPOCH = 3491 // 64


class LinearDecay(keras.callbacks.Callback):
    """Scales both learning rates by min(1, 2 (1 - step / steps))."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_begin(self, logs=None):
        self.base = [float(o.learning_rate.numpy()) for o in (self.model.g_optimizer, self.model.d_optimizer)]

    def on_train_batch_begin(self, batch, logs=None):
        factor = min(1.0, 2.0 * (1.0 - int(self.model.g_optimizer.iterations.numpy()) / self.steps))
        for optimizer, rate in zip((self.model.g_optimizer, self.model.d_optimizer), self.base):
            optimizer.learning_rate.assign(rate * factor)


class UniformAverage(keras.callbacks.Callback):
    """The running mean of the generator's weights after step `start`."""

    def __init__(self, start: int):
        super().__init__()
        self.start = start

    def on_train_begin(self, logs=None):
        self.average = [tf.Variable(w) for w in self.model.generator.trainable_variables]
        self.count = tf.Variable(0.0)
        self.update = tf.function(self._update)

    def _update(self):
        self.count.assign_add(1.0)
        for a, w in zip(self.average, self.model.generator.trainable_variables):
            a.assign(a + (w - a) / self.count)

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.g_optimizer.iterations.numpy()) > self.start:
            self.update()


class MinibatchStd(keras.layers.Layer):
    """Appends the mean standard deviation over groups of `group_size` images as one channel."""

    def __init__(self, group_size: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size

    def call(self, x):
        height, width, channels = x.shape[1:]
        group = tf.minimum(self.group_size, tf.shape(x)[0])  # image i is in group i % (batch / group)
        y = tf.cast(tf.reshape(x, [group, -1, height, width, channels]), tf.float32)
        y = tf.sqrt(tf.reduce_mean(tf.square(y - tf.reduce_mean(y, axis=0)), axis=0) + 1e-8)
        y = tf.reshape(tf.reduce_mean(y, axis=[1, 2, 3]), [-1, 1, 1, 1])
        return tf.concat([x, tf.cast(tf.tile(y, [group, height, width, 1]), x.dtype)], axis=-1)

    def compute_output_shape(self, shape):
        return (*shape[:-1], shape[-1] + 1)


def discriminator_variant(variant: str):
    """`build_discriminator` with the variant's change to the paper's layers."""

    def build(config):
        d = networks.build_discriminator(config)
        x = d.input
        for layer in d.layers[1:-2]:  # the convolutions, batch norms and LeakyReLUs; then flatten, logit
            if not (variant == "d-without-batch-norm" and isinstance(layer, keras.layers.BatchNormalization)):
                x = layer(x)
        if variant == "minibatch-std":
            x = MinibatchStd(dtype=config.precision, name="minibatch_std")(x)
        x = keras.layers.Flatten(dtype=config.precision, name="flatten")(x)
        init = keras.initializers.RandomNormal(0.0, config.init_stddev)
        logit = keras.layers.Dense(1, kernel_initializer=init, dtype="float32", name="logit")(x)
        return keras.Model(d.input, logit, name="discriminator")

    return build


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("variant", choices=["lr-decay", "swa", "minibatch-std", "d-without-batch-norm"])
    p.add_argument("run_dir")
    p.add_argument("export_dir")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-width", type=int, default=None)
    p.add_argument("--epochs", type=int, default=default_epochs(STEPS_PER_EPOCH, 64))
    args = p.parse_args(argv)
    epochs = args.epochs
    steps = epochs * STEPS_PER_EPOCH
    width = {} if args.base_width is None else {"base_width": args.base_width}
    config = Config.from_recipe("default", image_size=64, channels=3, seed=args.seed, **width)
    callbacks, export_dir = [], args.export_dir
    if args.variant == "lr-decay":
        callbacks = [LinearDecay(steps)]
    elif args.variant == "swa":
        callbacks, export_dir = [UniformAverage(start=2 * steps // 3)], os.path.join(args.export_dir, "ema")
    else:
        gan_module.build_discriminator = discriminator_variant(args.variant)  # what DCGAN.from_settings builds
    train(config, args.run_dir, dataset="twemoji", epochs=epochs, export_dir=export_dir, verbose=2, callbacks=callbacks)
    if args.variant == "swa":
        change = callbacks[0]
        gan = change.model
        for target, w in zip(gan.ema_generator.trainable_variables, change.average):
            target.assign(w)
        gan.recalibrate_batch_norm()
        print(export_generator(gan, os.path.join(args.export_dir, "swa")), flush=True)


if __name__ == "__main__":
    main()
