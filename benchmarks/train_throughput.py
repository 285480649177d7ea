"""Training and serving throughput of dcgan_keras, beside an equivalent PyTorch loop.

Usage: python benchmarks/train_throughput.py [--steps 20] [--repeats 5] [--sizes 32x1,64x3]
           [--precision float32|mixed_bfloat16|mixed_float16] [--jit] [--threads INTRA,INTER]

Prints images/s of `DCGAN.fit` at batch 128 with data in memory (after a warm-up,
timed per epoch, median of rounds that alternate with the PyTorch loop), of the
tf.data pipeline alone, of generator inference through
an exported SavedModel's `serving_default` (batch 256), and, when torch is
installed (`pip install torch==2.13.0`; a benchmark dependency only), of the
pytorch/examples DCGAN loop with the same architecture in default and
channels_last memory formats, and with D's weights frozen during G's backward
pass ("same work": that loop also computes D's weight gradients there and
discards them; `DCGAN.train_step` does not compute them). Also prints
`train_step`'s analytic FLOPs per trained image and their rate as a fraction of
the cores' practical peak (a large matmul in the same precision).

Levers: `--precision mixed_bfloat16` computes in bfloat16 (float32 weights) on
both sides (PyTorch under `torch.autocast("cpu", torch.bfloat16)`), `--jit`
compiles the train step with XLA, `--threads` sets TensorFlow's intra- and
inter-op thread pools (PyTorch keeps its defaults).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time

import numpy as np

import dcgan_keras as dk
import keras
import tensorflow as tf


def conv_macs(config: dk.Config) -> tuple[int, int, int]:
    """Multiply-accumulates of one forward pass of G, of D, and of D's first layer, for one image."""
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)

    def layer_macs(layer):
        if isinstance(layer, keras.layers.Dense):
            return int(np.prod(layer.kernel.shape))
        if isinstance(layer, keras.layers.Conv2DTranspose):
            h, w, cin = layer.input.shape[1:]
            return h * w * cin * layer.filters * 16  # each input pixel scatters a 4x4 kernel
        if isinstance(layer, keras.layers.Conv2D):
            h, w, cout = layer.output.shape[1:]
            return h * w * cout * layer.input.shape[-1] * 16
        return 0

    first = next(layer for layer in discriminator.layers if isinstance(layer, keras.layers.Conv2D))
    return (sum(map(layer_macs, generator.layers)), sum(map(layer_macs, discriminator.layers)), layer_macs(first))


def train_flops_per_image(config: dk.Config, reference: bool = False) -> float:
    """Analytic FLOPs of one training step per image (a backward pass costs two forwards).

    `DCGAN.train_step`: G forward and backward (3g); D on the real and on the
    fake batch, forward, weight and input gradients, less the input gradient of
    D's first layer, which nothing needs (2 x (3d - d1)); for G's loss, D
    forward and input gradients only (2d). `reference=True` counts the
    pytorch/examples step, which also computes D's weight gradients there (3d).
    """
    g, d, d1 = conv_macs(config)
    return 2.0 * (3 * g + 2 * (3 * d - d1) + (3 if reference else 2) * d)


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch, from its first step to its last.

    Timing whole `fit` calls would add the teardown of fit's data iterator:
    with tf.data autotuning on, it waits for the autotuner's thread, up to ~5 s
    here (once per `fit`, so nothing in real training, but enough to halve the
    rate of a short benchmark call at random).
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def keras_round(config, steps, jit=False):
    """Builds and warms up a DCGAN; returns it and a function that times one epoch of `steps` steps."""
    gan = dk.DCGAN.from_settings(config)
    gan.compile(jit_compile=jit)
    data = np.random.default_rng(0).uniform(-1, 1, (config.batch_size * 4, config.image_size, config.image_size, config.channels)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).batch(config.batch_size, drop_remainder=True).cache().repeat()
    gan.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up

    def one_round():
        clock = EpochClock()
        gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, callbacks=[clock])
        return steps * config.batch_size / clock.seconds

    return gan, one_round


def peak_gflops(dtype, n=2048, seconds=2.0):
    """GFLOP/s of a large matrix product in TensorFlow (oneDNN): the cores' practical peak."""
    a = tf.cast(tf.random.normal((n, n)), dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)
    matmul = tf.function(tf.linalg.matmul, autograph=False)
    matmul(a, b).numpy()
    start, count = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        matmul(a, b).numpy()
        count += 1
    return count * 2 * n**3 / (time.perf_counter() - start) / 1e9


def pipeline_rate(config, source="digits", cache="auto"):
    """Images/s of `make_dataset(source)` batches over three epochs, after a first one (which fills the cache)."""
    ds = dk.make_dataset(source, image_size=config.image_size, channels=config.channels, batch_size=config.batch_size,
                         cache=cache)
    for _ in ds:  # fill the cache
        pass
    start, n = time.perf_counter(), 0
    for _ in range(3):
        for batch in ds:
            n += int(batch.shape[0])
    return n / (time.perf_counter() - start)


def serving_rate(gan, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        path = dk.export_generator(gan, tmp)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        z = tf.constant(gan.noise(256))
        serve(z=z)
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(5):
                serve(z=z)["images"].numpy()
            rates.append(5 * 256 / (time.perf_counter() - start))
    return statistics.median(rates)


# PyTorch variants: (memory format, D's weights frozen while G's loss is backpropagated).
# The pytorch/examples step lets `g_loss.backward()` also compute D's weight
# gradients, which the next `opt_d.zero_grad()` throws away; "same_work" skips
# them, as `DCGAN.train_step` does (its tape asks for G's gradients only).
TORCH_VARIANTS = {"default": ("contiguous", False), "channels_last": ("channels_last", False), "same_work": ("contiguous", True)}


def torch_networks(config):
    """pytorch/examples' DCGAN `(G, D)` for `config`'s size, channels, z and width (ngf = ndf = base_width).

    D ends in a logit (the examples' Sigmoid is folded into `BCEWithLogitsLoss`).
    """
    from torch import nn

    nz, ngf, nc, size = config.latent_dim, config.base_width, config.channels, config.image_size
    stages = int(np.log2(size // 4))

    def generator():
        width = ngf * 2 ** (stages - 1)
        layers = [nn.ConvTranspose2d(nz, width, 4, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        return nn.Sequential(*layers, nn.ConvTranspose2d(width, nc, 4, 2, 1, bias=False), nn.Tanh())

    def discriminator():
        layers, width, cin = [], ngf, nc
        for stage in range(stages):
            layers.append(nn.Conv2d(cin, width, 4, 2, 1, bias=False))
            if stage:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, True))
            cin, width = width, width * 2
        return nn.Sequential(*layers, nn.Conv2d(cin, 1, 4, 1, 0, bias=False), nn.Flatten())

    return generator(), discriminator()


def torch_rounds(config, steps, device="cpu", variants=tuple(TORCH_VARIANTS)):
    """The pytorch/examples DCGAN step, warmed up, in each of `variants` (of `TORCH_VARIANTS`).

    Runs on `device` ("cpu" or "cuda"), under `torch.autocast` in bfloat16 or
    float16 as `config.precision` says (float16 with a `GradScaler`, as Keras'
    loss scaling). Returns {variant: (one_round, inference_rate)} where one_round()
    times `steps` training steps in images/s and inference_rate is G in eval mode
    at batch 256; None without torch.
    """
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
    if device == "cuda":
        torch.backends.cudnn.benchmark = True  # as pytorch/examples' dcgan
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    half = {"mixed_bfloat16": torch.bfloat16, "mixed_float16": torch.float16}.get(config.precision)
    nz, nc, size = config.latent_dim, config.channels, config.image_size

    results = {}
    for variant in variants:
        fmt, freeze_d = TORCH_VARIANTS[variant]
        G, D = torch_networks(config)
        memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        G, D = G.to(device, memory_format=memory), D.to(device, memory_format=memory)
        opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        bce = nn.BCEWithLogitsLoss()
        real = torch.rand(config.batch_size, nc, size, size, device=device).mul(2).sub(1).to(memory_format=memory)
        ones, zeros = torch.ones(config.batch_size, 1, device=device), torch.zeros(config.batch_size, 1, device=device)
        autocast = (lambda: torch.autocast(device, dtype=half)) if half else contextlib.nullcontext
        scaler = torch.amp.GradScaler(device, enabled=half == torch.float16)  # off: a pass-through

        def step(freeze_d=freeze_d):
            z = torch.randn(config.batch_size, nz, 1, 1, device=device)
            with autocast():
                fake = G(z)
                d_loss = bce(D(real).float(), ones) + bce(D(fake.detach()).float(), zeros)
            opt_d.zero_grad()
            scaler.scale(d_loss).backward()
            scaler.step(opt_d)
            D.requires_grad_(not freeze_d)
            with autocast():
                g_loss = bce(D(fake).float(), ones)
            opt_g.zero_grad()
            scaler.scale(g_loss).backward()
            D.requires_grad_(True)
            scaler.step(opt_g)
            scaler.update()

        for _ in range(3):
            step()

        def one_round(step=step):
            sync()
            start = time.perf_counter()
            for _ in range(steps):
                step()
            sync()
            return steps * config.batch_size / (time.perf_counter() - start)

        G.eval()
        with torch.no_grad(), autocast():
            z = torch.randn(256, nz, 1, 1, device=device)
            G(z)
            sync()
            start = time.perf_counter()
            for _ in range(5):
                G(z)
            sync()
            inference = 5 * 256 / (time.perf_counter() - start)
        G.train()
        results[variant] = (one_round, inference)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps per timed round")
    parser.add_argument("--repeats", type=int, default=5, help="rounds; each times keras, then each PyTorch variant")
    parser.add_argument("--sizes", default="32x1,64x3")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--jit", action="store_true", help="XLA-compile the train step")
    parser.add_argument("--threads", default=None, help="INTRA,INTER thread pool sizes for TensorFlow")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch rows")
    args = parser.parse_args()
    if args.threads:
        intra, inter = map(int, args.threads.split(","))
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    compute = "float32" if args.precision == "float32" else args.precision.split("_")[1]
    peak = peak_gflops(compute)
    print(f"precision {args.precision}, XLA {'on' if args.jit else 'off'}, threads {args.threads or 'default'}; "
          f"peak (TensorFlow {compute} 2048x2048 matmul) {peak:.0f} GFLOP/s")
    print("| size | keras fit img/s | PyTorch img/s | PyTorch channels_last | PyTorch same work | ratio to PyTorch "
          "| ratio to channels_last | ratio to same work | GFLOP/img | keras % of peak | tf.data img/s "
          "| serving img/s (b256) | PyTorch eval img/s |")
    print("|" + " --- |" * 13)
    for spec in args.sizes.split(","):
        size, channels = map(int, spec.split("x"))
        config = dk.Config(image_size=size, channels=channels, batch_size=128, precision=args.precision)
        gan, keras_one = keras_round(config, args.steps, jit=args.jit)
        torch_fns = None if args.no_torch else torch_rounds(config, args.steps)
        rates = {"keras": [], **{variant: [] for variant in TORCH_VARIANTS}}
        for _ in range(args.repeats):  # interleaved, so that drifts of the cores' speed hit all three alike
            rates["keras"].append(keras_one())
            for variant, (one_round, _) in (torch_fns or {}).items():
                rates[variant].append(one_round())
        median = {name: statistics.median(values) if values else None for name, values in rates.items()}
        flops = train_flops_per_image(config) / 1e9
        fmt = lambda v: f"{v:.0f}" if v else "n/a"  # noqa: E731
        ratio = lambda other: f"{median['keras'] / other:.2f}" if other else "n/a"  # noqa: E731
        inference = torch_fns["default"][1] if torch_fns else None
        print(f"| {size}x{size}x{channels} | {median['keras']:.0f} | {fmt(median['default'])} | {fmt(median['channels_last'])} | "
              f"{fmt(median['same_work'])} | {ratio(median['default'])} | {ratio(median['channels_last'])} | "
              f"{ratio(median['same_work'])} | {flops:.2f} | "
              f"{100 * median['keras'] * flops / peak:.0f}% | {pipeline_rate(config):.0f} | "
              f"{serving_rate(gan, 3):.0f} | {fmt(inference)} |", flush=True)
        print("  rounds (img/s): " + "; ".join(f"{name} " + " ".join(f"{v:.0f}" for v in values) for name, values in rates.items() if values), flush=True)


if __name__ == "__main__":
    main()
