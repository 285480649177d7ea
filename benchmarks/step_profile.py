"""Where a training step's time goes: TensorFlow's profiler, summed by op type.

Usage: python benchmarks/step_profile.py [--size 64] [--channels 3]
           [--precision float32|mixed_bfloat16] [--steps 4] [--top 12] [--sequential]

Profiles `--steps` steps of `DCGAN.fit` (batch 128, data in memory, after
warm-up) and prints the kernels' time per step by op type, the share spent in
convolutions, and the slowest single ops. `--sequential` runs one op at a time
(inter-op pool of 1), so that the times add up to the step; by default
TensorFlow may run two ops at once on the two cores and each then takes longer.
"""

from __future__ import annotations

import argparse
import collections
import glob
import tempfile

import numpy as np

import dcgan_keras as dk
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2


def op_times(logdir, steps):
    """{(op name, op type): ms per step} from the host plane of a profile."""
    space = xplane_pb2.XSpace()
    with open(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0], "rb") as f:
        space.ParseFromString(f.read())
    times = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith(("tf_Compute", "tf_numa")):  # the executor's and the intra-op pool's threads
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" in name and "::" not in name:  # "op/name:OpType"; not the executor's own spans
                    times[tuple(name.rsplit(":", 1))] += event.duration_ps / 1e9 / steps
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_bfloat16", "mixed_float16"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--sequential", action="store_true", help="inter-op pool of 1: one op at a time")
    args = parser.parse_args()
    if args.sequential:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    config = dk.Config(image_size=args.size, channels=args.channels, batch_size=128, precision=args.precision)
    data = np.random.default_rng(0).uniform(-1, 1, (512, args.size, args.size, args.channels)).astype("float32")
    ds = tf.data.Dataset.from_tensor_slices(data).batch(128, drop_remainder=True).cache().repeat()
    gan = dk.DCGAN.from_settings(config)
    gan.compile()
    gan.fit(ds, steps_per_epoch=3, epochs=1, verbose=0)  # trace and warm up
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        gan.fit(ds, steps_per_epoch=args.steps, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        times = op_times(logdir, args.steps)
    by_type = collections.Counter()
    for (_, op_type), ms in times.items():
        by_type[op_type] += ms
    total = sum(by_type.values())
    conv = sum(ms for op_type, ms in by_type.items() if "Conv2D" in op_type)
    print(f"{args.size}x{args.size}x{args.channels} {args.precision}, "
          f"{'one op at a time' if args.sequential else 'default thread pools'}: "
          f"kernels {total:.0f} ms per step, convolutions {conv:.0f} ms ({100 * conv / total:.0f}%)")
    for op_type, ms in by_type.most_common(args.top):
        print(f"  {ms:8.1f} ms  {op_type}")
    print("slowest ops:")
    for (name, op_type), ms in times.most_common(args.top):
        print(f"  {ms:8.1f} ms  {op_type}  {name.removeprefix('StatefulPartitionedCall/')}")


if __name__ == "__main__":
    main()
