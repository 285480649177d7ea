"""The warning given when the discriminator wins a run (dcgan_keras.discriminator_wins)."""

import logging

import numpy as np

import dcgan_keras as dk
from dcgan_keras.data import preprocess
from dcgan_keras.discriminator_wins import DiscriminatorWinsWarning


def test_a_run_whose_discriminator_wins_is_warned_about_with_what_to_try(tiny_config, caplog):
    # Made to overfit: 64 real digits, a discriminator that learns fast and a generator that barely learns.
    images, _ = dk.load_digits()
    real = preprocess(images[:64, ..., None], 32, 1).numpy()
    gan = dk.DCGAN.from_settings(tiny_config.replace(learning_rate=2e-3, g_learning_rate=1e-7))
    gan.compile()
    warning = DiscriminatorWinsWarning()
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        history = gan.fit(real, batch_size=32, epochs=8, verbose=0, callbacks=[warning])
    assert history.history["d_real"][-1] - history.history["d_fake"][-1] >= 0.6  # D did win
    assert warning.warned
    message = caplog.text
    assert "The discriminator won this run" in message and "--augment-target 0.6" in message


def test_a_balanced_run_gives_no_warning(caplog):
    warning = DiscriminatorWinsWarning()
    with caplog.at_level(logging.WARNING, logger="dcgan_keras"):
        for epoch, (real, fake) in enumerate([(0.9, 0.1), (0.62, 0.35), (0.6, 0.38), (0.64, 0.33)]):
            warning.on_epoch_end(epoch, {"d_real": real, "d_fake": fake})
        warning.on_train_end()
    assert not warning.warned and "discriminator" not in caplog.text  # only the last 3 epochs count
    assert np.isclose(sum(r - f for r, f in warning.recent) / 3, 0.2667, atol=1e-3)
