"""The Twemoji judge's numbers for one trained 64x64 colour model, fed three ways (docs/quality.md, docs/serving.md).

Usage: python reports/prior_check.py CHECKPOINT EXPORT [--num 672]

- `served`: the export's `serving_default` fed z ~ N(0, I), as standard clients call it;
- `own prior`: the checkpoint's sampler fed z from its own prior (`latent_vectors_for`);
- `unmapped`: the sampler fed the same N(0, I) z directly, as exports served it before they
  mapped N(0, I) to the prior.
"""

import argparse
import json

import tensorflow as tf

import dcgan_keras as dk
from dcgan_keras.export import load_checkpoint
from dcgan_keras.sampling import batched_forward, latent_vectors, latent_vectors_for
from dcgan_keras.twemoji_judge import evaluate_twemoji, judge_context


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("export")
    p.add_argument("--num", type=int, default=672)
    args = p.parse_args(argv)
    gan = load_checkpoint(args.checkpoint)
    loaded = tf.saved_model.load(args.export)
    z = latent_vectors(args.num, gan.latent_dim, seed=0)
    images = {
        "served": dk.from_uint8(loaded.signatures["serving_default"](z=tf.constant(z))["images"].numpy()),
        "own prior": batched_forward(gan.sampler, latent_vectors_for(gan.sampler, args.num, seed=0)),
        "unmapped": batched_forward(gan.sampler, z),
    }
    context = judge_context()
    for name, batch in images.items():
        report = evaluate_twemoji(batch, context=context)["samples"]
        print(json.dumps({"images": name, **{k: round(v, 4) for k, v in report.items() if isinstance(v, float)}}))


if __name__ == "__main__":
    main()
