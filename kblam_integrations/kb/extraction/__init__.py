"""Rule-based ``(name, property, value)`` extraction from text with a spaCy dependency parse.

No LLM is involved: every triple comes from a rule over the dependency tree of one
sentence (plus a small per-document memory for pronouns). The rules, in the order a
sentence is read:

* **subject–verb–object** – ``nsubj VERB dobj`` → ``(subject, verb, object)``; the verb is
  kept as written, lowercased, with its particle (``"set up"``).
* **prepositional objects** – every ``prep``/``agent`` child of a verb with a ``pobj`` →
  ``(subject, "verb prep", pobj)``: ``"born in"``, ``"flows through"``, ``"founded by"``
  (passives keep the participle only). Prepositions hanging off a date or a proper noun
  (``"born on 6 July 1907 in Coyoacán"``) are lifted to the verb.
* **copula** – ``X is a Y`` → ``(X, "is a", Y)``; a definite or superlative attribute with a
  prepositional phrase, ``X is the highest Y in Z`` / ``X is the capital of Z`` →
  ``(X, "highest Y in", Z)`` / ``(X, "capital of", Z)``; ``X is in Z`` → ``(X, "located in", Z)``;
  ``X is married to Z`` → ``(X, "married to", Z)``; measures ``X is 330 metres tall`` →
  ``(X, "height", "330 metres")``.
* **possessives** – ``Y's N is Z`` / ``Her N was Z`` / ``The N of Y is Z`` / ``Z is Y's N`` →
  ``(Y, N, Z)``; ``Y has 450 employees`` → ``(Y, "number of employees", "450")``;
  ``Y has a population of N`` → ``(Y, "population", N)``.
* **appositives** – ``X, a Y, ...`` → ``(X, "is a", Y)``; ``X, the N of Z, ...`` →
  ``(X, "N of", Z)``; ``Y's N, Z, ...`` → ``(Y, N, Z)``.
* **conjunctions** – conjoined subjects, objects, prepositional objects and verbs each
  yield their own triple (``"flows through A, B and C"`` → three triples).
* **relative clauses and participles** – ``X, which is ...`` / ``X, born in Y, ...`` attach
  to ``X``.
* **pronouns** – *he/she/it/they*, possessive *his/her/its/their*, and definite
  descriptions such as *the company* / *the bank* resolve to the last named subject of
  the same document (across paragraphs, never across documents). *he/she* prefer a
  PERSON whose gender is unknown or matches (gender is learnt from earlier pronouns and
  from gendered relations such as *her husband, Pierre Curie*), *it* / *the company* a
  non-person; *the bank* also matches a subject whose name ends in *Bank* or that was
  said to be *a bank*.
* **misparse fallbacks** – ``en_core_web_sm`` sometimes tags a 3rd-person verb as a plural
  noun (*The Mekong River originates in ...*, *Brazil exports coffee to ...*); these
  shapes are read as verbs.

Not extracted: negated, modal (*may*, *could*, ...), infinitival, conditional (*if*) and
interrogative clauses; first/second-person subjects (*my brother*); bare plural generic
subjects (*Analysts expect ...*); and facts about an unnamed common noun (*the ministry*)
whose value names nothing (no proper noun, no number). Names and values lose their
leading article; properties are lowercase phrases. Candidates that become empty, that
are bare pronouns, or whose name equals the value are dropped, and a rule that trips
on an odd parse only loses its sentence — :meth:`TripleExtractor.extract` never raises
on any ``str``.

Each triple carries its provenance in ``Triple.extra``: ``doc_id``, ``sentence`` and the
sentence's character span ``char_start``/``char_end`` within the document.

The package, by job: :mod:`.pipeline` (the shared spaCy pipeline), :mod:`.vocabulary`
(the word lists the rules consult), :mod:`.doc_state` (the per-document memory for
pronouns), :mod:`.tree` (dependency-tree and phrase helpers), :mod:`.rules` (the rules
over one sentence), :mod:`.text_prep` (paragraph chunking and markup clean-up) and
:mod:`.extractor` (:class:`TripleExtractor`, which streams documents through them).
"""

from __future__ import annotations

from .extractor import TripleExtractor
from .pipeline import _NLP_CACHE, load_spacy_pipeline
from .text_prep import language_warning, split_paragraphs, strip_html

__all__ = ["TripleExtractor", "language_warning", "load_spacy_pipeline", "split_paragraphs", "strip_html"]
# _NLP_CACHE is imported for the tests, which check that extractors share one pipeline.
