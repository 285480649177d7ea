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
import errno
import sys

from dcgan_keras.cli import evaluate, features, inside, latent, serving, train

COMMAND_MODULES = (train, latent, serving, features, evaluate, inside)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcgan_keras",
        description="DCGAN (Radford, Metz & Chintala, ICLR 2016) in Keras 3 on TensorFlow.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


# What to do about an OSError, by its errno.
_OS_HINTS = {
    errno.ENOSPC: "The disk is full: free some space, then run the command again (a training run continues "
                  "from its last finished epoch with --resume).",
    errno.EROFS: "The file system is read-only: choose a writable folder.",
    errno.EACCES: "Permission denied: choose a folder this user can write, or fix its permissions.",
    errno.EDQUOT: "The disk quota is exceeded: free some space, then run the command again.",
}


def _tensorflow_error(error: BaseException) -> bool:
    """Whether `error` is one of TensorFlow's (`tf.errors.OpError`), without importing TensorFlow."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(error, tf.errors.OpError)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, RuntimeError, FileExistsError, FileNotFoundError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # full or read-only disk, permissions, a damaged file
        hint = _OS_HINTS.get(error.errno, "")
        print(f"error: {error}. {hint}".rstrip(), file=sys.stderr)
        return 1
    except Exception as error:
        if not _tensorflow_error(error):
            raise
        text = str(error).strip().splitlines()
        print(f"error: {type(error).__name__}: {text[0] if text else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as stop:  # Ctrl-C; training stops cleanly (TrainingInterrupted)
        print(f"stopped: {stop}" if str(stop) else "stopped", file=sys.stderr)
        return 130
