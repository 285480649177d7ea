"""`DCGAN`: a generator and a discriminator trained together by `model.fit`."""

from __future__ import annotations

import warnings

import numpy as np

import keras
import tensorflow as tf

from dcgan_keras.augment import diff_augment
from dcgan_keras.config import Config, check_augmentation, check_prior
from dcgan_keras.distribute import multi_worker_step
from dcgan_keras.fast_layers import exact_second_derivatives
from dcgan_keras.networks import build_discriminator, build_generator
from dcgan_keras.sampling import MODE_OFFSET, batched_forward, latent_vectors, mixture_noise, record_prior


def paper_adam(config: Config | None = None, generator: bool = False) -> keras.optimizers.Adam:
    """Adam with the paper's settings (learning rate 0.0002, beta_1 0.5), or those of `config`.

    Args:
        config: anything with `learning_rate`, `beta_1` and `beta_2`: a
            `Config` or a `DCGAN`; `None` takes the paper's.
        generator: the generator's optimizer: its learning rate is
            `config.g_learning_rate` when that is set.
    """
    config = Config() if config is None else config
    learning_rate = config.learning_rate
    if generator and getattr(config, "g_learning_rate", None) is not None:
        learning_rate = config.g_learning_rate
    return keras.optimizers.Adam(learning_rate=learning_rate, beta_1=config.beta_1, beta_2=config.beta_2)


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


# The DCGAN arguments a Config sets and get_config saves (besides the two networks).
_SETTINGS = (
    "latent_dim", "latent_distribution", "latent_modes", "mode_offset", "label_smoothing", "ema_decay", "seed", "learning_rate",
    "g_learning_rate", "beta_1", "beta_2", "augment", "augment_target", "r1_gamma", "r1_every",
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
        latent_dim: size of z; read from the generator's input when omitted.
        latent_distribution: "normal" (here the default, as checkpoints
            written before uniform z existed were trained on it) or
            "uniform" on [-1, 1] (the paper; `Config()`'s default).
        latent_modes: with normal z, 0 = N(0, I); K = a mixture of K unit
            Gaussians centred `mode_offset` along the first K axes
            (`dcgan_keras.sampling.latent_vectors`). The prior is used
            by training (`latent_noise`) and sampling (`noise`) alike, and
            recorded on both networks so that whatever samples from them
            draws the same prior (`sampling.latent_vectors_for`).
        mode_offset: distance of each mode's centre from the origin.
        label_smoothing: one-sided smoothing of the real targets (0 = off).
        ema_decay: if set, an exponential moving average of the generator's
            weights (`ema_generator`) is kept and used for sampling and export.
        seed: seed of the one random source that draws z during training.
        learning_rate: learning rate of the Adam optimizers `compile` makes
            when none are given (paper: 0.0002).
        g_learning_rate: the generator's, if other than `learning_rate`
            (two time scales); `None`: `learning_rate`.
        beta_1: their first-moment decay (paper: 0.5).
        beta_2: their second-moment decay.
        augment: a DiffAugment policy (`dcgan_keras.augment`), e.g.
            `"translation,cutout"`: real and fake images are transformed alike
            before each of the step's three discriminator passes. `None`
            (the paper): no augmentation.
        augment_target: if set, the augmentation is adaptive (Karras et al.
            2020): each transform is applied to a share `augment_probability`
            of the images, which rises while more than this fraction of the
            real logits are positive (D overfits) and falls otherwise. ADA's
            target is 0.6. `None`: every image is augmented.
        r1_gamma: weight of the R1 penalty (Mescheder et al. 2018), added to
            the discriminator's loss: `r1_gamma / 2` times the mean over the
            real images of `||grad_x D(x)||^2` (`r1_penalty`). 0 (the paper):
            none.
        r1_every: lazy R1 (Karras et al. 2020, "StyleGAN2"): the penalty
            is computed on one step in `r1_every`, weighted `r1_every` times
            as much, which saves most of its cost. 1: every step.

    Example:

    ```python
    gan = DCGAN.from_paper_config(Config(image_size=32, channels=1))
    gan.compile()  # Adam(2e-4, beta_1=0.5) for both networks
    gan.fit(make_dataset("digits", image_size=32), epochs=5)
    images = gan.generate(16, seed=0)  # (16, 32, 32, 1) in [-1, 1]
    ```
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        latent_dim: int | None = None,
        latent_distribution: str = "normal",
        latent_modes: int = 0,
        mode_offset: float = MODE_OFFSET,
        label_smoothing: float = 0.0,
        ema_decay: float | None = None,
        seed: int | None = None,
        learning_rate: float = 2e-4,
        g_learning_rate: float | None = None,
        beta_1: float = 0.5,
        beta_2: float = 0.999,
        augment: str | None = None,
        augment_target: float | None = None,
        r1_gamma: float = 0.0,
        r1_every: int = 1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        inferred = generator.input_shape[-1]
        if latent_dim is not None and latent_dim != inferred:
            raise ValueError(
                f"latent_dim ({latent_dim}) disagrees with the generator's input "
                f"size ({inferred}). Received: latent_dim={latent_dim}"
            )
        if tuple(generator.output_shape[1:]) != tuple(discriminator.input_shape[1:]):
            raise ValueError(
                "The generator's output shape must equal the discriminator's "
                f"input shape. Received: generator output {generator.output_shape[1:]}, "
                f"discriminator input {discriminator.input_shape[1:]}"
            )
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1) or None. Received: ema_decay={ema_decay}")
        self._augment_policy = check_augmentation(augment, augment_target)
        self.generator = generator
        self.discriminator = discriminator
        self.latent_dim = int(inferred)
        check_prior(latent_modes, mode_offset, int(inferred), latent_distribution)
        self.latent_distribution = str(latent_distribution)
        self.latent_modes = int(latent_modes)
        self.mode_offset = float(mode_offset)
        self.label_smoothing = float(label_smoothing)
        self.ema_decay = ema_decay
        self.seed = seed
        self.learning_rate = float(learning_rate)
        self.g_learning_rate = None if g_learning_rate is None else float(g_learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.augment = augment or None
        self.augment_target = augment_target
        if r1_gamma < 0:
            raise ValueError(f"r1_gamma must be 0 (off) or positive. Received: r1_gamma={r1_gamma}")
        self.r1_gamma = float(r1_gamma)
        if not isinstance(r1_every, (int, np.integer)) or r1_every < 1:
            raise ValueError(f"r1_every must be a positive integer. Received: r1_every={r1_every!r}")
        self.r1_every = int(r1_every)
        # The share of images each transform is applied to, adapted during
        # training (a variable only then: checkpoints without it still load).
        self.augment_probability = 1.0
        if augment_target is not None:
            self.augment_probability = keras.Variable(
                0.0, trainable=False, aggregation="mean", name="augment_probability"
            )
        self.ema_generator = None
        if ema_decay is not None:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        for network in (generator, self.ema_generator):
            if network is not None:
                record_prior(network, self.latent_modes, self.mode_offset, self.latent_distribution)
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")
        self.built = True  # both networks are built functional models

    # -- construction ------------------------------------------------------

    @classmethod
    def from_paper_config(cls, config: Config) -> "DCGAN":
        """Builds both networks and the DCGAN from a `Config`.

        Args:
            config: the hyper-parameters (`Config()` holds the paper's).

        Returns:
            An uncompiled `DCGAN` named "dcgan"; its `compile()` makes Adam
            optimizers with the config's learning rate and betas.
        """
        if not isinstance(config, Config):
            raise TypeError(f"from_paper_config takes a Config. Received: config={config!r}")
        settings = {name: getattr(config, name) for name in _SETTINGS}
        return cls(build_generator(config), build_discriminator(config), name="dcgan", **settings)

    @classmethod
    def from_config(cls, config):
        """Rebuilds a DCGAN from `get_config()`'s dict (Keras deserialisation)."""
        if isinstance(config, Config):  # version 0.1 built new models here too
            warnings.warn(
                "DCGAN.from_config(Config) is deprecated: from_config rebuilds a saved model "
                "from get_config()'s dict. Build a new one with DCGAN.from_paper_config(config).",
                DeprecationWarning,
                stacklevel=2,
            )
            return cls.from_paper_config(config)
        config = dict(config)
        config["generator"] = keras.saving.deserialize_keras_object(config["generator"])
        config["discriminator"] = keras.saving.deserialize_keras_object(config["discriminator"])
        return cls(**config)

    def get_config(self):
        config = super().get_config()
        config.update(
            generator=keras.saving.serialize_keras_object(self.generator),
            discriminator=keras.saving.serialize_keras_object(self.discriminator),
            **{name: getattr(self, name) for name in _SETTINGS},
        )
        return config

    def compile(self, d_optimizer=None, g_optimizer=None, auto_scale_loss: bool = True, **kwargs):
        """Configures training; both optimizers default to the paper's Adam
        (with the model's `learning_rate`, `beta_1` and `beta_2`; the
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
        d_optimizer = d_optimizer or paper_adam(self)
        g_optimizer = g_optimizer or paper_adam(self, generator=True)
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
        step = tf.sign(overfit - self.augment_target) * batch_size / self.ADAPT_IMAGES
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
        with exact_second_derivatives(self.discriminator), tf.GradientTape() as tape:
            tape.watch(images)
            logits = tf.cast(self.discriminator(images, training=True), tf.float32)
        slopes = tf.cast(tape.gradient(logits, images), tf.float32)
        return logits, tf.reduce_mean(tf.reduce_sum(tf.square(slopes), axis=[1, 2, 3]))

    def _real_pass(self, real):
        # D's logits on the real images and, on the steps that have it, the R1 penalty.
        def without_penalty():
            return tf.cast(self.discriminator(real, training=True), tf.float32), tf.constant(0.0)

        if not self.r1_gamma:
            return without_penalty()
        if self.r1_every == 1:
            return self.r1_penalty(real)
        lazy_step = self.d_optimizer.iterations % self.r1_every == 0
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
                d_loss = self._bce(real_logits, 1.0 - self.label_smoothing) + self._bce(fake_logits, 0.0)
                r1_weight = self.r1_gamma / 2 * self.r1_every
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
        if self.augment_target is not None:
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
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for average, weight in zip(self.ema_generator.trainable_variables, self.generator.trainable_variables):
            average.assign(decay * average + (1.0 - decay) * weight)
        for average, weight in zip(self.ema_generator.non_trainable_variables, self.generator.non_trainable_variables):
            average.assign(weight)  # batch-norm moving statistics

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
