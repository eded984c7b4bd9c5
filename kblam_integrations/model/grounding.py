"""Grounded mode's text: the prompt that lists the attended facts as sentences.

A fact is written as the sentence its answer starts with, so the answer continues the
best fact's own sentence: a 135M backbone copies a value far more reliably from an
exactly matching prefix than from a "property: value" list. The sentences themselves
(:func:`fact_sentence`, :func:`fact_start`) are pure text about a triple and live in
:mod:`kblam_integrations.kb.sentences`.
"""

from __future__ import annotations

from typing import Sequence

from ..kb.sentences import fact_sentence, fact_start  # noqa: F401 - re-exported for the model and integrations
from ..kb.triple import Triple


def grounding_prompt(question: str, triples: Sequence[Triple]) -> str:
    """Grounded mode's user turn: the attended facts as sentences, then the question."""
    facts = "\n".join(fact_sentence(t) for t in triples)
    return f"Facts:\n{facts}\n\nQuestion: {question}"
