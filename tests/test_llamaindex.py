"""LlamaIndex integration: KBLaMLlamaIndexLLM and KBLaMQueryEngine (tiny model fast, real SmolLM2 slow)."""

from __future__ import annotations

import asyncio

import pytest
from llama_index.core import Settings
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, MessageRole, TextBlock
from llama_index.core.base.response.schema import Response
from llama_index.core.prompts import PromptTemplate
from llama_index.core.schema import Document, NodeWithScore, QueryBundle, TextNode

from kblam_integrations.errors import ConfigError, KBFormatError, KBValidationError, ModelNotFoundError
from kblam_integrations.integrations.langchain import KBLaMLLM
from kblam_integrations.integrations.llamaindex import KBLaMLlamaIndexLLM, KBLaMQueryEngine
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.model.grounding import fact_sentence

from .test_langchain import TRIPLES, counting_loader, tiny  # noqa: F401 - fixtures

QUESTION = "Who founded Veltrano Dynamics?"


def test_complete_and_stream_complete(tiny):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLlamaIndexLLM(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=6, top_k_attention=2)
    r = llm.complete(QUESTION)
    info = r.additional_kwargs
    assert isinstance(r.text, str) and info["kb_version"] == kb.version and info["kb_size"] == 3
    assert len(info["kb_attention"]) == 2 and info["kb_attention"][0]["score"] >= info["kb_attention"][1]["score"]
    assert 0 < info["completion_tokens"] <= 6
    assert info["total_tokens"] == info["prompt_tokens"] + info["completion_tokens"]
    pieces = list(llm.stream_complete(QUESTION))
    assert "".join(p.delta for p in pieces) == r.text == pieces[-1].text
    assert pieces[-1].additional_kwargs["kb_size"] == 3


def test_chat_uses_the_chat_template_and_streams(tiny, monkeypatch):
    seen = []
    original = type(tiny).generate

    def spy(self, prompt_or_messages, *args, **kwargs):
        seen.append(list(prompt_or_messages))
        return original(self, prompt_or_messages, *args, **kwargs)

    monkeypatch.setattr(type(tiny), "generate", spy)
    llm = KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=4)
    messages = [ChatMessage(role=MessageRole.SYSTEM, content="sys"), ChatMessage(role=MessageRole.USER, content="q1"),
                ChatMessage(role=MessageRole.ASSISTANT, content="a1"),
                ChatMessage(role=MessageRole.USER, blocks=[TextBlock(text="q"), TextBlock(text="2")])]
    r = llm.chat(messages)
    assert seen[-1] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    assert r.message.role == MessageRole.ASSISTANT and r.additional_kwargs["mode"] == "kblam"
    streamed = list(llm.stream_chat(messages))
    assert "".join(s.delta for s in streamed) == r.message.content == streamed[-1].message.content
    KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2, system_prompt="Be brief.").complete("hi")
    assert seen[-1][0] == {"role": "system", "content": "Be brief."}


def test_async_variants(tiny):
    llm = KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=4)
    text = llm.complete("hi").text
    chat_text = llm.chat([ChatMessage(role="user", content="hi")]).message.content

    async def run():
        a = await llm.acomplete("hi")
        b = [p.delta async for p in await llm.astream_complete("hi")]
        c = await llm.achat([ChatMessage(role="user", content="hi")])
        d = [p.delta async for p in await llm.astream_chat([ChatMessage(role="user", content="hi")])]
        return a.text, "".join(b), c.message.content, "".join(d)

    assert asyncio.run(run()) == (text, text, chat_text, chat_text)


def test_metadata_and_settings_llm(tiny):
    llm = KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=3)
    meta = llm.metadata
    assert meta.context_window == tiny.backbone.config.max_position_embeddings
    assert meta.num_output == 3 and meta.is_chat_model and not meta.is_function_calling_model
    saved = Settings._llm
    try:
        Settings.llm = llm
        assert Settings.llm is llm
        out = Settings.llm.predict(PromptTemplate("Answer briefly: {question}"), question=QUESTION)
        assert isinstance(out, str)
    finally:
        Settings._llm = saved


def test_query_engine_sources_are_the_attended_triples(tiny):
    kb = KnowledgeBase(TRIPLES)
    engine = KBLaMQueryEngine(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=4, top_k_attention=3)
    response = engine.query(QUESTION)
    assert isinstance(response, Response) and isinstance(response.response, str)
    texts = {fact_sentence(Triple(*t)) for t in TRIPLES}  # "The founder of Veltrano Dynamics is Marisol Okonkwo."
    assert len(response.source_nodes) == 3
    scores = [s.score for s in response.source_nodes]
    assert scores == sorted(scores, reverse=True)
    for s in response.source_nodes:
        assert isinstance(s, NodeWithScore) and isinstance(s.node, TextNode)
        md = s.node.metadata
        assert s.node.text in texts and s.node.text == fact_sentence(Triple(md["name"], md["property"], md["value"]))
        assert md["triple_id"] == Triple(md["name"], md["property"], md["value"]).id == s.node.node_id
        assert md["kb_version"] == kb.version
    assert response.metadata["kb_version"] == kb.version and response.metadata["kb_size"] == 3
    # live: the next query sees a new triple without rebuilding the engine
    kb.add("Ada Lovelace", "born in", "London")
    again = KBLaMQueryEngine(llm=engine.llm, top_k_attention=10).query(QUESTION)
    assert "Ada Lovelace was born in London." in {s.node.text for s in again.source_nodes}
    assert again.metadata["kb_size"] == 4
    # retrieval only, and async
    top = engine.retrieve(QueryBundle(QUESTION))
    assert len(top) == 3 and all(s.node.text in texts | {"Ada Lovelace was born in London."} for s in top)
    assert asyncio.run(engine.aquery(QUESTION)).metadata["kb_size"] == 4


def test_from_documents_without_spacy(tiny, tmp_path):
    docs = [Document(text="the founder of Veltrano Dynamics is Marisol Okonkwo",
                     metadata={"name": "Veltrano Dynamics", "property": "founder", "value": "Marisol Okonkwo",
                               "source": "notes.txt"})]
    engine = KBLaMQueryEngine.from_documents(
        docs + [KnowledgeBase([TRIPLES[1]]), TRIPLES[2]], kblam_model=tiny, mode="kblam", max_new_tokens=2, top_k_attention=5)
    kb = engine.knowledge_base
    assert {(t.name, t.property, t.value) for t in kb} == set(TRIPLES)
    assert kb.get(Triple(*TRIPLES[0]).id).extra["source"] == "notes.txt"
    assert len(engine.query(QUESTION).source_nodes) == 3
    # a single encoded KB file is used directly (no re-encoding)
    path = tiny.kb_manager(KnowledgeBase(TRIPLES)).save(tmp_path / "kb.safetensors")
    before = tiny.encoder.triples_encoded
    engine = KBLaMQueryEngine.from_documents(path, kblam_model=tiny, mode="kblam", max_new_tokens=2)
    assert engine.query(QUESTION).metadata["kb_size"] == 3 and tiny.encoder.triples_encoded == before


def test_models_are_shared_across_frameworks(counting_loader):
    a = KBLaMLlamaIndexLLM(kb=TRIPLES)
    b = KBLaMQueryEngine(kb=TRIPLES)
    c = KBLaMLLM(kb=TRIPLES)
    assert counting_loader == []
    assert a.load_model() is b.llm.load_model() is c.load_model()
    assert len(counting_loader) == 1


def test_bad_inputs_are_typed_errors(counting_loader, tmp_path):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLlamaIndexLLM(kb=kb, max_new_tokens=2)
    with pytest.raises(KBValidationError):
        llm.chat([])
    with pytest.raises(KBValidationError):
        llm.chat([ChatMessage(role=MessageRole.USER, blocks=[ImageBlock(url="http://example.org/x.png")])])
    with pytest.raises(KBValidationError):
        llm.chat([ChatMessage(role=MessageRole.TOOL, content="3")])
    with pytest.raises(KBValidationError):
        llm.stream_chat([])
    assert counting_loader == [] and kb.version == 1  # nothing loaded, KB untouched
    with pytest.raises(KBFormatError):
        KBLaMLlamaIndexLLM(kb=tmp_path / "missing.jsonl")
    with pytest.raises(KBFormatError):
        KBLaMQueryEngine.from_documents(tmp_path / "missing.json")
    (tmp_path / "bad.safetensors").write_text("not safetensors")
    with pytest.raises(KBFormatError):
        KBLaMQueryEngine(kb=tmp_path / "bad.safetensors")
    with pytest.raises(ModelNotFoundError):
        KBLaMLlamaIndexLLM(kb=TRIPLES, model_path=str(tmp_path / "nope"))
    with pytest.raises(ConfigError):
        KBLaMLlamaIndexLLM(kb=TRIPLES, mode="rag")
    with pytest.raises(ConfigError):
        KBLaMQueryEngine(kb=TRIPLES, llm=llm)
    with pytest.raises(ConfigError, match="unknown"):
        llm.complete("hi", max_new_token=3)
    with pytest.raises(KBValidationError):
        KBLaMQueryEngine.from_documents([object()])


# ------------------------------------------------------------------ real model
@pytest.mark.slow
def test_real_query_engine_end_to_end():
    kb = KnowledgeBase(TRIPLES)
    engine = KBLaMQueryEngine(kb=kb, mode="kblam", max_new_tokens=12, top_k_attention=3)
    response = engine.query(QUESTION)
    assert isinstance(response.response, str) and response.response
    sources = [(s.node.metadata["name"], s.node.metadata["property"], s.node.metadata["value"])
               for s in response.source_nodes]
    assert sorted(sources) == sorted(TRIPLES)  # every triple, ranked by attention
    assert all(0.0 <= s.score <= 1.0 for s in response.source_nodes)
    assert response.metadata["kb_version"] == kb.version
    grounded = KBLaMQueryEngine(kb=kb, mode="grounded", grounded_k=2, max_new_tokens=12).query(QUESTION)
    assert grounded.metadata["mode"] == "grounded" and len(grounded.source_nodes) <= 2


@pytest.mark.slow
def test_real_from_documents_through_the_spacy_reader(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Veltrano Dynamics was founded by Marisol Okonkwo in 2011.\n\n"
                     "The company is headquartered in Port Alvessa.\n")
    engine = KBLaMQueryEngine.from_documents([notes], mode="kblam", max_new_tokens=8, top_k_attention=10)
    kb = engine.knowledge_base
    assert len(kb) >= 2 and any(t.name == "Veltrano Dynamics" for t in kb)
    assert all(t.extra.get("source") == str(notes) for t in kb)
    response = engine.query(QUESTION)
    assert {s.node.metadata["triple_id"] for s in response.source_nodes} == {t.id for t in kb}
