"""Writing files atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path`, renamed onto it when the block succeeds.

    The temporary name keeps `path`'s extension (Keras and PIL choose the
    format from it). If the block raises, the temporary file is removed and
    `path` is left as it was. The folder is created if needed.

    Args:
        path: the file to write.

    Yields:
        The temporary path to write to, `.partial.NAME` in `path`'s folder.

    Example:

    ```python
    with atomic_path("runs/digits/ckpt.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".partial.{name}")
    try:
        yield tmp
    except BaseException:
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise
    os.replace(tmp, path)


def atomic_write_text(path, text: str) -> str:
    """Writes `text` to `path` atomically (flushed to disk before the rename); returns `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return os.fspath(path)


def atomic_write_json(path, data, indent: int = 2) -> str:
    """Writes `data` as JSON to `path` atomically; returns `path`."""
    return atomic_write_text(path, json.dumps(data, indent=indent))
