"""Writing files atomically: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid

# Writing a run's files needs a little room; less than this free is refused up front.
MIN_FREE_BYTES = 64 * 1024**2


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside `path`, renamed onto it when the block succeeds.

    The temporary name keeps `path`'s extension (Keras and PIL choose the
    format from it) and is unique, so two processes never write one file.
    If the block or the rename fails, the temporary file is removed and
    `path` is left as it was. The folder is created if needed.

    Args:
        path: the file to write.

    Yields:
        The temporary path to write to, `.partial.XXXXXXXX.NAME` in `path`'s folder.

    Example:

    ```python
    with atomic_path("runs/digits/ckpt.keras") as tmp:
        model.save(tmp)
    ```
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    tmp = os.path.join(folder, f".partial.{uuid.uuid4().hex[:8]}.{name}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        if os.path.isfile(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def locked_folder(folder, what: str, wait: bool = False):
    """Holds an exclusive lock on `folder` (created) while the block runs: one process at a time.

    The lock is `fcntl.flock` on the folder itself (no lock file); the system
    drops it when the process ends, however it ends. Without `fcntl` (Windows)
    nothing is locked.

    Args:
        folder: the folder to lock.
        what: what the folder is, for the error (e.g. "a training run").
        wait: wait for the other process instead of raising.

    Raises:
        FileExistsError: when another process holds the lock and `wait` is off.
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    try:
        import fcntl
    except ImportError:
        fcntl = None
    fd = os.open(folder, os.O_RDONLY) if fcntl else None
    try:
        if fcntl:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                raise FileExistsError(
                    f"{folder!r} is in use by another process ({what}). Nothing was changed there. Wait "
                    "for that process to finish, or use another folder."
                ) from None
        yield folder
    finally:
        if fd is not None:
            os.close(fd)


def check_writable(path, flag: str) -> None:
    """Raises a clear error unless the folder `path` can be created or written, with some room free.

    Args:
        path: a folder (it need not exist yet; its nearest existing parent is checked).
        flag: the option that set it, for the message (e.g. "--export-dir").
    """
    path = os.fspath(path)
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        raise ValueError(
            f"Cannot create the folder {path!r}: {probe!r} is a file. Choose another path ({flag}). "
            f"Received: {flag}={path!r}"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(
            f"Cannot write to {path!r}: {probe!r} is read-only or not writable by this user. Choose another "
            f"folder ({flag}) or fix its permissions; nothing was written. Received: {flag}={path!r}"
        )
    free = shutil.disk_usage(probe).free
    if free < MIN_FREE_BYTES:
        raise ValueError(
            f"Cannot write to {path!r}: the disk holding {probe!r} has {free / 1024**2:.0f} MiB free, less "
            f"than the {MIN_FREE_BYTES // 1024**2} MiB a run needs. Free some space or choose another folder "
            f"({flag}). Received: {flag}={path!r}"
        )


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
