"""The pytorch/examples DCGAN loop on the bundled Twemoji for a given wall time, scored by the Twemoji judge.

Usage: python reports/pytorch_examples_run.py --seconds 1200 [--seed 0] [--json OUT]

The loop is pytorch/examples' `dcgan/main.py` at its defaults: ngf = ndf = 64, nz = 100,
batch 64, Adam 2e-4 with beta_1 0.5, weights from N(0, 0.02) (batch-norm scales from
N(1, 0.02)), z ~ N(0, I), D's real/fake binary cross-entropy and G's non-saturating loss,
64x64 images in [-1, 1]. It trains on the 3,491 Twemoji (as `train --dataset twemoji`
does) until `--seconds` have passed, then draws 672 samples the way the examples draw
theirs (G in training mode, batches of 64) and prints `evaluate_twemoji`'s numbers
(docs/quality.md, "64x64 colour"). Needs PyTorch (not a dependency of the package).
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from train_throughput import torch_networks  # noqa: E402

from dcgan_keras.config import Config  # noqa: E402
from dcgan_keras.twemoji_judge import evaluate_twemoji, real_twemoji  # noqa: E402


def weights_init(module):
    """pytorch/examples' `weights_init`: conv weights from N(0, 0.02), batch-norm scales from N(1, 0.02)."""
    name = type(module).__name__
    if "Conv" in name:
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def train(seconds: float, seed: int = 0, batch: int = 64):
    """`(G, steps, epochs)` after `seconds` of pytorch/examples' loop on the Twemoji."""
    torch.manual_seed(seed)
    config = Config(image_size=64, channels=3, base_width=64, latent_dim=100)
    G, D = torch_networks(config)
    G.apply(weights_init)
    D.apply(weights_init)
    images, _ = real_twemoji()
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    opt_d = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
    opt_g = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()  # the examples' Sigmoid + BCELoss, in one stable op
    start, steps, epochs = time.perf_counter(), 0, 0
    while time.perf_counter() - start < seconds:
        order = torch.randperm(len(data))
        for first in range(0, len(data), batch):  # the DataLoader keeps the last, smaller batch
            real = data[order[first:first + batch]]
            ones, zeros = torch.ones(len(real), 1), torch.zeros(len(real), 1)
            fake = G(torch.randn(len(real), 100, 1, 1))
            opt_d.zero_grad()
            d_loss = bce(D(real), ones) + bce(D(fake.detach()), zeros)
            d_loss.backward()
            opt_d.step()
            opt_g.zero_grad()
            g_loss = bce(D(fake), ones)
            g_loss.backward()
            opt_g.step()
            steps += 1
            if time.perf_counter() - start >= seconds:
                break
        epochs += 1
        print(f"epoch {epochs}: step {steps}, d_loss {d_loss.item():.3f}, g_loss {g_loss.item():.3f}, "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return G, steps, epochs


def samples(G, num: int = 672, seed: int = 0, batch: int = 64) -> np.ndarray:
    """`num` images in [-1, 1] (NHWC), drawn as the examples draw their grids: G in training mode."""
    torch.manual_seed(seed)
    out = []
    with torch.no_grad():
        for first in range(0, num, batch):
            out.append(G(torch.randn(min(batch, num - first), 100, 1, 1)).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, required=True, help="wall time to train for")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="also write the numbers to this file")
    args = p.parse_args(argv)
    G, steps, epochs = train(args.seconds, args.seed)
    report = {"seconds": args.seconds, "steps": steps, "epochs": epochs, **evaluate_twemoji(samples(G, seed=args.seed))}
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
