"""train(config, run_dir) (dcgan_keras.train_lib): resuming a run, default epochs, the sampler it leaves."""

import numpy as np
import pytest

import dcgan_keras as dk


def test_resume_restores_weights_optimizer_states_noise_and_epoch_counter(tiny_config, tmp_path):
    # One batch per epoch: tf.data's shuffle order is not backed up, and with a
    # single batch it only permutes the batch, which leaves the update the same
    # up to float rounding.
    data = np.random.default_rng(0).uniform(0, 1, (32, 32, 32, 1)).astype("float32")
    kwargs = dict(dataset=data, export_dir=None, verbose=0, sample_every=10)
    straight = dk.train(tiny_config, tmp_path / "straight", epochs=2, **kwargs)
    first = dk.train(tiny_config, tmp_path / "resumed", epochs=1, **kwargs)
    assert first["model"].g_optimizer.iterations.numpy() == 1
    assert (tmp_path / "resumed" / "backup" / "state.json").exists()
    csv_path = tmp_path / "resumed" / "history.csv"
    header = csv_path.read_text().splitlines()[0]
    with open(csv_path, "a") as f:  # a row written just before a kill, after the last backup
        f.write(",".join("1" if k == "epoch" else "9.0" for k in header.split(",")) + "\n")
    resumed = dk.train(tiny_config, tmp_path / "resumed", epochs=2, resume=True, **kwargs)

    a, b = straight["model"], resumed["model"]
    # The epoch counter: the resumed call ran only the second epoch.
    assert len(resumed["history"]["g_loss"]) == 1
    np.testing.assert_allclose(resumed["history"]["g_loss"][0], straight["history"]["g_loss"][1], rtol=1e-5)
    logged = dk.callbacks.read_history_csv(csv_path)  # the killed run's stray row is gone
    np.testing.assert_allclose(logged["g_loss"], straight["history"]["g_loss"], rtol=1e-5)
    assert resumed["steps"] == 1  # this call's steps
    # Optimizer states (step counters and Adam moments) and the noise generator.
    assert b.g_optimizer.iterations.numpy() == a.g_optimizer.iterations.numpy() == 2
    assert b.d_optimizer.iterations.numpy() == 2
    for x, y in zip(a.g_optimizer.variables + a.d_optimizer.variables, b.g_optimizer.variables + b.d_optimizer.variables):
        np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5)
    np.testing.assert_array_equal(a.seed_generator.state.numpy(), b.seed_generator.state.numpy())
    # Weights of both networks and of the EMA generator.
    for x, y in zip(a.generator.get_weights() + a.discriminator.get_weights() + a.sampler.get_weights(),
                    b.generator.get_weights() + b.discriminator.get_weights() + b.sampler.get_weights()):
        np.testing.assert_allclose(x, y, atol=1e-5)

    # Without resume, the old run is kept unless overwrite is asked for; then training starts afresh.
    with pytest.raises(FileExistsError, match="already holds a run"):
        dk.train(tiny_config, tmp_path / "resumed", epochs=1, **kwargs)
    fresh = dk.train(tiny_config, tmp_path / "resumed", epochs=1, overwrite=True, **kwargs)
    assert fresh["model"].g_optimizer.iterations.numpy() == 1
    assert len(dk.callbacks.read_history_csv(csv_path)["g_loss"]) == 1


def test_without_epochs_a_small_data_set_trains_for_the_default_number_of_steps(tiny_config, tmp_path, monkeypatch):
    assert [dk.config.default_epochs(steps, 32) for steps in (78, 54, 7)] == [60, 87, 669]  # 5,000, 3,491, 500 images at 32x32
    assert [dk.config.default_epochs(steps, 64) for steps in (78, 54, 7)] == [90, 130, 1003]  # the same at 64x64
    monkeypatch.setattr(dk.config, "DEFAULT_EPOCHS", 1)
    monkeypatch.setattr(dk.config, "DEFAULT_MIN_STEPS", dk.config.BySize(((32, 6), (64, 4))))
    data = np.random.default_rng(0).uniform(0, 1, (64, 32, 32, 1)).astype("float32")  # 2 steps per epoch
    result = dk.train(tiny_config, tmp_path / "run", dataset=data, export_dir=None, verbose=0)
    assert result["steps"] == 6 and len(result["history"]["g_loss"]) == 3
    # About DEFAULT_EPOCHS (here 1) sample grids: one every 3 epochs.
    assert sorted(p.name for p in (tmp_path / "run" / "samples").glob("*.png")) == ["epoch_0003.png"]
    # At 64x64 as many images trains for that size's steps.
    big = np.random.default_rng(0).uniform(0, 1, (64, 64, 64, 1)).astype("float32")
    wide = dk.train(tiny_config.replace(image_size=64), tmp_path / "run64", dataset=big, export_dir=None, verbose=0)
    assert wide["steps"] == 4 and len(wide["history"]["g_loss"]) == 2


def test_train_leaves_the_ema_generator_with_batch_norm_statistics_of_its_own_in_the_checkpoint(tiny_config, tmp_path):
    data = np.random.default_rng(0).uniform(0, 1, (64, 32, 32, 1)).astype("float32")
    result = dk.train(tiny_config.replace(ema_decay=0.9), tmp_path / "run", dataset=data, epochs=2,
                      export_dir=None, verbose=0)
    gan = result["model"]
    saved = dk.checkpoints.load_checkpoint(tmp_path / "run" / "ckpt.keras").ema_generator.non_trainable_weights
    after_train = [w.numpy().copy() for w in gan.ema_generator.non_trainable_weights]
    live = [w.numpy() for w in gan.generator.non_trainable_weights]
    # Not the live generator's statistics, which step 4 copies ...
    assert max(np.abs(a - b).max() for a, b in zip(after_train, live)) > 1e-3
    # ... but those recalibrate_batch_norm gives, and the checkpoint holds them.
    gan.recalibrate_batch_norm()
    for kept, own, in_file in zip(after_train, gan.ema_generator.non_trainable_weights, saved):
        np.testing.assert_allclose(kept, own.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(kept, in_file.numpy(), rtol=1e-5, atol=1e-6)


def test_train_with_mirror_fits_on_images_flipped_half_the_time(tiny_config, tmp_path, monkeypatch):
    made = []

    def recording(*args, **kwargs):
        made.append(make_dataset(*args, **kwargs))
        return made[-1]

    make_dataset = dk.train_lib.make_dataset
    monkeypatch.setattr(dk.train_lib, "make_dataset", recording)
    data = np.zeros((64, 32, 32, 1), "float32")
    data[:, :, :16] = 1.0  # every image white on its left half
    for mirror in (False, True):
        dk.train(tiny_config.replace(mirror=mirror), tmp_path / str(mirror), dataset=data, epochs=1,
                 export_dir=None, verbose=0)
    top_left = [np.concatenate([batch.numpy() for batch in ds])[:, 0, 0, 0] for ds in made]
    assert (top_left[0] == 1.0).all()  # as stored
    assert 0.25 < (top_left[1] == -1.0).mean() < 0.75  # about half flipped
