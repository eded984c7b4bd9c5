"""Text before parsing: paragraph chunks of bounded size, lone surrogates and HTML markup blanked
with every character offset kept, and a warning for text that is not English."""

from __future__ import annotations

import re
from typing import Iterator

from .vocabulary import _MAX_CHUNK_CHARS

_PARA_SPLIT = re.compile(r"\n[ \t\r\f\v]*\n")


def split_paragraphs(text: str, max_chars: int = _MAX_CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` spans of non-blank paragraphs, none longer than ``max_chars``.

    Over-long paragraphs are cut after the last sentence end (``. ``/``! ``/``? ``)
    before the limit, else at the last whitespace, else hard.
    """
    pos = 0
    for m in _PARA_SPLIT.finditer(text):
        yield from _split_long(text, pos, m.start(), max_chars)
        pos = m.end()
    yield from _split_long(text, pos, len(text), max_chars)


def _split_long(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > max_chars:
        window = text[start:start + max_chars]
        cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "), window.rfind("\n"))
        if cut < max_chars // 4:
            cut = window.rfind(" ")
        cut = start + (cut + 1 if cut >= max_chars // 4 else max_chars)
        if text[start:cut].strip():
            yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        yield start, end


def _sanitise(text: str) -> str:
    """Replace lone surrogates and blank out HTML markup, keeping every character offset
    (provenance spans point into the original text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(ch if not 0xD800 <= ord(ch) <= 0xDFFF else "\ufffd" for ch in text)
    return strip_html(text)


# Markup that must not end up inside names or values: comments, script/style bodies, tags.
_HTML_BLOCK = re.compile(r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<![A-Za-z][^<>]*>")
_HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def strip_html(text: str) -> str:
    """Replace HTML tags, comments, ``<script>``/``<style>`` bodies and entities by spaces of
    the same length (entities: the character, then spaces), so that offsets are unchanged.

    Plain text without ``<``/``&`` is returned as is.
    """
    if "<" not in text and "&" not in text:
        return text
    import html

    blank = lambda m: " " * (m.end() - m.start())  # noqa: E731
    text = _HTML_BLOCK.sub(blank, text)
    text = _HTML_TAG.sub(blank, text)

    def entity(m: re.Match[str]) -> str:
        ch = html.unescape(m.group())
        return m.group() if ch == m.group() or len(ch) != 1 else ch + " " * (len(m.group()) - 1)

    return _HTML_ENTITY.sub(entity, text)


def language_warning(text: str) -> str | None:
    """A warning when ``text`` is mostly not Latin-script: the spaCy pipeline and the
    extraction rules are English-only, so such text yields no triples, silently."""
    sample = text[:20000]
    letters = [ch for ch in sample if ch.isalpha()]
    if len(letters) < 20:
        return None
    latin = sum(1 for ch in letters if ch.isascii() or "\u00c0" <= ch <= "\u024f")
    if latin / len(letters) < 0.5:
        return ("the text is mostly not in Latin script; the extractor understands English only and "
                "found no triples in it")
    words = re.findall(r"[^\W\d_]+", sample.lower())
    if len(words) >= 8 and sum(w in _ENGLISH_FUNCTION_WORDS for w in words) / len(words) < 0.05:
        return "the text does not look like English; the extractor understands English only and found no triples in it"
    return None


_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an of in on at to is was are were be been by and or for with from as that this it its his her "
    "their has have had which who".split())

