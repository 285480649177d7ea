"""Command line: `python -m dcgan_keras COMMAND ...` (or the `dcgan-keras` script).

One module per group of sub-commands, each with a `register(subparsers)`
that adds them and sets `func`, the function that runs one:

| module | sub-commands |
| --- | --- |
| `train` | train |
| `latent` | walk, arithmetic |
| `serving` | export, sample |
| `features` | features |
| `evaluate` | evaluate |
| `inside` | guided, ablate, dedup |

Building the parser and `--help` import no TensorFlow: the run functions
import the library.
"""

from __future__ import annotations

import argparse
import sys

from dcgan_keras.cli import evaluate, features, inside, latent, page, serving, train

COMMAND_MODULES = (train, latent, serving, features, evaluate, inside, page)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcgan_keras",
        description="DCGAN (Radford, Metz & Chintala, ICLR 2016) in Keras 3 on TensorFlow.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileExistsError, FileNotFoundError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # Ctrl-C; training stops cleanly (TrainingInterrupted)
        print(f"stopped: {stop}" if str(stop) else "stopped", file=sys.stderr)
        return 130
