"""Arguments and argument parsing shared by several sub-commands."""

from __future__ import annotations


def add_model(p, help="a .keras checkpoint or a SavedModel version folder"):
    """`--model`: a generator to load with `checkpoints.load_generator`."""
    p.add_argument("--model", required=True, help=help)


def add_checkpoint(p, help):
    """`--checkpoint`: a `.keras` file, for commands that need the discriminator."""
    p.add_argument("--checkpoint", required=True, help=help)


def add_out(p, help="output folder"):
    p.add_argument("--out", required=True, help=help)


def comma_ints(text, name) -> list[int] | None:
    """`"3,7,12"` -> `[3, 7, 12]` (`None` stays `None`); `name` is the option, for the error."""
    if text is None:
        return None
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--{name} must be comma-separated integers. Received: {text!r}") from None


def layer_name_or_index(text):
    """A `--layer` value: a layer name, or an integer index such as `-1`."""
    if text is not None and text.lstrip("-").isdigit():
        return int(text)
    return text
