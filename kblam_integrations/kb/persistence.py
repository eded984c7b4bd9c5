"""Reading and writing knowledge-base files: one import for the file formats, atomic writes
and the edit lock, plus :func:`locked_edit`, the read-modify-write of a whole KB file.

The pieces live by job: :mod:`.file_formats` (the format registry, readers and writers),
:mod:`.atomic_files` (write-then-rename) and :mod:`.file_lock` (the OS-level lock). This
module sits above :mod:`.knowledge_base`, which only uses :mod:`.file_formats`.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

from .atomic_files import LEGACY_TEMP_STALE_S, atomic_write, atomic_write_text, atomic_write_with, remove_stale_temps
from .file_formats import (
    FORMATS,
    KB_FILE_FORMATS,
    KB_FILE_SUFFIXES,
    KBFileFormat,
    KBFileNotFoundError,
    detect_format,
    dump_triples,
    load_triples,
    parse_triples,
    save_triples,
)
from .file_lock import DEFAULT_LOCK_TIMEOUT, file_lock, lock_path
from .knowledge_base import KnowledgeBase

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "FORMATS",
    "KB_FILE_FORMATS",
    "KB_FILE_SUFFIXES",
    "LEGACY_TEMP_STALE_S",
    "KBFileFormat",
    "KBFileNotFoundError",
    "atomic_write",
    "atomic_write_text",
    "atomic_write_with",
    "detect_format",
    "dump_triples",
    "file_lock",
    "load_triples",
    "lock_path",
    "locked_edit",
    "parse_triples",
    "remove_stale_temps",
    "save_kb",
    "save_triples",
]


def save_kb(kb: KnowledgeBase, path: str | os.PathLike[str], format: str | None = None) -> Path:
    """Write ``kb`` atomically (one consistent snapshot); the format comes from ``format`` or the suffix."""
    return kb.save(path, format)


@contextlib.contextmanager
def locked_edit(path: str | os.PathLike[str], format: str | None = None, *, create: bool = False,
                on_duplicate: str = "ignore", timeout: float | None = None) -> Iterator[KnowledgeBase]:
    """Read-modify-write a KB file with no lost update: the file is locked, *then* read.

    >>> with locked_edit("kb.json") as kb:  # doctest: +SKIP
    ...     kb.add("Ada", "born in", "London")

    The KB is written back atomically when the block ends without an exception and the
    KB changed (or the file was just created with ``create=True``); on an exception the
    file is left as it was. Concurrent ``locked_edit`` calls on one file, from any
    process, run one after another, so N concurrent adds keep N triples.
    """
    path = Path(path)
    fmt = detect_format(path, format)
    with file_lock(path, timeout=timeout):
        existed = path.exists()
        if existed:
            kb = KnowledgeBase(load_triples(path, fmt), on_duplicate=on_duplicate)  # type: ignore[arg-type]
        elif create:
            kb = KnowledgeBase(on_duplicate=on_duplicate)  # type: ignore[arg-type]
        else:
            raise KBFileNotFoundError("knowledge-base file not found", path=path)
        start = kb.version
        yield kb
        if kb.version != start or not existed:
            save_kb(kb, path, fmt)


