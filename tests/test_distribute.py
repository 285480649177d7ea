"""Training under tf.distribute.

The strategies run in subprocesses: logical CPU devices must be configured
before TensorFlow initialises, and MultiWorkerMirroredStrategy needs one
process per worker, each with its own TF_CONFIG (here two workers on
127.0.0.1, which is what two machines do over the network).
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras import distribute
from dcgan_keras.cli import build_parser

TWO_CPUS = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import dcgan_keras as dk

    config = dk.Config(image_size=32, channels=1, latent_dim=16, base_width=8, batch_size=32)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
""")

TRAINS = TWO_CPUS + textwrap.dedent("""
    with mirrored.scope():  # build and compile inside the scope
        gan = dk.DCGAN.from_settings(config)
        gan.compile()
    before = [w.numpy().copy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    x = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    history = gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=2, verbose=0, shuffle=False).history
    after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]

    # The z each replica draws in one step.
    state = gan.seed_generator.state.numpy().tolist()
    z = mirrored.experimental_local_results(mirrored.run(tf.function(lambda: gan.latent_noise(4))))
    # The same networks with a prior of 4 modes (offset 4): each replica's z is a mixture draw.
    with mirrored.scope():
        prior = config.replace(latent_distribution="normal", latent_modes=4, mode_offset=4.0, seed=2)
        mixed = dk.DCGAN(gan.generator, gan.discriminator, prior)
    mixture = mirrored.experimental_local_results(mirrored.run(tf.function(lambda: mixed.latent_noise(4000))))
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "history": history,
        "changed": sum(not np.array_equal(a, b) for a, b in zip(before, after)),
        "weights": len(after),
        "iterations": int(gan.g_optimizer.iterations.numpy()),
        "noise_state": [state, gan.seed_generator.state.numpy().tolist()],
        "noise_difference": float(np.abs(z[0].numpy() - z[1].numpy()).max()),
        "mixture_means": [[float(m) for m in r.numpy()[:, :4].mean(axis=0)] + [float(r.numpy()[:, 4:].mean())]
                          for r in mixture],
        "mixture_difference": float(np.abs(mixture[0].numpy() - mixture[1].numpy()).max()),
    }))
""")

MATCHES_ONE_DEVICE = TWO_CPUS + textwrap.dedent("""
    class GivenNoise(dk.DCGAN):
        # Takes each step's z from the data, batches of (images, z), so that a
        # run on one device and one split between replicas see the same z for
        # the same image.
        def train_step(self, data):
            images, self.given_z = data
            return super().train_step(images)

        def latent_noise(self, batch_size):
            return self.given_z

    initial = dk.DCGAN.from_settings(config).get_weights()
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    z = rng.standard_normal((64, 16)).astype("float32")

    def run(strategy, sync_batch_norm):
        with strategy.scope():
            nets = dk.DCGAN.from_settings(config.replace(sync_batch_norm=sync_batch_norm))
            gan = GivenNoise(nets.generator, nets.discriminator)
            gan.set_weights(initial)
            gan.compile()
        gan.fit(tf.data.Dataset.from_tensor_slices((x, z)).batch(32), epochs=1, verbose=0, shuffle=False)
        return gan.get_weights(), int(gan.g_optimizer.iterations.numpy())

    def largest_difference(a, b):
        return max(float(np.max(np.abs(u - v))) for u, v in zip(a, b))

    # Each comparison runs batch norm through the same kernels on both sides:
    # synchronised batch norm is Keras' own code (on one device it normalises
    # over the whole batch), unsynchronised is the fused kernel. Adam's first
    # steps move each weight by about the learning rate whatever the gradient's
    # size, so a rounding difference near a zero gradient shows up as 2e-4.
    single_synced, single_steps = run(tf.distribute.OneDeviceStrategy("/cpu:0"), True)
    single, _ = run(tf.distribute.OneDeviceStrategy("/cpu:0"), False)
    synced, synced_steps = run(mirrored, True)
    unsynced, _ = run(mirrored, False)
    print(json.dumps({
        "steps": [single_steps, synced_steps],
        "synced": largest_difference(single_synced, synced),
        "unsynced": largest_difference(single, unsynced),
        "moved": largest_difference(single, initial),
    }))
""")

XLA_UNDER_MIRRORED = TWO_CPUS + textwrap.dedent("""
    import sys
    from dcgan_keras.distribute import step_uses_xla

    one_device = tf.distribute.MirroredStrategy(["/cpu:0"])
    x = np.random.default_rng(0).uniform(0, 1, (64, 32, 32, 1)).astype("float32")
    report = {}
    for asked in ("auto", True):
        # train() builds and compiles the model in the strategy's scope with config.jit_compile.
        summary = dk.train(config.replace(jit_compile=asked), sys.argv[1] + f"/{asked}", dataset=x, epochs=1,
                           export_dir=None, verbose=0, strategy=one_device)
        gan = summary["model"]
        report[str(asked)] = {
            "model_jit_compile": gan.jit_compile, "step_uses_xla": step_uses_xla(gan),
            "steps": int(gan.g_optimizer.iterations.numpy()),
            "finite": bool(all(np.isfinite(v).all() for v in summary["history"].values())),
        }
    try:
        with mirrored.scope():
            dk.DCGAN.from_settings(config).compile(jit_compile=True)
        report["two_replicas"] = "compiled"
    except ValueError as error:
        report["two_replicas"] = str(error)
    print(json.dumps(report))
""")


def _run(script, timeout=240, args=()):
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_strategy_over_two_replicas_trains_with_a_custom_train_step():
    # keras-team/keras#19246: a custom train_step under a strategy fails with
    # "You must feed a value for placeholder tensor" unless the optimizers'
    # variables exist before fit; DCGAN.compile builds them.
    report = _run(TRAINS)
    assert report["replicas"] == 2
    assert report["iterations"] == 4  # 2 epochs x 2 global batches of 32
    assert report["changed"] == report["weights"]
    for values in report["history"].values():
        assert all(v == v and abs(v) < 1e3 for v in values)  # finite
    # The noise state is one mirrored variable: without the replica id folded
    # into the seed, both replicas would draw the same z (checked: they did).
    assert report["noise_difference"] > 0.1
    before, after = report["noise_state"]
    assert after == [before[0], before[1] + 1]  # one step of the state per step, not per replica
    # With a mixture prior each replica draws its own z, a quarter of it shifted by 4 on each of the first 4 axes.
    assert report["mixture_difference"] > 0.1
    for means in report["mixture_means"]:
        np.testing.assert_allclose(means, [1.0, 1.0, 1.0, 1.0, 0.0], atol=0.12)


def test_mirrored_strategy_matches_one_device_on_the_same_global_batch():
    # The rounding differs from run to run (the all-reduce and oneDNN's threads sum in
    # the order they finish), and about one run in five has a weight whose gradient is
    # near zero, where Adam's first step (about the learning rate, whatever the
    # gradient's size) can flip: up to ~5e-4 apart. So the best of three runs is checked;
    # a broken synchronisation differs in every run.
    for _ in range(3):
        report = _run(MATCHES_ONE_DEVICE)
        if report["synced"] < 1e-5:
            break
    assert report["steps"] == [2, 2]
    assert report["moved"] > 1e-2  # the runs did train
    # Two replicas of 16 with batch norm synchronised = one device with 32:
    # the same weights, batch-norm statistics and optimizer states, to float rounding.
    assert report["synced"] < 1e-5, report
    # Each replica normalising its own 16 images is a different computation: its weights
    # differ far beyond the rounding differences (at most ~2e-4, see above; measured 2.5e-3).
    assert report["unsynced"] > 1e-3 and report["unsynced"] > 100 * report["synced"], report


def test_jit_compile_true_keeps_xla_under_a_one_replica_mirrored_strategy_and_is_refused_with_two(tmp_path):
    report = _run(XLA_UNDER_MIRRORED, args=[str(tmp_path)])
    # Keras' "auto" drops XLA under any tf.distribute strategy, even of one device
    # (keras-team/keras#18716); on this CPU it would be off anyway.
    assert report["auto"]["model_jit_compile"] is False and report["auto"]["step_uses_xla"] is False
    # Asked for explicitly, it is kept: the traced step is marked for XLA, and it trains.
    assert report["True"]["model_jit_compile"] is True and report["True"]["step_uses_xla"] is True
    for asked in ("auto", "True"):
        assert report[asked]["steps"] == 2 and report[asked]["finite"]  # 64 images, batch 32, one epoch
    # Two replicas: Keras compiles the distributed step as one XLA program, which fails at the
    # first step ("Trying to access resource ... located in device CPU:1 from device CPU:0",
    # checked); compile says so up front.
    assert "several replicas" in report["two_replicas"] and "replicas=2" in report["two_replicas"]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_strategy_with_two_processes_trains_and_the_workers_agree(tmp_path):
    # Two workers on this machine, each `python -m dcgan_keras train --strategy
    # multi-worker` with its own TF_CONFIG, as on two machines.
    images = tmp_path / "images"
    for i, image in enumerate(np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1))):
        dk.save_png(image, images / f"{i:02d}.png")
    run_dir, export_dir = tmp_path / "run", tmp_path / "export"
    command = [
        sys.executable, "-m", "dcgan_keras", "train", "--strategy", "multi-worker", "--sync-batch-norm",
        "--dataset", str(images), "--channels", "1", "--image-size", "32", "--latent-dim", "16",
        "--base-width", "8", "--batch-size", "32", "--epochs", "1", "--ema", "0.9",
        "--run-dir", str(run_dir), "--export-dir", str(export_dir),
    ]
    ports = [_free_port(), _free_port()]
    workers = []
    for index in range(2):
        tf_config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
        env = dict(os.environ, TF_CONFIG=json.dumps(tf_config))
        workers.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    summaries = []
    try:
        for worker in workers:
            out, err = worker.communicate(timeout=240)
            assert worker.returncode == 0, err[-3000:]
            summaries.append(json.loads(out[out.index("{"):]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    chief, other = summaries
    # Only the chief (worker 0) writes the run and the export; worker 1 writes into its own folder.
    assert chief["run_dir"] == str(run_dir)
    assert chief["export"] == str(export_dir / "1") and sorted(os.listdir(export_dir)) == ["1"]
    assert other["run_dir"] == str(run_dir / "workers" / "worker_1")
    assert other["export"].startswith(other["run_dir"])
    assert chief["final"] == other["final"]  # the logs are reduced over both workers
    # Not diluted by a phantom last step (see DCGAN.train_step): near 2 ln 2 at the start.
    assert 1.0 < chief["final"]["d_loss"] < 2.0

    # Same all-reduced gradients, synchronised batch norm: bit for bit the same model.
    models = [keras.models.load_model(summary["checkpoint"]) for summary in summaries]
    for model in models:
        # 64 images / global batch 32; the folder source has no known length, which
        # without DCGAN.train_step's control dependency counted a third, phantom step.
        assert int(model.g_optimizer.iterations.numpy()) == int(model.d_optimizer.iterations.numpy()) == 2
        assert all(np.isfinite(w).all() for w in model.get_weights())
    weights = [model.get_weights() for model in models]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    untrained = dk.DCGAN.from_settings(dk.Config(image_size=32, channels=1, latent_dim=16, base_width=8))
    assert any(not np.allclose(a, b) for a, b in zip(models[0].generator.get_weights(), untrained.generator.get_weights()))


# -- in this process: names, options, configs -----------------------------------


def test_make_strategy_names_and_errors():
    assert distribute.make_strategy("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match=r"Received: strategy='gpus'"):
        distribute.make_strategy("gpus")
    with pytest.raises(RuntimeError, match=r"found no TPU.*Received: tpu=None"):
        distribute.make_strategy("tpu")
    with pytest.raises(TypeError, match="Received: strategy=4"):
        distribute.get_strategy(4)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert distribute.get_strategy(strategy) is strategy
    assert distribute.is_chief(strategy) and distribute.worker_task(strategy) == (None, None)


def test_noise_on_one_device_is_the_seed_generators_sequence(tiny_config):
    draws = {"normal": keras.random.normal, "uniform": lambda shape, seed: keras.random.uniform(shape, -1.0, 1.0, seed=seed)}
    for distribution, draw in draws.items():
        gan = dk.DCGAN.from_settings(tiny_config.replace(latent_distribution=distribution))
        reference = keras.random.SeedGenerator(tiny_config.seed)
        for _ in range(2):
            expected = draw((5, tiny_config.latent_dim), seed=reference)
            np.testing.assert_array_equal(gan.latent_noise(5), expected)


def test_sync_batch_norm_survives_config_and_keras_file_round_trips(tiny_config, tmp_path):
    config = tiny_config.replace(sync_batch_norm=True)
    gan = dk.DCGAN.from_settings(config)
    norms = [l for l in gan.generator.layers + gan.discriminator.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and all(l.synchronized for l in norms)
    rebuilt = dk.DCGAN.from_config(gan.get_config())
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    for model in (rebuilt, loaded):
        assert model.generator.get_layer("up1_bn").synchronized
        assert model.discriminator.get_layer("down2_bn").synchronized
    # The batch norm of a model saved before the option existed is not synchronised.
    assert not dk.DCGAN.from_settings(tiny_config).generator.get_layer("up1_bn").synchronized


def test_config_fields_default_for_old_configs_and_are_validated(tiny_config):
    old = tiny_config.to_dict()
    del old["precision"], old["sync_batch_norm"]
    restored = dk.Config.from_dict(old)
    assert restored.precision == "float32" and restored.sync_batch_norm is False
    with pytest.raises(ValueError, match=r"Received: precision='float16'"):
        tiny_config.replace(precision="float16")
    with pytest.raises(ValueError, match=r"Received: sync_batch_norm='yes'"):
        tiny_config.replace(sync_batch_norm="yes")
    assert restored.jit_compile == "auto"  # a config.json from before the field: Keras' choice
    with pytest.raises(ValueError, match=r"Received: jit_compile='on'"):
        tiny_config.replace(jit_compile="on")


def test_train_command_takes_strategy_precision_and_sync_batch_norm():
    args = build_parser().parse_args(
        ["train", "--strategy", "multi-worker", "--precision", "mixed_bfloat16", "--sync-batch-norm"]
    )
    assert (args.strategy, args.precision, args.sync_batch_norm) == ("multi-worker", "mixed_bfloat16", True)
    defaults = build_parser().parse_args(["train"])
    assert (defaults.strategy, defaults.precision, defaults.sync_batch_norm) == ("default", None, False)  # the recipe's
    assert distribute.STRATEGIES == ("default", "mirrored", "multi-worker", "tpu")  # the CLI's choices
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--strategy", "gpus"])


def test_train_command_jit_compile_flag_sets_the_config_field():
    from dcgan_keras.cli.train import config_from_args

    def jit(*flags):
        return config_from_args(build_parser().parse_args(["train", *flags])).jit_compile

    assert (jit(), jit("--jit-compile", "on"), jit("--jit-compile", "off")) == ("auto", True, False)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--jit-compile", "yes"])
