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
import the library. Before one runs, TensorFlow is imported without its
start-up log (`_quiet`), unless `--verbose` or `DCGAN_KERAS_VERBOSE=1`; a
sub-command that needs no TensorFlow says so with
`set_defaults(needs_tensorflow=False)`. Every option's help shows its default.
"""

from __future__ import annotations

import argparse
import errno
import sys

from dcgan_keras.cli import _quiet
from dcgan_keras.cli import evaluate, features, inside, latent, page, serving, train

COMMAND_MODULES = (train, latent, serving, features, evaluate, inside, page)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcgan_keras",
        description="DCGAN (Radford, Metz & Chintala, ICLR 2016) in Keras 3 on TensorFlow.",
    )
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    for sub in subparsers.choices.values():
        if "--verbose" not in sub._option_string_actions:
            sub.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
        _show_defaults(sub)
    return parser


_VERBOSE_HELP = (f"let TensorFlow write its start-up lines (CUDA, oneDNN) and C++ errors to stderr, e.g. to "
                 f"see why no GPU is used; or set {_quiet.VERBOSE_ENV}=1")


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    """Appends "(default: ...)" to the help of every option with a default that its help does not state."""
    for action in parser._actions:
        flag = isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction))
        if flag or action.default in (None, argparse.SUPPRESS) or not action.help:
            continue
        if "default" not in action.help and "%(default)" not in action.help:
            action.help += " (default: %(default)s)"


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
    if getattr(args, "needs_tensorflow", True) and not _quiet.verbose_requested(args.verbose):
        _quiet.import_tensorflow_quietly()
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
