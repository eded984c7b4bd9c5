"""Text -> triples for KBLaM, with no framework imports: the shared machinery behind the loaders.

The framework classes live with the integrations (framework code lives only there):

* :class:`~kblam_integrations.integrations.langchain_loaders.KBLaMTextLoader` – a LangChain
  ``BaseLoader`` (``lazy_load`` / ``load``) yielding ``langchain_core.documents.Document`` objects.
* :class:`~kblam_integrations.integrations.llamaindex_readers.KBLaMReader` – a LlamaIndex
  ``BaseReader`` (``load_data`` / ``lazy_load_data``) returning ``llama_index.core.schema.Document``.

Both also build a :class:`~kblam_integrations.kb.KnowledgeBase` directly
(``load_knowledge_base``), and so does :meth:`KnowledgeBase.from_documents`.

**Sources.** ``sources`` is one source or a list of them:

* a ``pathlib.Path`` or a ``str`` naming an existing **file** – read as text;
* an existing **directory** – every ``*.txt`` and ``*.md`` file below it, recursively, in
  sorted path order (``patterns=`` changes the globs);
* a **document** – any object with a ``metadata`` mapping and a ``page_content`` (LangChain
  ``Document``) or ``text`` (LlamaIndex ``Document`` / ``TextNode``) string. One that carries
  a triple in its metadata (``name``/``property``/``value``, as the loaders' own output does)
  is taken as that triple; any other is run through the extractor, and its scalar metadata
  (``source``, ``page``, ...) is kept on every triple extracted from it;
* any other ``str`` – **treated as the text itself**, unless it looks like a path (no
  whitespace and a file extension such as ``notes.txt``, or a leading ``/``, ``./``,
  ``../``, ``~``), in which case a missing file raises
  :class:`~kblam_integrations.errors.KBFormatError` naming it instead of being silently
  extracted as text. Pass ``texts=[...]`` to give raw texts explicitly, with no path
  guessing at all.

Files are read lazily paragraph by paragraph (blank-line separated) and parsed with spaCy
``nlp.pipe``, so large documents never have to be parsed — or held — in one piece;
``show_progress=True`` shows a tqdm bar.

Each document's metadata: ``name``, ``property``, ``value``, ``triple_id``, ``doc_id``,
``source`` (the file path, the document's own ``source``, or ``"<text>"``), ``sentence``,
``char_start``, ``char_end`` (the sentence's character span in the source text), plus the
scalar metadata of a source document; its text is the fact as a sentence
(:func:`~kblam_integrations.kb.sentences.fact_sentence`, e.g. "Ada Lovelace was born
in London.").
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, Union

from ..errors import KBFormatError
from .documents import (  # noqa: F401 - re-exported: the integrations' loaders read them here
    PROVENANCE_KEYS,
    SCALAR_TYPES,
    document_parts,
    document_triple,
    triple_metadata,
    triple_text,
)
from .extraction import TripleExtractor, split_paragraphs
from .knowledge_base import KnowledgeBase, OnDuplicate
from .triple import Triple

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

__all__ = ["document_parts", "document_triple", "iter_sources", "triple_metadata", "triple_text",
           "triples_from_documents"]

Source = Union[str, os.PathLike]
DEFAULT_PATTERNS = ("*.txt", "*.md")
TEXT_SOURCE = "<text>"
DOCUMENT_SOURCE = "<document>"
_PATHLIKE_EXT = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")


# ------------------------------------------------------------------ sources
def _looks_like_path(text: str) -> bool:
    if not text or len(text) > 4096 or "\n" in text:
        return False
    if text.startswith(("/", "./", "../", "~", ".\\", "..\\")) and not any(c.isspace() for c in text.strip()):
        return True
    return not any(c.isspace() for c in text) and bool(_PATHLIKE_EXT.search(text))


def _read_paragraphs(path: Path, encoding: str, max_chars: int, chunk_lines: int = 2000) -> Iterator[tuple[int, str]]:
    """Yield ``(char_offset, paragraph)`` from a file without reading it whole.

    Lines are accumulated until a blank line (or ``max_chars``); offsets count characters
    of the decoded file (newlines kept as they are).
    """
    try:
        with open(path, encoding=encoding, newline="") as fh:
            offset = 0
            buf: list[str] = []
            buf_start = 0
            size = 0
            for line in fh:
                if not line.strip():
                    if buf:
                        yield buf_start, "".join(buf)
                    buf, size = [], 0
                    offset += len(line)
                    buf_start = offset
                    continue
                if not buf:
                    buf_start = offset
                buf.append(line)
                size += len(line)
                offset += len(line)
                if size >= max_chars or len(buf) >= chunk_lines:
                    text = "".join(buf)
                    # cut long runs at sentence ends; extraction re-splits anything over max_chars
                    yield buf_start, text
                    buf, size = [], 0
                    buf_start = offset
            if buf:
                yield buf_start, "".join(buf)
    except UnicodeDecodeError as exc:
        raise KBFormatError(f"file is not valid {encoding} text ({exc.reason} at byte {exc.start})", path=path) from exc
    except OSError as exc:
        raise KBFormatError(f"cannot read file: {exc.strerror or exc}", path=path) from exc


def iter_sources(sources: Source | Iterable[Source] | None = None, texts: Iterable[str] | None = None, *,
                 patterns: Sequence[str] = DEFAULT_PATTERNS) -> Iterator[tuple[str, str, Path | str]]:
    """Expand sources into ``(doc_id, source_label, path_or_text)``; a ``Path`` means a file.

    Missing paths (and path-looking strings that do not exist) raise ``KBFormatError``.
    """
    if sources is None:
        items: list[Any] = []
    elif isinstance(sources, (str, os.PathLike)):
        items = [sources]
    else:
        items = list(sources)
    text_index = 0
    for item in items:
        if isinstance(item, os.PathLike):
            path = Path(item).expanduser()
            if not path.exists():
                raise KBFormatError("no such file or directory", path=path)
        elif isinstance(item, str):
            candidate = Path(item).expanduser() if len(item) < 4096 and "\n" not in item and item.strip() else None
            try:
                exists = candidate is not None and candidate.exists()
            except (OSError, ValueError):  # name too long, NUL byte, ...
                exists = False
            if not exists:
                if _looks_like_path(item):
                    raise KBFormatError("no such file or directory (pass texts=[...] to extract a string as text)",
                                        path=item)
                yield f"text-{text_index}", TEXT_SOURCE, item
                text_index += 1
                continue
            path = candidate  # type: ignore[assignment]
        else:
            raise TypeError(f"a source must be a str or a path, got {type(item).__name__}")
        if path.is_dir():
            files = sorted({f for pat in patterns for f in path.rglob(pat) if f.is_file()})
            for f in files:
                yield str(f), str(f), f
        else:
            yield str(path), str(path), path
    for text in texts or ():
        if not isinstance(text, str):
            raise TypeError(f"texts must be strings, got {type(text).__name__}")
        yield f"text-{text_index}", TEXT_SOURCE, text
        text_index += 1



def _source_extra(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """A source document's scalar metadata, kept on the triples extracted from it."""
    skip = {"name", "property", "value", "id", "triple_id", "doc_id", "sentence", "char_start", "char_end"}
    return {k: v for k, v in metadata.items() if isinstance(k, str) and k not in skip and isinstance(v, SCALAR_TYPES)}


class _TripleSource:
    """Shared machinery: sources -> lazily read paragraphs -> extractor -> triples with ``source``."""

    def __init__(self, extractor: TripleExtractor | None, model: str | None, nlp: "Language | None",
                 batch_size: int, show_progress: bool, encoding: str, patterns: Sequence[str]):
        self._check_spacy = extractor is None and nlp is None
        self.extractor = extractor if extractor is not None else TripleExtractor(model, nlp)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.encoding = encoding
        self.patterns = tuple(patterns)

    def _entries(self, sources: Any, texts: Iterable[str] | None) -> list[tuple[str, Any, Any]]:
        """``(doc_id, label_or_extra, obj)`` in source order; ``obj`` is a Path, a text or a Triple.

        Every path is validated up front; documents that carry a triple become that triple.
        """
        if sources is None:
            items: list[Any] = []
        elif isinstance(sources, (str, os.PathLike)) or document_parts(sources) is not None:
            items = [sources]
        else:
            items = list(sources)
        entries: list[tuple[str, Any, Any]] = []
        used: set[str] = set()
        n_text = 0
        for index, item in enumerate(items):
            parts = document_parts(item)
            if parts is None:
                for doc_id, label, obj in iter_sources([item], patterns=self.patterns):
                    if label == TEXT_SOURCE:
                        doc_id = f"text-{n_text}"
                        n_text += 1
                    entries.append((doc_id, {"source": label}, obj))
                    used.add(doc_id)
                continue
            text, metadata, own_id = parts
            triple = document_triple(metadata)
            if triple is not None:
                entries.append(("", None, triple))
                continue
            doc_id = str(metadata.get("doc_id") or own_id or f"document-{index}")
            while doc_id in used:
                doc_id += "'"
            used.add(doc_id)
            extra = _source_extra(metadata)
            extra.setdefault("source", extra.get("file_path", DOCUMENT_SOURCE))  # LlamaIndex file readers
            entries.append((doc_id, extra, text))
        for doc_id, label, obj in iter_sources(None, texts, patterns=self.patterns):
            entries.append((f"text-{n_text}", {"source": label}, obj))
            n_text += 1
        return entries

    def triples(self, sources: Any, texts: Iterable[str] | None) -> Iterator[Triple]:
        entries = self._entries(sources, texts)
        extras = {doc_id: extra for doc_id, extra, obj in entries if not isinstance(obj, Triple)}
        max_chars = self.extractor.max_chunk_chars

        def documents() -> Iterator[tuple[str, Iterable[tuple[int, str]]]]:
            for doc_id, _extra, obj in entries:
                if isinstance(obj, Path):
                    yield doc_id, _read_paragraphs(obj, self.encoding, max_chars)
                elif isinstance(obj, str):
                    yield doc_id, ((a, obj[a:b]) for a, b in split_paragraphs(obj, max_chars))

        given = [obj for _d, _e, obj in entries if isinstance(obj, Triple)]
        yield from given
        texts_in = [e for e in entries if not isinstance(e[2], Triple)]
        if not texts_in:
            return
        if self._check_spacy:
            from .._optional import require

            require("spacy", extra="extract", feature="triple extraction from text")
        for t in self.extractor.extract_paragraphs(documents(), batch_size=self.batch_size,
                                                   show_progress=self.show_progress, total=len(texts_in)):
            extra = extras.get(t.extra.get("doc_id"), {"source": TEXT_SOURCE})
            yield Triple(t.name, t.property, t.value, {**extra, **t.extra})

    def knowledge_base(self, sources: Any, texts: Iterable[str] | None, kb: KnowledgeBase | None,
                       on_duplicate: OnDuplicate) -> KnowledgeBase:
        kb = kb if kb is not None else KnowledgeBase(on_duplicate=on_duplicate)
        kb.add_many(self.triples(sources, texts), on_duplicate=on_duplicate)
        return kb


def triples_from_documents(documents: Any, *, extractor: TripleExtractor | None = None, model: str | None = None,
                           nlp: "Language | None" = None, batch_size: int = 32, show_progress: bool = False,
                           encoding: str = "utf-8", patterns: Sequence[str] = DEFAULT_PATTERNS) -> Iterator[Triple]:
    """Triples from documents (and/or paths or texts, see the module docs), extracted with spaCy as needed."""
    src = _TripleSource(extractor, model, nlp, batch_size, show_progress, encoding, patterns)
    return src.triples(documents, None)
