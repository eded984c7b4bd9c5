"""Document loaders that turn text into KBLaM triples: one document per extracted triple.

* :class:`KBLaMTextLoader` – a LangChain ``BaseLoader`` (``lazy_load`` / ``load``) yielding
  ``langchain_core.documents.Document`` objects.
* :class:`KBLaMReader` – a LlamaIndex ``BaseReader`` (``load_data`` / ``lazy_load_data``)
  returning ``llama_index.core.schema.Document`` objects.

Both also build a :class:`~kblam_integrations.kb.KnowledgeBase` directly
(``load_knowledge_base``).

**Sources.** ``sources`` is one source or a list of them:

* a ``pathlib.Path`` or a ``str`` naming an existing **file** – read as text;
* an existing **directory** – every ``*.txt`` and ``*.md`` file below it, recursively, in
  sorted path order (``patterns=`` changes the globs);
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
``source`` (the file path, or ``"<text>"``), ``sentence``, ``char_start``, ``char_end``
(the sentence's character span in the source text), and its text is
``"the {property} of {name} is {value}"``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, Union

from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document as LCDocument
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document as LIDocument

from ..errors import KBFormatError
from .extraction import TripleExtractor, split_paragraphs
from .knowledge_base import KnowledgeBase, OnDuplicate
from .triple import Triple

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language

__all__ = ["KBLaMReader", "KBLaMTextLoader", "iter_sources", "triple_metadata", "triple_text"]

Source = Union[str, os.PathLike]
DEFAULT_PATTERNS = ("*.txt", "*.md")
TEXT_SOURCE = "<text>"
PROVENANCE_KEYS = ("triple_id", "doc_id", "source", "sentence", "char_start", "char_end")
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


def triple_text(triple: Triple) -> str:
    return f"the {triple.property} of {triple.name} is {triple.value}"


def triple_metadata(triple: Triple) -> dict[str, Any]:
    extra = triple.extra
    return {
        "name": triple.name,
        "property": triple.property,
        "value": triple.value,
        "triple_id": triple.id,
        "doc_id": extra.get("doc_id"),
        "source": extra.get("source"),
        "sentence": extra.get("sentence"),
        "char_start": extra.get("char_start"),
        "char_end": extra.get("char_end"),
    }


class _TripleSource:
    """Shared machinery: sources -> lazily read paragraphs -> extractor -> triples with ``source``."""

    def __init__(self, extractor: TripleExtractor | None, model: str | None, nlp: "Language | None",
                 batch_size: int, show_progress: bool, encoding: str, patterns: Sequence[str]):
        self.extractor = extractor if extractor is not None else TripleExtractor(model, nlp)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self.encoding = encoding
        self.patterns = tuple(patterns)

    def triples(self, sources: Any, texts: Iterable[str] | None) -> Iterator[Triple]:
        entries = list(iter_sources(sources, texts, patterns=self.patterns))  # validate every path up front
        labels = {doc_id: label for doc_id, label, _ in entries}
        max_chars = self.extractor.max_chunk_chars

        def documents() -> Iterator[tuple[str, Iterable[tuple[int, str]]]]:
            for doc_id, _label, obj in entries:
                if isinstance(obj, Path):
                    yield doc_id, _read_paragraphs(obj, self.encoding, max_chars)
                else:
                    yield doc_id, ((a, obj[a:b]) for a, b in split_paragraphs(obj, max_chars))

        for t in self.extractor.extract_paragraphs(documents(), batch_size=self.batch_size,
                                                   show_progress=self.show_progress, total=len(entries)):
            doc_id = t.extra.get("doc_id")
            yield Triple(t.name, t.property, t.value, {**t.extra, "source": labels.get(doc_id, TEXT_SOURCE)})

    def knowledge_base(self, sources: Any, texts: Iterable[str] | None, kb: KnowledgeBase | None,
                       on_duplicate: OnDuplicate) -> KnowledgeBase:
        kb = kb if kb is not None else KnowledgeBase(on_duplicate=on_duplicate)
        kb.add_many(self.triples(sources, texts), on_duplicate=on_duplicate)
        return kb


class KBLaMTextLoader(BaseLoader):
    """LangChain loader: text files, directories or strings → one ``Document`` per triple.

    >>> loader = KBLaMTextLoader(["notes/", "Ada Lovelace was born in London."])  # doctest: +SKIP
    >>> docs = loader.load()
    >>> kb = loader.load_knowledge_base()

    A ``str`` that is not an existing path is extracted as text (see the module docs);
    ``texts=`` passes raw strings explicitly.
    """

    def __init__(self, sources: Source | Iterable[Source] | None = None, extractor: TripleExtractor | None = None, *,
                 texts: Iterable[str] | None = None, model: str | None = None, nlp: "Language | None" = None,
                 batch_size: int = 32, show_progress: bool = False, encoding: str = "utf-8",
                 patterns: Sequence[str] = DEFAULT_PATTERNS):
        self.sources = sources
        self.texts = list(texts) if texts is not None else None
        self._src = _TripleSource(extractor, model, nlp, batch_size, show_progress, encoding, patterns)

    @property
    def extractor(self) -> TripleExtractor:
        return self._src.extractor

    def lazy_triples(self) -> Iterator[Triple]:
        """The extracted triples (``extra`` holds doc_id/source/sentence/char span)."""
        return self._src.triples(self.sources, self.texts)

    def lazy_load(self) -> Iterator[LCDocument]:
        for t in self.lazy_triples():
            yield LCDocument(page_content=triple_text(t), metadata=triple_metadata(t), id=f"{t.extra.get('doc_id')}:{t.id}")

    def load_knowledge_base(self, kb: KnowledgeBase | None = None, *, on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract every source into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        return self._src.knowledge_base(self.sources, self.texts, kb, on_duplicate)


class KBLaMReader(BaseReader):
    """LlamaIndex reader: text files, directories or strings → one ``Document`` per triple.

    >>> docs = KBLaMReader().load_data(["notes/"], texts=["Ada Lovelace was born in London."])  # doctest: +SKIP

    Provenance keys (ids, source, sentence, span) are kept in ``metadata`` but excluded
    from the text that embedding models and LLMs see.
    """

    def __init__(self, extractor: TripleExtractor | None = None, *, model: str | None = None,
                 nlp: "Language | None" = None, batch_size: int = 32, show_progress: bool = False,
                 encoding: str = "utf-8", patterns: Sequence[str] = DEFAULT_PATTERNS):
        self._src = _TripleSource(extractor, model, nlp, batch_size, show_progress, encoding, patterns)

    @property
    def extractor(self) -> TripleExtractor:
        return self._src.extractor

    def lazy_load_data(self, sources: Source | Iterable[Source] | None = None, *,  # type: ignore[override]
                       texts: Iterable[str] | None = None) -> Iterator[LIDocument]:
        for t in self._src.triples(sources, texts):
            yield LIDocument(
                text=triple_text(t),
                metadata=triple_metadata(t),
                id_=f"{t.extra.get('doc_id')}:{t.id}",
                excluded_embed_metadata_keys=list(PROVENANCE_KEYS),
                excluded_llm_metadata_keys=list(PROVENANCE_KEYS),
            )

    def load_data(self, sources: Source | Iterable[Source] | None = None, *,  # type: ignore[override]
                  texts: Iterable[str] | None = None) -> list[LIDocument]:
        return list(self.lazy_load_data(sources, texts=texts))

    def load_knowledge_base(self, sources: Source | Iterable[Source] | None = None, *, texts: Iterable[str] | None = None,
                            kb: KnowledgeBase | None = None, on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract every source into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        return self._src.knowledge_base(sources, texts, kb, on_duplicate)
