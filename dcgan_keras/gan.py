"""`DCGAN`: a generator and a discriminator trained together by `model.fit`."""

from __future__ import annotations

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras import fast_layers, legacy  # a module: fast_layers may be mid-import here (_registration)
from dcgan_keras.augment import diff_augment
from dcgan_keras.config import Config, parse_policy
from dcgan_keras.distribute import multi_worker_step
from dcgan_keras.networks import build_discriminator, build_generator
from dcgan_keras.sampling import batched_forward, latent_vectors, mixture_noise, record_prior


def make_adam(config: Config | None = None, generator: bool = False) -> keras.optimizers.Adam:
    """Adam with the learning rate and betas of `config` (`None`: the paper's, 0.0002 and beta_1 0.5).

    Args:
        config: a `Config` (the default recipe's: 8e-4, betas 0 and 0.99).
        generator: the generator's optimizer: its learning rate is
            `config.g_learning_rate` when that is set.
    """
    config = Config() if config is None else config
    learning_rate = config.learning_rate
    if generator and config.g_learning_rate is not None:
        learning_rate = config.g_learning_rate
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)


def paper_adam(config=None, generator: bool = False) -> keras.optimizers.Adam:
    """Deprecated name of `make_adam` (it was the paper's Adam only with the paper's `Config`)."""
    legacy.renamed("paper_adam", "make_adam")
    return make_adam(getattr(config, "config", config), generator)  # it took a DCGAN too


def _computes_in_float16(model: keras.Model) -> bool:
    # True if any layer, nested models included, computes in float16.
    for layer in model.layers:
        if getattr(layer.dtype_policy, "compute_dtype", None) == "float16":
            return True
        if isinstance(layer, keras.Model) and _computes_in_float16(layer):
            return True
    return False


def _loss_scaled(optimizer, model: keras.Model):
    # Wraps the optimizer of a network that computes in float16, as
    # keras.Model.compile does for a model whose own policy is mixed_float16.
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) or not _computes_in_float16(model):
        return optimizer
    return keras.optimizers.LossScaleOptimizer(optimizer)


def _check_networks(generator: keras.Model, discriminator: keras.Model, config: Config) -> None:
    # The networks fit each other and the settings (`Config` checks the settings themselves).
    latent_dim, images = int(generator.input_shape[-1]), tuple(generator.output_shape[1:])
    if tuple(discriminator.input_shape[1:]) != images:
        raise ValueError(
            "The generator's output shape must equal the discriminator's input shape. "
            f"Received: generator output {images}, discriminator input {tuple(discriminator.input_shape[1:])}"
        )
    if config.latent_dim != latent_dim:
        raise ValueError(
            f"config.latent_dim ({config.latent_dim}) disagrees with the generator's input size ({latent_dim}). "
            f"Received: latent_dim={config.latent_dim}"
        )
    if (config.image_size, config.image_size, config.channels) != images:
        raise ValueError(
            f"config.image_size and config.channels disagree with the generator's images {images}. Pass the "
            f"Config the networks were built from. Received: image_size={config.image_size}, channels={config.channels}"
        )


@keras.saving.register_keras_serializable(package="dcgan_keras")
class DCGAN(keras.Model):
    """A deep convolutional GAN (Radford et al. 2016) as a `keras.Model`.

    Each `train_step` makes one discriminator update and one generator update
    with the non-saturating GAN loss, computed from logits. The generator runs
    once per step: its fake batch is reused for the generator update, as in
    the reference PyTorch loop.

    Pixel values of real and generated images are in [-1, 1].

    Under a `tf.distribute` strategy (build and compile inside
    `strategy.scope()`), each replica's losses are divided by the number of
    replicas, so that the summed gradients are those of the mean over the
    global batch, and each replica draws its own noise (`latent_noise`).
    With networks in "mixed_float16" (`Config.precision`), `compile` wraps the
    optimizers in `keras.optimizers.LossScaleOptimizer`.

    Args:
        generator: a model from z of shape `(latent_dim,)` to images in [-1, 1].
        discriminator: a model from images to one logit per image.
        config: the settings (`Config`): the training ones are read here (the
            prior of z, label smoothing, EMA, seed, Adam's, DiffAugment's and
            R1's), the others say how `from_settings` builds the networks.
            Its image size, channels and `latent_dim` must be the networks'.
            `None`: the settings `DCGAN(generator, discriminator)` always had:
            `Config()`'s, but with normal z and no seed (`legacy.OLD_DEFAULTS`),
            and the networks' sizes.
        **kwargs: `keras.Model`'s (`name`, ...).

    Example:

    ```python
    gan = DCGAN.from_settings(Config(image_size=32, channels=1))
    gan.compile()  # Adam(2e-4, beta_1=0.5) for both networks
    gan.fit(make_dataset("digits", image_size=32), epochs=5)
    images = gan.generate(16, seed=0)  # (16, 32, 32, 1) in [-1, 1]
    ```
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, config: Config | None = None, **kwargs):
        old_keywords, kwargs = legacy.split_keywords(kwargs)
        super().__init__(**kwargs)
        config = legacy.settings_of_call(config, old_keywords, generator)  # None or keywords: the old calls
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config (dcgan_keras.Config). Received: config={config!r}")
        _check_networks(generator, discriminator, config)
        self.config = config
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = config.latent_dim
        self.seed_generator = keras.random.SeedGenerator(config.seed)
        self._augment_policy = parse_policy(config.augment)
        # The share of images each transform is applied to, adapted during
        # training (a variable only then: checkpoints without it still load).
        self.augment_probability = 1.0
        if config.augment_target is not None:
            self.augment_probability = keras.Variable(
                0.0, trainable=False, aggregation="mean", name="augment_probability"
            )
        self.ema_generator = None
        if config.ema_decay is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        for model in (self, generator, self.ema_generator):  # the prior, where sampling.latent_prior reads it
            if model is not None:
                record_prior(model, config.latent_modes, config.mode_offset, config.latent_distribution)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.built = True  # both networks are built functional models

    # -- construction ------------------------------------------------------

    @classmethod
    def from_settings(cls, config: Config) -> "DCGAN":
        """Builds both networks and the DCGAN from a `Config`.

        Args:
            config: the settings (`Config()` holds the paper's,
                `Config.from_recipe(...)` the named recipes).

        Returns:
            An uncompiled `DCGAN` named "dcgan"; its `compile()` makes Adam
            optimizers with the config's learning rate and betas (`make_adam`).
        """
        if not isinstance(config, Config):
            raise TypeError(f"from_settings takes a Config. Received: config={config!r}")
        return cls(build_generator(config), build_discriminator(config), config, name="dcgan")

    @classmethod
    def from_paper_config(cls, config: Config) -> "DCGAN":
        """Deprecated name of `from_settings` (it builds any recipe, not only the paper's)."""
        legacy.renamed("DCGAN.from_paper_config", "DCGAN.from_settings")
        return cls.from_settings(config)

    @classmethod
    def from_config(cls, config):
        """Rebuilds a DCGAN from `get_config()`'s dict (Keras deserialisation), old checkpoints' too."""
        if isinstance(config, Config):  # version 0.1 built new models here too
            legacy.renamed("DCGAN.from_config(Config) (from_config rebuilds a saved model)", "DCGAN.from_settings(config)")
            return cls.from_settings(config)
        config = dict(config)
        generator = keras.saving.deserialize_keras_object(config.pop("generator"))
        discriminator = keras.saving.deserialize_keras_object(config.pop("discriminator"))
        if "settings" in config:
            settings = Config.from_dict(config.pop("settings"))
        else:  # a checkpoint written before Config was the settings' home: loose keywords
            old_keywords, config = legacy.split_keywords(config)
            settings = legacy.settings_from_keywords(old_keywords, generator)
        return cls(generator, discriminator, settings, **config)

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            settings=self.config.to_dict(),
        )
        return config

    def compile(self, d_optimizer=None, g_optimizer=None, auto_scale_loss: bool = True, **kwargs):
        """Configures training; both optimizers default to Adam with the
        learning rate and betas of `self.config` (`make_adam`; the
        generator's with `g_learning_rate` when that is set).

        Call it inside `strategy.scope()` when training with `tf.distribute`.
        The optimizers' variables are created here, before `fit`, so that a
        custom `train_step` under a distribution strategy finds them
        (keras-team/keras#19246: otherwise `fit` fails with "You must feed a
        value for placeholder tensor").

        Args:
            d_optimizer: optimizer of the discriminator.
            g_optimizer: optimizer of the generator.
            auto_scale_loss: if a network computes in float16 (precision
                "mixed_float16"), wrap its optimizer in
                `keras.optimizers.LossScaleOptimizer` (dynamic loss scaling
                keeps small float16 gradients from flushing to zero), unless
                it already is one. As `keras.Model.compile`'s argument of
                that name.
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`,
                `steps_per_execution`). `jit_compile=True` is kept under a
                strategy of one replica, where Keras' "auto" turns XLA off.

        Raises:
            ValueError: `jit_compile=True` under a strategy of several replicas.
        """
        replicas = self.distribute_strategy.num_replicas_in_sync
        if kwargs.get("jit_compile") is True and replicas > 1:
            raise ValueError(
                "jit_compile=True cannot train under a tf.distribute strategy of several replicas: Keras "
                "compiles the whole distributed step as one XLA program, which cannot reach the variables "
                "mirrored on the other devices (keras-team/keras#19005). Pass jit_compile='auto' or False "
                f"(--jit-compile auto|off), or train on one device. Received: jit_compile=True, replicas={replicas}"
            )
        super().compile(**kwargs)
        if self.optimizer is not None and not self.optimizer.built:
            # keras.Model.compile's default optimizer, which DCGAN never uses: built
            # empty, as it is in every backup (`save_weights`), so that restoring one
            # finds the same, empty state instead of building it with every weight.
            self.optimizer.build([])
        d_optimizer = d_optimizer or make_adam(self.config)
        g_optimizer = g_optimizer or make_adam(self.config, generator=True)
        if auto_scale_loss:
            d_optimizer = _loss_scaled(d_optimizer, self.discriminator)
            g_optimizer = _loss_scaled(g_optimizer, self.generator)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    def get_compile_config(self):
        if not hasattr(self, "d_optimizer"):
            return None  # not compiled: saved without optimizers
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
        }

    def compile_from_config(self, config):
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
        )

    # -- training ----------------------------------------------------------

    @property
    def metrics(self):
        # Listed here so Keras resets them at the start of every epoch.
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    @property
    def sampler(self) -> keras.Model:
        """The generator used for sampling and export (the EMA copy if enabled)."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def call(self, z, training=False):
        return self.generator(z, training=training)

    def latent_noise(self, batch_size):
        """The z of one training step: `batch_size` draws from the prior.

        The prior is uniform on [-1, 1], N(0, I), or with `latent_modes` a
        mixture of unit Gaussians (as `sampling.latent_vectors`). Called by `train_step`
        once per step, on each replica. The draws follow `seed_generator`,
        whose state advances every step. Under a strategy with several
        replicas that state is one mirrored variable, the same on every
        replica, so the replica's id is folded into the seed: otherwise all
        replicas would draw the same z and the global batch would hold only
        `batch_size / replicas` distinct noise vectors. On one device the
        draws are `keras.random.normal` (or `uniform`) with `seed=seed_generator`. Override it to
        train with another prior.

        Args:
            batch_size: number of vectors (this replica's share of the batch).

        Returns:
            A float32 tensor of shape `(batch_size, latent_dim)`.
        """
        shape = (batch_size, self.latent_dim)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            if self.latent_distribution == "uniform":
                return keras.random.uniform(shape, -1.0, 1.0, seed=self.seed_generator)
            z = keras.random.normal(shape, seed=self.seed_generator)
            if self.latent_modes:
                modes = keras.random.randint((batch_size,), 0, self.latent_modes, seed=self.seed_generator)
                z = z + self.mode_offset * tf.one_hot(modes, self.latent_dim)
            return z
        seed = tf.random.fold_in(self.seed_generator.next(), context.replica_id_in_sync_group)
        return mixture_noise(shape, self.latent_modes, self.mode_offset, seed, self.latent_distribution)

    @staticmethod
    def _scaled(loss, optimizer):
        # Under tf.distribute each replica sees 1/N of the global batch and the
        # optimizer sums the replicas' gradients: dividing by N makes the step
        # the mean over the global batch, as Keras' own train_step does. A
        # LossScaleOptimizer (mixed precision) scales the loss up as well.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        if replicas > 1:
            loss = loss / tf.cast(replicas, loss.dtype)
        return optimizer.scale_loss(loss)

    def augmented(self, images):
        """`images` as the discriminator sees them: DiffAugment'ed when `augment` is set."""
        if not self._augment_policy:
            return images
        seed = self.seed_generator.next()
        context = tf.distribute.get_replica_context()
        if context is not None and context.num_replicas_in_sync > 1:
            seed = tf.random.fold_in(seed, context.replica_id_in_sync_group)  # as latent_noise
        return diff_augment(images, self._augment_policy, seed, self.augment_probability)

    # Adaptive augmentation's speed: its probability can go from 0 to 1 in this many images.
    ADAPT_IMAGES = 20_000

    def _adapt_augmentation(self, real_logits):
        # ADA's rule: r = E[sign(D(real))] above the target means D is
        # overfitting the real images: augment more.
        overfit = tf.reduce_mean(tf.sign(real_logits))
        batch_size = tf.cast(tf.shape(real_logits)[0], tf.float32)
        step = tf.sign(overfit - self.config.augment_target) * batch_size / self.ADAPT_IMAGES
        self.augment_probability.assign(tf.clip_by_value(self.augment_probability + step, 0.0, 1.0))

    def r1_penalty(self, images):
        """The discriminator's logits on `images` and the R1 penalty there:
        the mean over the images of the squared norm of `d logit / d image`
        (Mescheder et al. 2018, "Which Training Methods for GANs do actually
        Converge?"). Zero on the real images means D is flat around them,
        which is where the GAN game's equilibrium is stable.

        The penalty is differentiated a second time (for D's weights), so this
        pass runs with `fast_layers.exact_second_derivatives`.

        Returns:
            `(logits, penalty)`: float32 logits of shape `(batch, 1)` and a scalar.
        """
        with fast_layers.exact_second_derivatives(self.discriminator), tf.GradientTape() as tape:
            tape.watch(images)
            logits = tf.cast(self.discriminator(images, training=True), tf.float32)
        slopes = tf.cast(tape.gradient(logits, images), tf.float32)
        return logits, tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))

    def _real_pass(self, real):
        # D's logits on the real images and, on the steps that have it, the R1 penalty.
        def without_penalty():
            return tf.cast(self.discriminator(real, training=True), tf.float32), tf.constant(0.0)

        if not self.config.r1_gamma:
            return without_penalty()
        if self.config.r1_every == 1:
            return self.r1_penalty(real)
        lazy_step = self.d_optimizer.iterations % self.config.r1_every == 0
        if any(getattr(layer, "synchronized", False) for layer in self.discriminator.layers):
            # Synchronised batch norm sums over the replicas, which cannot happen inside a
            # tf.cond: the penalty is computed on every step and counted on the lazy ones
            # only. The same training, without the time lazy R1 saves.
            logits, penalty = self.r1_penalty(real)
            return logits, penalty * tf.cast(lazy_step, penalty.dtype)
        return tf.cond(lazy_step, lambda: self.r1_penalty(real), without_penalty)

    def _bce(self, logits, target):
        labels = tf.fill(tf.shape(logits), tf.cast(target, logits.dtype))
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))

    @multi_worker_step  # several workers need two fixes around the step (distribute.py)
    def train_step(self, data):
        real = data[0] if isinstance(data, (tuple, list)) else data  # labels, if any, are dropped
        z = self.latent_noise(tf.shape(real)[0])

        with tf.GradientTape() as g_tape:
            # 1. One generator forward pass; the tape keeps it for step 3.
            fake = self.generator(z, training=True)

            # 2. Discriminator update: real images -> 1 (or 1 - smoothing), fakes -> 0,
            #    and with R1 a penalty on D's slope at the real images (one step in r1_every).
            with tf.GradientTape() as d_tape:
                real_logits, penalty = self._real_pass(self.augmented(real))
                fake_logits = tf.cast(
                    self.discriminator(self.augmented(tf.stop_gradient(fake)), training=True), tf.float32
                )
                d_loss = self._bce(real_logits, 1.0 - self.config.label_smoothing) + self._bce(fake_logits, 0.0)
                r1_weight = self.config.r1_gamma / 2 * self.config.r1_every
                scaled_d_loss = self._scaled(d_loss + r1_weight * penalty, self.d_optimizer)
            d_weights = self.discriminator.trainable_variables
            self.d_optimizer.apply(d_tape.gradient(scaled_d_loss, d_weights), d_weights)

            # 3. Generator update through the updated discriminator:
            #    non-saturating loss, fakes -> 1.
            gen_logits = tf.cast(self.discriminator(self.augmented(fake), training=True), tf.float32)
            g_loss = self._bce(gen_logits, 1.0)
            scaled_g_loss = self._scaled(g_loss, self.g_optimizer)
        g_weights = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(scaled_g_loss, g_weights), g_weights)

        # 4. Moving average of the generator's weights, if enabled.
        if self.ema_generator is not None:
            self._update_ema()
        # 5. Adaptive augmentation, if enabled: more while D is sure of the reals.
        if self.config.augment_target is not None:
            self._adapt_augmentation(real_logits)

        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_real_tracker.update_state(tf.reduce_mean(tf.sigmoid(real_logits)))
        self.d_fake_tracker.update_state(tf.reduce_mean(tf.sigmoid(fake_logits)))
        return {m.name: m.result() for m in self.metrics}

    def _update_ema(self):
        # Warm-up as tf.train.ExponentialMovingAverage(num_updates=step):
        # the average follows the weights closely while they move fast early on.
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.config.ema_decay, (1.0 + step) / (10.0 + step))
        for average, weight in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * weight)
        for average, weight in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(weight)  # batch-norm moving statistics, until `recalibrate_batch_norm`

    def recalibrate_batch_norm(self, num_images: int = 1024, batch_size: int = 256):
        """Gives the EMA generator batch-norm statistics of its own (as SWA's `bn_update`).

        The moving average's weights are not the generator's, so the generator's
        moving batch-norm statistics, which step 4 copies, do not quite fit them.
        This replaces them by the mean of the EMA generator's own batch statistics
        over `num_images` draws of the prior (noise seeds 0, 1, ..., one per batch).
        `train` does it after every epoch (`callbacks.EMABatchNorm`); on the
        Twemoji it lowers the Fréchet distance by about a third (docs/quality.md).
        No-op without EMA.
        """
        if self.ema_generator is None:
            return
        layers = [layer for layer in self.ema_generator._flatten_layers()
                  if isinstance(layer, keras.layers.BatchNormalization)]
        momenta = [layer.momentum for layer in layers]
        try:
            for i in range(max(1, num_images // batch_size)):
                for layer in layers:
                    layer.momentum = i / (i + 1)  # a running mean: batch i weighs 1 / (i + 1)
                self.ema_generator(self.noise(batch_size, seed=i), training=True)
        finally:
            for layer, momentum in zip(layers, momenta):
                layer.momentum = momentum

    # -- sampling ----------------------------------------------------------

    def noise(self, num: int, seed: int = 0) -> np.ndarray:
        """`num` latent vectors from the model's prior, the same for the same seed (`latent_vectors`)."""
        return latent_vectors(num, self.latent_dim, seed, self.latent_modes, self.mode_offset, self.latent_distribution)

    def generate(self, num: int = 64, seed: int = 0, z=None, batch_size: int = 256) -> np.ndarray:
        """Samples images in [-1, 1] with batch norm in inference mode.

        Args:
            num: number of images (ignored when `z` is given).
            seed: seed of the noise; the same seed gives the same images.
            z: optional latent vectors of shape `(num, latent_dim)`.
            batch_size: images per forward pass.

        Returns:
            A float32 array of shape `(num, height, width, channels)`.
        """
        z = self.noise(num, seed) if z is None else z
        return batched_forward(self.sampler, z, batch_size)
