"""Grounded mode's fact sentences: attribute properties and relation-shaped (extracted) ones."""

from __future__ import annotations

import pytest

from kblam_integrations.kb.triple import Triple
from kblam_integrations.model.grounding import fact_sentence, fact_start, grounding_prompt


@pytest.mark.parametrize("triple,sentence", [
    (("Veltrano Dynamics", "founder", "Marisol Okonkwo"), "The founder of Veltrano Dynamics is Marisol Okonkwo."),
    (("Wright Flyer", "year of first flight", "1903"), "The year of first flight of Wright Flyer is 1903."),
    (("Marie Curie", "born in", "Warsaw"), "Marie Curie was born in Warsaw."),
    (("Veltrano Dynamics", "founded by", "Marisol Okonkwo"), "Veltrano Dynamics was founded by Marisol Okonkwo."),
    (("Quillmark Labs", "based in", "Nerovia"), "Quillmark Labs is based in Nerovia."),
    (("Quillmark Labs", "is a", "software company"), "Quillmark Labs is a software company."),
    (("Lisbon", "capital of", "Portugal"), "Lisbon is the capital of Portugal."),
    (("the Harbour Fair", "held on", "3 May"), "The Harbour Fair was held on 3 May."),
    (("Veltrano Dynamics", "builds", "cargo drones"), "The builds of Veltrano Dynamics is cargo drones."),
    (("Rhine", "flows into", "the North Sea"), "The flows into of Rhine is the North Sea."),
    (("X", "motto", "Never spill."), "The motto of X is Never spill."),
])
def test_fact_sentences(triple, sentence):
    assert fact_sentence(Triple(*triple)) == sentence


def test_the_answer_start_is_the_fact_sentence_up_to_its_value():
    for t in [Triple("Marie Curie", "born in", "Warsaw"), Triple("X", "founder", "Y"), Triple("Lisbon", "capital of", "P")]:
        assert fact_sentence(t) == f"{fact_start(t)} {t.value}."


def test_grounding_prompt_lists_the_facts_then_the_question():
    prompt = grounding_prompt("Where was Marie Curie born?", [Triple("Marie Curie", "born in", "Warsaw"),
                                                               Triple("Marie Curie", "field", "physics")])
    assert prompt == ("Facts:\nMarie Curie was born in Warsaw.\nThe field of Marie Curie is physics.\n\n"
                      "Question: Where was Marie Curie born?")


def test_generation_ends_right_after_an_end_string_and_keeps_it():
    """``end`` strings (grounded mode: the fact's value) stop generation and stay in the text;
    ``stop`` strings stop it and are cut off."""
    from tests.conftest import tiny_chat_kblam

    model = tiny_chat_kblam()
    messages = model.messages_for("hello")
    common = dict(max_new_tokens=12, temperature=0.0, streamer=None, top_k_kb=None, seed=None, use_kb_tokens=False)
    free = model._generate(messages, None, stop=None, **common).text
    assert len(free) >= 6
    marker = free[2:5]
    ended = model._generate(messages, None, stop=None, end=[marker], **common).text
    assert ended == free[: free.find(marker) + len(marker)].strip()
    stopped = model._generate(messages, None, stop=[marker], **common).text
    assert stopped == free[: free.find(marker)].strip()


def test_end_strings_are_looked_for_in_the_generated_text_not_in_the_answer_prefix():
    """A value that also occurs in the fact's opening ("Veltrano Dynamics Drone was made by"
    for the value "Veltrano Dynamics") must not cut the answer inside that opening."""
    from tests.conftest import tiny_chat_kblam

    model = tiny_chat_kblam()
    messages = model.messages_for("hello")
    common = dict(max_new_tokens=8, temperature=0.0, streamer=None, top_k_kb=None, seed=None, use_kb_tokens=False,
                  answer_prefix="Zq Zq:")
    free = model._generate(messages, None, stop=None, **common).text
    assert free.startswith("Zq Zq:") and "Zq" not in free[len("Zq Zq:"):]
    assert model._generate(messages, None, stop=None, end=["Zq"], **common).text == free
    assert model._generate(messages, None, stop=["Zq"], **common).text == free
