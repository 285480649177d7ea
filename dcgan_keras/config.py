"""One dataclass of hyper-parameters, with the paper's values as defaults."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from dcgan_keras.sampling import DISTRIBUTIONS, MODE_OFFSET

SUPPORTED_IMAGE_SIZES = (32, 64, 128)
SUPPORTED_CHANNELS = (1, 3)
# Keras dtype policies: plain float32, or float16 / bfloat16 computations on
# float32 variables (mixed precision).
SUPPORTED_PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
# What a Config accepts: a policy, or "auto" (`auto_precision`: resolved when the Config is made).
PRECISION_CHOICES = (*SUPPORTED_PRECISIONS, "auto")
# CPU flags (/proc/cpuinfo) of bfloat16 arithmetic: AVX-512 BF16 and AMX.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# The transforms of DiffAugment (dcgan_keras.augment), in the order they apply.
AUGMENTATIONS = ("color", "translation", "cutout")
# Names of the `tf.distribute` strategies of `dcgan_keras.distribute.make_strategy`.
STRATEGIES = ("default", "mirrored", "multi-worker", "tpu")


@dataclasses.dataclass(frozen=True)
class BySize:
    """A recipe value that depends on the image side: `values[image_size]`.

    The default has three (docs/quality.md):
    - its base width: 32 at 32x32 (measured on the digits, where the paper's 64
      did no better at 3x the cost), the paper's 64 at 64x64 (a lower Fréchet
      distance on the Twemoji over three seeds) and at 128x128 (not measured);
    - its R1 weight: 1 at 32x32, 10 at 64x64 (where D no longer wins on the
      Twemoji), and 4x that at 128x128, where R1's weight grows with the number
      of pixels as in StyleGAN2-ADA's heuristic (not measured here);
    - its least number of steps (`DEFAULT_MIN_STEPS`): the digits' 4,680 at 32x32,
      and 1.5x that at 64x64 and up, where the Twemoji's Fréchet distance was
      lower at 7,020 than at 4,680 on three seeds.
    """

    values: tuple  # ((image_size, value), ...)

    def at(self, image_size: int):
        return dict(self.values).get(image_size, self.values[0][1])  # `Config` refuses other sizes

    def __str__(self) -> str:
        return ", ".join(f"{value:g} at {side}x{side}" for side, value in self.values)


# Epochs of `train` (and `python -m dcgan_keras train`) when none are given: the default
# recipe's 60 epochs of the bundled digits take 143 to 251 s of training on 2 CPU cores
# (docs/quality.md, "The current default"). A smaller data set gets more epochs, up to
# the digits' 4,680 steps at 32x32 and 7,020 at 64x64 and up (`default_epochs`).
DEFAULT_EPOCHS = 60
DEFAULT_MIN_STEPS = BySize(((32, 4680), (64, 7020), (128, 7020)))
# Scores `train(keep_best=...)` can pick the best epoch by (dcgan_keras.train_lib).
KEEP_BEST_METRICS = ("digit_fd", "fid", "d_fd")


def default_epochs(steps_per_epoch: int, image_size: int) -> int:
    """`train`'s epochs when none are given: 60, or as many as make `DEFAULT_MIN_STEPS` on a
    data set with fewer steps per epoch: 4,680 steps at 32x32 (the digits' 60 epochs at batch
    64), 7,020 at 64x64 and up, e.g. 130 epochs of the 3,491 Twemoji and 1,003 of a folder of
    500 images (docs/quality.md, "64x64 colour: the Twemoji")."""
    return max(DEFAULT_EPOCHS, math.ceil(DEFAULT_MIN_STEPS.at(image_size) / max(1, steps_per_epoch)))


def default_sample_every(epochs: int) -> int:
    """`train`'s epochs between sample grids when none are given: 1, or as many as keep about
    `DEFAULT_EPOCHS` grids (60, half a MiB each at 64x64) in a longer run."""
    return max(1, round(epochs / DEFAULT_EPOCHS))


def cpu_has_bfloat16() -> bool:
    """Whether this machine's CPU has bfloat16 instructions (Linux's /proc/cpuinfo; False elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((line for line in f if line.startswith("flags")), "").split())
    except OSError:
        return False
    return any(flag in flags for flag in BFLOAT16_CPU_FLAGS)


def auto_precision() -> str:
    """What `precision="auto"` stands for here: "mixed_bfloat16" on a CPU with bfloat16 instructions
    when no GPU is visible, "float32" otherwise.

    On such a CPU, bfloat16 trains the digits job 1.5x faster than float32 with the same
    judge scores epoch for epoch (docs/quality.md); elsewhere it is not measured, so float32.
    """
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU") or not cpu_has_bfloat16():
        return "float32"
    return "mixed_bfloat16"


def parse_policy(policy) -> tuple[str, ...]:
    """The transforms of an augmentation policy such as `"translation,cutout"` (`None` or `""`: none).

    Raises:
        ValueError: for an unknown transform name.
    """
    if policy is None:
        return ()
    names = tuple(name.strip() for name in str(policy).split(",") if name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(
            f"Unknown augmentation {unknown[0]!r}; a policy is a comma-separated list of "
            f"{', '.join(AUGMENTATIONS)}, e.g. 'translation,cutout'. Received: augment={policy!r}"
        )
    return names


def check_augmentation(augment, augment_target) -> tuple[str, ...]:
    """The transforms of `augment` (`parse_policy`), after checking `augment_target` goes with them.

    Raises:
        ValueError: for an unknown transform, or a target outside (0, 1) or without a policy.
    """
    names = parse_policy(augment)
    if augment_target is not None and not (0.0 < augment_target < 1.0 and names):
        raise ValueError(
            "augment_target must be in (0, 1) (ADA uses 0.6), with an augment policy to adapt. "
            f"Received: augment_target={augment_target}, augment={augment!r}"
        )
    return names


def check_prior(latent_modes, mode_offset, latent_dim: int, distribution: str = "normal") -> None:
    """Raises a clear error unless `distribution` is one of `DISTRIBUTIONS`, `latent_modes` is 0 or
    2..latent_dim (0 for a uniform prior) and `mode_offset` is positive."""
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"latent_distribution must be one of {', '.join(DISTRIBUTIONS)} (the paper draws uniform z, "
            f"the PyTorch example normal z). Received: latent_distribution={distribution!r}"
        )
    if not (isinstance(latent_modes, int) and (latent_modes == 0 or 2 <= latent_modes <= latent_dim)):
        raise ValueError(
            f"latent_modes must be 0 (z ~ N(0, I)) or a number of modes from 2 to latent_dim ({latent_dim}). "
            f"Received: latent_modes={latent_modes!r}"
        )
    if not (isinstance(mode_offset, (int, float)) and 0 < mode_offset < math.inf):
        raise ValueError(f"mode_offset must be positive and finite. Received: mode_offset={mode_offset!r}")
    if distribution == "uniform" and latent_modes:
        raise ValueError(
            "latent_modes needs normal z (a mixture of unit Gaussians); a uniform prior has no modes. "
            f"Pass latent_distribution='normal' or latent_modes=0. Received: latent_modes={latent_modes!r}, "
            f"latent_distribution={distribution!r}"
        )


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of a DCGAN, defaulting to Radford et al. (2016).

    The one home of the settings: `DCGAN` keeps its `Config` (`DCGAN.config`)
    and checkpoints save it. It is frozen; `replace` makes a changed copy.

    Args:
        image_size: side of the square images, one of 32, 64 or 128.
        channels: 1 (grayscale) or 3 (RGB).
        latent_dim: size of the noise vector z (the paper uses 100).
        latent_distribution: the distribution z is drawn from, in training
            and sampling alike: "uniform" on [-1, 1]^latent_dim, as the paper
            (Figure 1), or "normal", as the PyTorch example.
        latent_modes: with normal z: 0 = N(0, I); K >= 2 = a mixture of K
            equally likely unit Gaussians, centred `mode_offset` along each of
            the first K axes (`dcgan_keras.sampling.latent_vectors`). Data made
            of a few kinds of images (ten digits) is easier to cover from K
            separate modes than from one blob. An export takes z ~ N(0, I)
            whatever the prior (`sampling.from_standard_normal`).
        mode_offset: distance of each mode's centre from the origin.
        base_width: width of the widest-resolution layer of both networks
            (`ngf`/`ndf` in the PyTorch example); widths double per stage.
        batch_size: images per step (the paper uses 128).
        learning_rate: Adam learning rate of both networks (paper: 0.0002).
        g_learning_rate: the generator's own Adam learning rate, when it
            differs from the discriminator's (two time scales, Heusel et al.
            2017); `None` = `learning_rate`, as in the paper.
        beta_1: Adam's first-moment decay (paper: 0.5; 0.9 oscillated).
        beta_2: Adam's second-moment decay (paper: Adam's own 0.999).
        leaky_slope: slope of the discriminator's LeakyReLU (paper: 0.2).
        init_stddev: std of the N(0, std) weight initialisation (paper: 0.02).
        label_smoothing: one-sided label smoothing of the real targets in the
            discriminator loss (0 = off, as in the paper; 0.1 is common).
        ema_decay: decay of an exponential moving average of the generator's
            weights used for sampling and export (`None` = off, as in the paper).
        seed: seed of the model's one random source.
        precision: the networks' Keras dtype policy: "float32", or mixed
            precision with "mixed_float16" (GPUs; the optimizers then scale
            the losses) or "mixed_bfloat16" (TPUs, recent GPUs and CPUs);
            "auto" is replaced by `auto_precision()` (bfloat16 on a CPU
            with bfloat16 instructions and no GPU, else float32).
            Variables stay float32 either way, as do the generator's tanh
            output, the discriminator's logit and the losses.
        sync_batch_norm: under a `tf.distribute` strategy with several
            replicas, compute the batch-norm statistics over the global batch
            instead of each replica's share (slower: one all-reduce per
            batch-norm layer). No effect on one device.
        fast_layers: build the networks from `dcgan_keras.fast_layers`
            (faster training; the same function and weights). False builds
            them from Keras' own `Conv2D`, `Conv2DTranspose` and
            `BatchNormalization`.
        jit_compile: compile the training step with XLA: "auto" (Keras'
            rule: on where a GPU is visible, off on a CPU alone and off under
            any `tf.distribute` strategy, even of one device), True or False.
            True is kept under a strategy of one replica; under several it is
            refused (`DCGAN.compile`), as Keras cannot run it there.
        augment: a DiffAugment policy applied alike to the real and fake
            images the discriminator sees, e.g. "translation,cutout"
            (`dcgan_keras.augment`); `None` = off, as in the paper.
        augment_target: adapt the share of augmented images so that this
            fraction of real logits is positive (ADA: 0.6); `None` = augment
            every image.
        r1_gamma: weight of the R1 penalty (Mescheder et al. 2018): the
            discriminator's loss adds `r1_gamma / 2` times the mean squared
            norm of its gradient with respect to the real images it sees,
            which keeps it from growing steep around them. 0 = off, as in
            the paper.
        r1_every: compute the R1 penalty on one step in this many, weighted
            as many times (lazy R1, as StyleGAN2); 1 = every step.
        mirror: `train` flips half of the real images left-right, drawn
            anew each epoch (`make_dataset(mirror=True)`, StyleGAN2-ADA's
            `--mirror`): twice the images, for data whose mirror images are
            as real as the images (faces, emoji; not text). False = off, as
            in the paper.

    Example:

    ```python
    config = Config(image_size=64, channels=3)
    gan = DCGAN.from_settings(config)
    ```
    """

    image_size: int = 32
    channels: int = 1
    latent_dim: int = 100
    latent_distribution: str = "uniform"
    latent_modes: int = 0
    mode_offset: float = MODE_OFFSET
    base_width: int = 64
    batch_size: int = 128
    learning_rate: float = 2e-4
    g_learning_rate: float | None = None
    beta_1: float = 0.5
    beta_2: float = 0.999
    leaky_slope: float = 0.2
    init_stddev: float = 0.02
    label_smoothing: float = 0.0
    ema_decay: float | None = None
    seed: int = 0
    precision: str = "float32"
    sync_batch_norm: bool = False
    augment: str | None = None
    augment_target: float | None = None
    r1_gamma: float = 0.0
    r1_every: int = 1
    mirror: bool = False
    fast_layers: bool = True
    jit_compile: bool | str = "auto"

    def __post_init__(self):
        if self.image_size not in SUPPORTED_IMAGE_SIZES:
            raise ValueError(
                f"Unsupported image size {self.image_size}: DCGAN networks are "
                f"defined for image sizes {', '.join(map(str, SUPPORTED_IMAGE_SIZES))}. "
                f"Pick one of them (images are resized to it). "
                f"Received: image_size={self.image_size}"
            )
        if self.channels not in SUPPORTED_CHANNELS:
            raise ValueError(
                "channels must be 1 (grayscale) or 3 (RGB). "
                f"Received: channels={self.channels}"
            )
        for name in ("latent_dim", "base_width", "batch_size", "r1_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"{name} must be a positive integer. Received: {name}={value!r}"
                )
        check_prior(self.latent_modes, self.mode_offset, self.latent_dim, self.latent_distribution)
        rates = {"learning_rate": self.learning_rate}
        if self.g_learning_rate is not None:  # None: the generator's is learning_rate
            rates["g_learning_rate"] = self.g_learning_rate
        for name, value in rates.items():
            if not (isinstance(value, (int, float)) and 0 < value < math.inf):
                raise ValueError(f"{name} must be positive and finite. Received: {name}={value}")
        for name in ("beta_1", "beta_2"):  # Adam's decays: 1 or more never forgets, NaN poisons every step
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0.0 <= value < 1.0):
                raise ValueError(
                    f"{name} must be in [0, 1) (the paper uses beta_1=0.5, Adam's own beta_2 is 0.999). "
                    f"Received: {name}={value}"
                )
        for name in ("leaky_slope", "init_stddev"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):
                raise ValueError(f"{name} must be a finite number, 0 or more. Received: {name}={value}")
        if not (isinstance(self.r1_gamma, (int, float)) and 0 <= self.r1_gamma < math.inf):
            raise ValueError(f"r1_gamma must be 0 (off) or positive and finite. Received: r1_gamma={self.r1_gamma}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(
                "label_smoothing must be in [0, 1). "
                f"Received: label_smoothing={self.label_smoothing}"
            )
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError(
                "ema_decay must be in (0, 1), or None to disable the moving "
                f"average. Received: ema_decay={self.ema_decay}"
            )
        if self.precision == "auto":
            object.__setattr__(self, "precision", auto_precision())  # frozen: set once, here
        if self.precision not in SUPPORTED_PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISION_CHOICES)} (a Keras "
                "dtype policy; 'mixed_*' computes in 16 bits on float32 variables; 'auto' picks "
                f"one for this machine). Received: precision={self.precision!r}"
            )
        check_augmentation(self.augment, self.augment_target)
        if not (isinstance(self.jit_compile, bool) or self.jit_compile == "auto"):
            raise ValueError(
                "jit_compile must be 'auto' (Keras' choice), True (XLA) or False. "
                f"Received: jit_compile={self.jit_compile!r}"
            )
        for name in ("sync_batch_norm", "mirror", "fast_layers"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False. Received: {name}={value!r}")

    @classmethod
    def from_recipe(cls, recipe: str = "default", **overrides) -> "Config":
        """The `Config` of a named recipe (`RECIPES`), with `overrides` on top.

        - `"paper"`: exactly the paper's settings: batch 128, Adam 2e-4 /
          beta_1 0.5, z uniform on [-1, 1]^100, weights from N(0, 0.02),
          LeakyReLU slope 0.2, no moving average, no augmentation (`Config()`).
        - `"default"`: what `python -m dcgan_keras train` runs: the paper's
          networks and optimizer with the changes that measured better on
          the bundled digits and Twemoji (README, "What the default run gives"):
          base width 32 at 32x32 (the paper's layers, half as wide) and the
          paper's 64 at 64x64 and up (`BySize`), batch 64, EMA 0.999,
          learning rates 8e-4 (D) and 1.6e-3 (G), Adam's betas 0 and 0.99,
          the R1 penalty on one step in 4 (lazy R1) with gamma 1 at 32x32,
          10 at 64x64 and 40 at 128x128 (`BySize`), z drawn
          from a mixture of 10 unit Gaussians (`latent_distribution="normal"`,
          `latent_modes=10`, offset 5)
          and `precision="auto"`. At 32x32 its networks cost a third of the
          paper's per image, so `train`'s default epochs (`DEFAULT_EPOCHS`) buy
          3x the steps of 20 epochs at the paper's width in less time.

        Example:

        ```python
        Config.from_recipe("paper", image_size=64, channels=3)
        ```
        """
        if recipe not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}. Received: recipe={recipe!r}")
        values = {**RECIPES[recipe], **overrides}
        image_size = values.get("image_size", cls.image_size)
        return cls(**{k: v.at(image_size) if isinstance(v, BySize) else v for k, v in values.items()})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown Config fields {unknown}; known fields are {sorted(known)}. "
                f"Received: {values}"
            )
        return cls(**values)

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes)


# Named starting points for `Config.from_recipe` and `train --recipe`.
RECIPES = {
    "paper": {},  # Config's own defaults are the paper's
    "default": {
        "base_width": BySize(((32, 32), (64, 64), (128, 64))), "batch_size": 64, "ema_decay": 0.999, "learning_rate": 8e-4, "g_learning_rate": 1.6e-3,
        "beta_1": 0.0, "beta_2": 0.99, "r1_gamma": BySize(((32, 1.0), (64, 10.0), (128, 40.0))), "r1_every": 4, "precision": "auto",
        "latent_distribution": "normal", "latent_modes": 10,
    },
}
