"""Training under tf.distribute (run in a subprocess: logical devices must be set before TF starts)."""

import json
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import numpy as np
    import dcgan_keras as dk

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    config = dk.Config(image_size=32, channels=1, latent_dim=16, base_width=8, batch_size=32)
    with strategy.scope():  # build and compile inside the scope
        gan = dk.DCGAN.from_config(config)
        gan.compile()
    before = [w.numpy().copy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    x = np.random.default_rng(0).uniform(-1, 1, (64, 32, 32, 1)).astype("float32")
    history = gan.fit(tf.data.Dataset.from_tensor_slices(x).batch(32), epochs=2, verbose=0).history
    after = [w.numpy() for w in gan.generator.trainable_weights + gan.discriminator.trainable_weights]
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "history": history,
        "changed": sum(not np.array_equal(a, b) for a, b in zip(before, after)),
        "weights": len(after),
        "iterations": int(gan.g_optimizer.iterations.numpy()),
    }))
""")


def test_mirrored_strategy_over_two_replicas_trains_with_a_custom_train_step():
    # keras-team/keras#19246: a custom train_step under a strategy fails with
    # "You must feed a value for placeholder tensor" unless the optimizers'
    # variables exist before fit; DCGAN.compile builds them.
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["iterations"] == 4  # 2 epochs x 2 global batches of 32
    assert report["changed"] == report["weights"]
    for values in report["history"].values():
        assert all(v == v and abs(v) < 1e3 for v in values)  # finite
