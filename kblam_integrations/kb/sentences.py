"""A triple written as a sentence: "The founder of X is Y.", "X was born in Y.", "X is a Y."

A fact is written as the sentence its answer starts with, so the answer continues the
best fact's own sentence: a 135M backbone copies a value far more reliably from an
exactly matching prefix than from a "property: value" list.

Properties come in two shapes. Synthetic and hand-made KBs name an attribute ("founder",
"year of first flight"): "The founder of X is Y." Extracted KBs often name a relation the
way the text states it ("is a", "born in", "founded by"), and "The born in of X is Y."
reads badly enough that the model copies the broken grammar into its answer. Three shapes
of relation are recognised with no parser: a leading copula ("is a" -> "X is a Y."), a
participle followed by a preposition ("born in" -> "X was born in Y.") and a noun
followed by "of" ("capital of" -> "X is the capital of Y."). Every other property keeps
the attribute sentence.

Grounded mode writes facts this way (:mod:`kblam_integrations.model.grounding`), and the
loaders use the same sentence as a document's text.
"""

from __future__ import annotations

from .triple import Triple

__all__ = ["fact_sentence", "fact_start"]

_COPULAS = frozenset({"is", "are", "was", "were", "has", "have", "had"})
_PREPOSITIONS = frozenset({"in", "on", "at", "by", "of", "from", "for", "into", "to", "with", "as", "near", "under"})
# Irregular past participles that head a passive relation ("born in", "made of").
_IRREGULAR_PARTICIPLES = frozenset({"born", "made", "built", "known", "held", "led", "run", "written", "drawn",
                                    "sold", "owned", "shown", "set", "given", "taken", "seen", "grown", "begun"})
# Participles that describe a lasting state: "X is located in Y", not "X was located in Y".
_STATIVE = frozenset({"located", "based", "headquartered", "situated", "known", "made", "set", "housed", "named",
                      "composed", "owned"})


def _relation_start(triple: Triple) -> str | None:
    """The opening words of a relation-shaped fact ("Marie Curie was born in"), else None."""
    words = triple.property.split()
    if not words:
        return None
    first, last = words[0].lower(), words[-1].lower()
    if first in _COPULAS:
        return f"{triple.name} {triple.property}"
    participle = first.endswith("ed") or first in _IRREGULAR_PARTICIPLES
    if len(words) == 2 and participle and last in _PREPOSITIONS:
        aux = "is" if first in _STATIVE else "was"
        return f"{triple.name} {aux} {triple.property}"
    if len(words) >= 2 and last == "of" and not participle and not first.endswith("s"):
        return f"{triple.name} is the {triple.property}"  # "capital of" -> "Lisbon is the capital of"
    return None


def fact_start(triple: Triple) -> str:
    """The words a grounded answer starts with: the fact's sentence up to its value."""
    start = _relation_start(triple)
    if start is None:
        key = triple.key_text
        start = f"{key[:1].upper()}{key[1:]} is"
    return start[:1].upper() + start[1:]


def fact_sentence(triple: Triple) -> str:
    """"The founder of X is Y." / "X was born in Y." / "X is a Y."."""
    return f"{fact_start(triple)} {triple.value.rstrip('.')}."
