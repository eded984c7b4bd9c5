"""Conversations: dialogues, follow-up resolution, two-fact answers, non-KB turns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kblam_integrations.errors import KBFormatError
from kblam_integrations.model.prompting import names_no_entity as _names_no_entity
from kblam_integrations.training.dialogues import DialogueGenerator, load_dialogue_file, write_dialogue_file

from .conftest import tiny_chat_kblam

DATA = Path(__file__).parent / "data"
CHAT = [{"role": "user", "content": "Who founded Quorvex?"},
        {"role": "assistant", "content": "Quorvex was founded by Idris Halvorsen."}]


def test_dialogues_are_deterministic_and_cover_every_kind(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    write_dialogue_file(a, 40, 12, 3, seed=5)
    write_dialogue_file(b, 40, 12, 3, seed=5)
    assert a.read_text() == b.read_text()
    triples, dialogues = load_dialogue_file(a)
    kinds = [t.kind for d in dialogues for t in d.turns]
    assert {"pronoun", "ellipsis", "switch_back", "absent", "two_fact"} <= set(kinds)
    index = {(t.name, t.property): t.value for t in triples}
    for d in dialogues:
        for t in d.turns:
            if t.values is None:  # absent: the asked property is not in the KB
                assert all(a not in index for a in t.asked)
            else:
                assert [index[a] for a in t.asked] == t.values
    msgs = next(d for d in dialogues if d.turns[0].kind == "first").messages(1)
    assert [m["role"] for m in msgs] == ["user", "assistant", "user"]


def test_dialogue_names_come_from_the_requested_split():
    from kblam_integrations.training.synthetic import SyntheticKBGenerator

    kb, _ = DialogueGenerator("validation", 3).make(20, 4, 1)
    train_names = {t.name for t in SyntheticKBGenerator("train", 3).make_kb(200)}
    assert not {t.name for t in kb} & train_names


def test_bad_dialogue_files_get_typed_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"triples": [], "dialogues": [{"turns": [{"user": "", "values": None}]}]}))
    with pytest.raises(KBFormatError, match="user"):
        load_dialogue_file(bad)
    bad.write_text(json.dumps({"triples": [], "dialogues": [{"turns": [{"user": "hi", "values": [1]}]}]}))
    with pytest.raises(KBFormatError, match="values"):
        load_dialogue_file(bad)
    with pytest.raises(KBFormatError, match="not found"):
        load_dialogue_file(tmp_path / "missing.json")


def test_follow_ups_are_recognised_and_resolved():
    assert _names_no_entity("And its budget?") and _names_no_entity("What about the venue?")
    assert not _names_no_entity("Who founded Quorvex?") and not _names_no_entity("Going back to Quorvex, its CEO?")
    model = tiny_chat_kblam()
    assert model.resolved_question([*CHAT, {"role": "user", "content": "And its budget?"}], "Quorvex") == \
        "And Quorvex's budget?"
    assert model.resolved_question([*CHAT, {"role": "user", "content": "What about the venue?"}], "Quorvex") == \
        "What about the venue of Quorvex?"
    # an entity the conversation never named, or a single question: unchanged
    assert model.resolved_question([*CHAT, {"role": "user", "content": "And its budget?"}], "Zorblax") == \
        "And its budget?"
    assert model.resolved_question("And its budget?", "Quorvex") == "And its budget?"


def test_history_weighs_less_than_the_last_turn_and_a_single_question_is_unchanged():
    model = tiny_chat_kblam()
    assert model._history_weights("Who founded Quorvex?", 10) is None
    msgs = [*CHAT, {"role": "user", "content": "And its budget?"}]
    n = int(model.prompt_ids(msgs).shape[1])
    w = model._history_weights(msgs, n)[0]
    system = model._template_length(model.messages_for(msgs)[:1])
    last = model._template_length(model.messages_for(msgs)[:-1])
    assert torch.all(w[:system] == 1) and torch.all(w[last:] == 1)
    assert torch.all(w[system:last] == model.config.history_weight)


@pytest.mark.slow
def test_shipped_model_follows_up_answers_two_facts_and_chats():
    from kblam_integrations import KnowledgeBase
    from kblam_integrations.integrations.langchain import KBLaMLLM

    kb = KnowledgeBase([("Quorvex", "founder", "Idris Halvorsen"), ("Quorvex", "headquarters", "Nerovia"),
                        ("Veltrano Dynamics", "founder", "Marisol Okonkwo"), ("Castellan Bio", "headquarters", "Vienna")])
    llm = KBLaMLLM(kb=kb, max_new_tokens=40)  # defaults: grounded mode, non-KB turns answered
    follow = llm.invoke([("human", "Who founded Quorvex?"), ("ai", "Quorvex was founded by Idris Halvorsen."),
                         ("human", "Where is it headquartered?")])
    assert "Nerovia" in follow.content
    assert follow.response_metadata["kb_attention"][0]["property"] == "headquarters"
    both = llm.invoke("Who founded Quorvex and where is it headquartered?").content
    assert "Idris Halvorsen" in both and "Nerovia" in both
    assert "cannot find" in llm.invoke("Who founded Zorblax Industries?").content
    non_kb = json.loads((DATA / "non_kb_turns_heldout.json").read_text())["turns"][:8]
    answered = [t for t in non_kb if "cannot find" not in llm.invoke(t).content]
    assert len(answered) >= 6, answered
