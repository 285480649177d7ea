"""Training and serving throughput of dcgan_keras, beside an equivalent PyTorch loop.

Usage: python benchmarks/train_throughput.py [--steps 20] [--repeats 3] [--sizes 32x1,64x3]
           [--precision float32|mixed_bfloat16|mixed_float16] [--jit] [--threads INTRA,INTER]

Prints images/s of `DCGAN.fit` at batch 128 with data in memory (after a warm-up,
median of repeats), of the tf.data pipeline alone, of generator inference through
an exported SavedModel's `serving_default` (batch 256), and, when torch is
installed (`pip install torch==2.13.0`; a benchmark dependency only), of the
pytorch/examples DCGAN loop with the same architecture in default and
channels_last memory formats. Also prints analytic FLOPs per trained image.

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


def conv_macs(config: dk.Config) -> tuple[int, int]:
    """Multiply-accumulates of one forward pass of G and of D for one image."""
    generator, discriminator = dk.build_generator(config), dk.build_discriminator(config)
    def macs(model):
        total = 0
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dense):
                total += int(np.prod(layer.kernel.shape))
            elif isinstance(layer, dk.UpConv2D):
                h, w, cin = layer.input.shape[1:]
                total += h * w * cin * layer.filters * 16  # each input pixel scatters a 4x4 kernel
            elif isinstance(layer, keras.layers.Conv2D):
                h, w, cout = layer.output.shape[1:]
                total += h * w * cout * layer.input.shape[-1] * 16
        return total
    return macs(generator), macs(discriminator)


def train_flops_per_image(config: dk.Config) -> float:
    g, d = conv_macs(config)
    # G forward + backward (3x), D on real and fake fwd+bwd (2 x 3x), D fwd+bwd for G's loss (3x).
    return 2.0 * (3 * g + 6 * d + 3 * d)


def keras_fit(config, steps, repeats, jit=False):
    gan = dk.DCGAN.from_config(config)
    gan.compile(jit_compile=jit)
    data = np.random.default_rng(0).uniform(-1, 1, (config.batch_size * 4, config.image_size, config.image_size, config.channels)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).batch(config.batch_size, drop_remainder=True).cache().repeat()
    gan.fit(ds, steps_per_epoch=3, epochs=1, verbose=0, shuffle=False)  # trace and warm up
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        gan.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        rates.append(steps * config.batch_size / (time.perf_counter() - start))
    return statistics.median(rates), gan


def pipeline_rate(config):
    ds = dk.make_dataset("digits", image_size=config.image_size, channels=config.channels, batch_size=config.batch_size)
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


def torch_rates(config, steps, repeats):
    """Images/s of the pytorch/examples DCGAN step (and of G in eval mode), both memory formats."""
    try:
        import torch
        from torch import nn
    except ImportError:
        return None
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

    results = {}
    for fmt in ("default", "channels_last"):
        G, D = generator(), discriminator()
        memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
        G, D = G.to(memory_format=memory), D.to(memory_format=memory)
        opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        bce = nn.BCEWithLogitsLoss()
        real = torch.rand(config.batch_size, nc, size, size).mul(2).sub(1).to(memory_format=memory)
        ones, zeros = torch.ones(config.batch_size, 1), torch.zeros(config.batch_size, 1)

        autocast = (
            (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if config.precision == "mixed_bfloat16"
            else contextlib.nullcontext
        )

        def step():
            z = torch.randn(config.batch_size, nz, 1, 1)
            with autocast():
                fake = G(z)
                d_loss = bce(D(real).float(), ones) + bce(D(fake.detach()).float(), zeros)
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            with autocast():
                g_loss = bce(D(fake).float(), ones)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()

        for _ in range(3):
            step()
        rates = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates.append(steps * config.batch_size / (time.perf_counter() - start))
        results[fmt] = statistics.median(rates)
        G.eval()
        with torch.no_grad(), autocast():
            z = torch.randn(256, nz, 1, 1)
            G(z)
            start = time.perf_counter()
            for _ in range(5):
                G(z)
            results[f"{fmt}_inference"] = 5 * 256 / (time.perf_counter() - start)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
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
    print(f"precision {args.precision}, XLA {'on' if args.jit else 'off'}, threads {args.threads or 'default'}")
    print("| size | keras fit img/s | GFLOP/img | tf.data img/s | serving img/s (b256) | torch img/s | torch channels_last | ratio keras/torch | torch eval img/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec in args.sizes.split(","):
        size, channels = map(int, spec.split("x"))
        config = dk.Config(image_size=size, channels=channels, batch_size=128, precision=args.precision)
        fit, gan = keras_fit(config, args.steps, args.repeats, jit=args.jit)
        flops = train_flops_per_image(config) / 1e9
        torch_result = None if args.no_torch else torch_rates(config, args.steps, args.repeats)
        t = torch_result or {}
        fmt = lambda v: f"{v:.0f}" if v else "n/a"  # noqa: E731
        ratio = f"{fit / t['default']:.2f}" if t else "n/a"
        print(f"| {size}x{size}x{channels} | {fit:.0f} | {flops:.2f} | {pipeline_rate(config):.0f} | "
              f"{serving_rate(gan, args.repeats):.0f} | {fmt(t.get('default'))} | {fmt(t.get('channels_last'))} | "
              f"{ratio} | {fmt(t.get('default_inference'))} |", flush=True)


if __name__ == "__main__":
    main()
