"""Offline synthetic knowledge bases and question/answer pairs for training and evaluating KBLaM.

Everything here is pure Python and seeded: no remote model, no network, no file reads.

* Entities of six types (organisation, person, place, product, project, event) get
  realistic, varied names composed from word lists and syllables ("Veltrano Dynamics",
  "Marisol Okonkwo-Hart", "Port Alvessa", "Quillmark X2", "Project Tessaline",
  "the Hollow Creek Summit"), with near-duplicate names rejected so that key texts
  ("the founder of Veltrano Dynamics") stay distinguishable for a sentence encoder.
* Each type has its own properties (description, purpose, objectives, founder,
  location, founding year, members, product, occupation, population, price, date, ...)
  whose values vary in length and style: names, numbers, dates, phrases, sentences.
* Questions come in four kinds: ``simple`` (many paraphrases per property, natural
  answers containing the value verbatim), ``multi`` (two or three triples in one
  question), ``open`` ("What do you know about ...") and ``unanswerable`` (the entity
  or the property is not in the KB; the answer is exactly :data:`REFUSAL`).
* The train and validation splits are disjoint in entity names *and* value vocabulary:
  every content token (a word from the lists, a coined word, a number) belongs to one
  split through a fixed seeded hash (:func:`token_split`); only the template words in
  :data:`SHARED_VOCABULARY` (function words, name affixes such as "Dynamics" or "Port",
  months, units, numbers up to 31) occur in both.

The package, by job: :mod:`.schema` (entity types, properties, question kinds),
:mod:`.frames` (the fixed words of names and values), :mod:`.vocabulary` (tokens and
the split partition), :mod:`.names` (name builders), :mod:`.entities` (the random stream
and the values it draws), :mod:`.templates` and :mod:`.aliases` (question/answer wording),
:mod:`.generator` (KBs and questions) and :mod:`.eval_file` (evaluation files).
"""

from __future__ import annotations

from .aliases import _ALIAS_RELATIONS, PROPERTY_ALIASES
from .eval_file import write_eval_file
from .generator import QAExample, SyntheticKBGenerator
from .schema import DEFAULT_MIX, ENTITY_TYPES, EVAL_MIX, KINDS, PROPERTIES, REFUSAL, SPLITS
from .vocabulary import PARTITION_SEED, SHARED_VOCABULARY, VALIDATION_FRACTION, token_split, tokenize

__all__ = [
    "DEFAULT_MIX", "ENTITY_TYPES", "EVAL_MIX", "KINDS", "PARTITION_SEED", "PROPERTIES", "PROPERTY_ALIASES",
    "QAExample", "REFUSAL", "SHARED_VOCABULARY", "SPLITS", "SyntheticKBGenerator", "VALIDATION_FRACTION",
    "token_split", "tokenize", "write_eval_file",
]
# _ALIAS_RELATIONS is imported for the tests, which check the relation aliases on their own.
