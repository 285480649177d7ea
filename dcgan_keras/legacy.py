"""Old formats and old names, mapped onto today's in this one place.

- Checkpoints: until `Config` became the one home of the settings, a saved
  `DCGAN` (version 0.1 on) kept them as loose keywords beside its networks,
  e.g. `{"latent_dim": 16, "label_smoothing": 0.0, "ema_decay": None,
  "seed": 0}`; `settings_from_keywords` turns them into a `Config`.
- Calls: `settings_of_call` gives `DCGAN(generator, discriminator)` its old
  settings, and takes settings given as keywords (deprecated).
- Names: `renamed` warns when an old public name is used
  (`DCGAN.from_paper_config`, `paper_adam`).
"""

from __future__ import annotations

import dataclasses
import warnings

from dcgan_keras.config import Config

# Where the old keyword settings defaulted otherwise than `Config`: a DCGAN drew normal
# z unless told (checkpoints from before uniform z were trained on it), and had no seed.
OLD_DEFAULTS = {"latent_distribution": "normal", "seed": None}

SETTING_NAMES = frozenset(field.name for field in dataclasses.fields(Config))


def config_of_networks(generator, **settings) -> Config:
    """A `Config` whose image size, channels and size of z are those of `generator`, with `settings` on top."""
    side, channels = int(generator.output_shape[1]), int(generator.output_shape[-1])
    return Config(**{"image_size": side, "channels": channels, "latent_dim": int(generator.input_shape[-1]), **settings})


def settings_from_keywords(keywords: dict, generator) -> Config:
    """The `Config` of a DCGAN given its settings as loose keywords (old checkpoints, old calls).

    Settings the keywords do not name take their old defaults (`OLD_DEFAULTS`), else
    `Config`'s. Those that only say how to build networks (`base_width`, `precision`, ...)
    were never saved: they take `Config`'s defaults, and the networks come from the checkpoint.
    """
    return config_of_networks(generator, **{**OLD_DEFAULTS, **keywords})


def settings_of_call(config, keywords: dict, generator) -> Config:
    """The settings of `DCGAN(generator, discriminator, config, **keywords)`.

    `config` when given. Without it, the old calls: `DCGAN(generator, discriminator)`
    keeps its old settings (`OLD_DEFAULTS`: normal z, no seed), and settings given as
    keywords (`latent_dim=16, ...`) still work, with a `DeprecationWarning`.
    """
    if keywords and config is not None:
        raise TypeError(
            "Pass the settings in the Config only, not also as keywords: "
            f"DCGAN(generator, discriminator, config.replace(...)). Received: {', '.join(sorted(keywords))}"
        )
    if keywords:
        renamed("DCGAN(generator, discriminator, **settings)", "DCGAN(generator, discriminator, Config(...))", 4)
    return settings_from_keywords(keywords, generator) if config is None else config


def split_keywords(kwargs: dict) -> tuple[dict, dict]:
    """`kwargs` split into `(settings, the rest)`: the names of `Config` fields, and Keras' own (`name`, ...)."""
    settings = {key: value for key, value in kwargs.items() if key in SETTING_NAMES}
    return settings, {key: value for key, value in kwargs.items() if key not in SETTING_NAMES}


def renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warns that `old` is deprecated in favour of `new` (a `DeprecationWarning`, by default at the caller's caller)."""
    warnings.warn(f"{old} is deprecated; use {new} instead.", DeprecationWarning, stacklevel=stacklevel)
