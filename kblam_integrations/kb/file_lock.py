"""The OS-level edit lock of a file (``filelock``), shared by processes and threads."""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any, Iterator

from .atomic_files import _about, _target

__all__ = ["DEFAULT_LOCK_TIMEOUT", "file_lock", "lock_path"]

#: Seconds to wait for another process's edit of the same file (``$KBLAM_LOCK_TIMEOUT``).
DEFAULT_LOCK_TIMEOUT = 120.0
_LOCKS: dict[str, Any] = {}
_LOCKS_GUARD = threading.Lock()


def lock_path(path: str | os.PathLike[str]) -> Path:
    """The lock file guarding edits of ``path``: ``.<name>.lock`` next to it (kept; never delete it
    while in use: a lock file removed under a holder no longer excludes anyone)."""
    target = _target(Path(path))
    return target.parent / f".{target.name}.lock"


@contextlib.contextmanager
def file_lock(path: str | os.PathLike[str], *, timeout: float | None = None) -> Iterator[Path]:
    """Hold the OS-level edit lock of ``path`` (``filelock``): excludes other processes and
    other threads; re-entrant within one thread. Raises :class:`KBLockTimeoutError` after
    ``timeout`` seconds (default ``$KBLAM_LOCK_TIMEOUT`` or :data:`DEFAULT_LOCK_TIMEOUT`)."""
    from filelock import FileLock, Timeout

    from ..errors import KBLockTimeoutError

    if timeout is None:
        timeout = float(os.environ.get("KBLAM_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT))
    target = _target(Path(path))
    lock_file = lock_path(target)
    key = os.path.abspath(lock_file)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = FileLock(key)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise KBLockTimeoutError(f"another process has been editing this file for over {timeout:g} s "
                                 f"(lock {lock_file})", path=target) from None
    except OSError as exc:
        raise _about(exc, target) from exc
    try:
        yield target
    finally:
        lock.release()

