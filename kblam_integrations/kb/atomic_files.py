"""Atomic file writes: readers see the old file or the new one, never a half-written mix.

The data go to a temporary file in the target's directory, which is flushed, fsynced and
then ``os.replace``-d over the target, so a crash or an error half-way never leaves a
truncated file or clobbers the previous version.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["LEGACY_TEMP_STALE_S", "atomic_write", "atomic_write_text", "atomic_write_with", "remove_stale_temps"]


def atomic_write(path: str | os.PathLike[str], chunks: Iterable[bytes]) -> Path:
    """Write ``chunks`` to ``path`` so that readers see the old file or the new one, never a mix.

    The temporary file lives in the same directory (``os.replace`` is only atomic within
    one file system) and is fsynced before the rename, and the directory afterwards, so
    the new content is durable once this returns. If producing or writing the chunks
    fails, the temporary file is removed and the exception propagates; the target is
    untouched. An existing target keeps its permission bits, a new one gets the usual
    ``0o666 & ~umask``; a symlink target is followed, so the link survives.

    Temporary files are named ``.<target>.p<pid>-<random>.tmp``; one left behind by a
    process that was killed mid-write is removed by the next write of the same target
    (see :func:`remove_stale_temps`). An ``OSError`` names the target, not the temporary.
    """

    def write(fd: int, tmp: str) -> None:
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())

    return _atomic(path, write)


def atomic_write_with(path: str | os.PathLike[str], writer: Callable[[str], None]) -> Path:
    """Like :func:`atomic_write` for a library that writes a file by name (``writer(tmp_path)``),
    e.g. ``safetensors.torch.save_file``: same temp naming, fsync, cleanup and errors."""

    def write(fd: int, tmp: str) -> None:
        os.close(fd)
        writer(tmp)
        fd2 = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd2)
        finally:
            os.close(fd2)

    return _atomic(path, write)


def _target(path: Path) -> Path:
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _atomic(path: str | os.PathLike[str], write: Callable[[int, str], None]) -> Path:
    path = Path(path)
    target = _target(path)
    directory = target.parent
    remove_stale_temps(target)
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.p{os.getpid()}-", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise _about(exc, target) from exc
    try:
        write(fd, tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (tmp, None):
            raise _about(exc, target) from exc
        raise
    _fsync_dir(directory)
    return path


def _about(exc: OSError, target: Path) -> OSError:
    """The same error (type and errno) naming the file the user asked for, not our temporary."""
    err = OSError(exc.errno, exc.strerror or str(exc), str(target)) if exc.errno else OSError(
        f"cannot write {target}: {exc}")
    return err


def _temp_pattern(target: Path) -> re.Pattern[str]:
    # ``.<name>.<random>.tmp`` (older releases) or ``.<name>.p<pid>-<random>.tmp``; the random
    # part never has a dot, so the temporaries of ``a.json`` and ``a.json.bak`` never mix
    return re.compile(rf"^\.{re.escape(target.name)}\.(?:p(\d+)-)?[A-Za-z0-9_]+\.tmp$")


#: Temporaries without a process id (written by older releases) count as stale after this.
LEGACY_TEMP_STALE_S = 600.0


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
    """Delete temporaries of ``path`` left by writers that died (kill -9, power loss).

    A temporary is stale when the process id in its name no longer runs (or, for a
    name without one, when it is older than :data:`LEGACY_TEMP_STALE_S`): a live
    writer's file is never touched. Returns what was removed.
    """
    import time

    target = _target(Path(path))
    pattern = _temp_pattern(target)
    try:
        names = os.listdir(target.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        m = pattern.match(name)
        if not m:
            continue
        candidate = target.parent / name
        if m.group(1) is not None:
            pid = int(m.group(1))
            stale = pid != os.getpid() and not _pid_alive(pid)
        else:
            try:
                stale = time.time() - candidate.stat().st_mtime > LEGACY_TEMP_STALE_S
            except OSError:
                stale = False
        if stale:
            with contextlib.suppress(OSError):
                candidate.unlink()
                removed.append(candidate)
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        import psutil

        return psutil.pid_exists(pid)
    except ImportError:  # pragma: no cover - psutil is a dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True
        return True


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where possible (Linux exposes it)."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    with _UMASK_LOCK:  # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself; not possible (nor needed) on every platform."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)



def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write` for one string, UTF-8 encoded (JSON files and other small texts)."""
    return atomic_write(path, [text.encode("utf-8")])
