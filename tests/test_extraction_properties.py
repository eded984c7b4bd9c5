"""Property test: the extractor never raises on arbitrary unicode text."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kblam_integrations.kb import Triple
from kblam_integrations.kb.extraction import TripleExtractor

_EXTRACTOR = TripleExtractor()

WORDS = ["Alan", "Turing", "Paris", "is", "was", "the", "a", "of", "in", "by", "born", "founded", "capital",
         "She", "It", "Its", "her", "The", "company", "and", ",", ".", "'s", "1912", "not", "?", "\n\n", "😀"]


def _check(text: str) -> None:
    triples = _EXTRACTOR.extract(text)
    assert isinstance(triples, list)
    for t in triples:
        assert isinstance(t, Triple)
        assert t.name.strip() and t.property.strip() and t.value.strip()
        t.id  # hashable content id (valid UTF-8)
        start, end = t.extra["char_start"], t.extra["char_end"]
        assert 0 <= start <= end <= len(text)
        assert text[start:end] == t.extra["sentence"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_unicode_never_raises(text):
    _check(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(WORDS), max_size=40).map(" ".join))
def test_sentence_like_word_salad_never_raises(text):
    _check(text)


@pytest.mark.parametrize("text", [
    "", " ", "\n\n\n", "\t\r\n", "\x00\x01\x02\x1b[31m", "😀" * 200, "\u202e\u200b\ufeff", ". , ; : ! ?",
    "A" * 50_000, "Paris. " * 2_000, "is is is of of the the", "He she it. Its her his.",
])
def test_edge_cases_never_raise(text):
    _check(text)


def test_lone_surrogates_are_replaced_not_raised():
    triples = _EXTRACTOR.extract("Alan Turing was born in London\ud800.")
    for t in triples:
        t.id  # would raise UnicodeEncodeError if a surrogate survived
