"""LangChain integration: KBLaMLLM on a tiny random model (fast) and on the real SmolLM2 stack (slow)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest
import torch
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from kblam_integrations.errors import ConfigError, KBFormatError, KBValidationError, ModelNotFoundError
from kblam_integrations.integrations import model_cache
from kblam_integrations.integrations.langchain import KBLaMLLM, messages_to_dicts
from kblam_integrations.kb import KnowledgeBase, Triple

from .conftest import tiny_chat_kblam, tiny_kblam  # noqa: F401

TRIPLES = [
    ("Veltrano Dynamics", "founder", "Marisol Okonkwo"),
    ("Veltrano Dynamics", "location", "Port Alvessa"),
    ("Quillmark X2", "price", "42 dollars"),
]


# ----------------------------------------------------------------- tiny model
@pytest.fixture(scope="module")
def tiny():
    return tiny_chat_kblam()


@pytest.fixture
def counting_loader(monkeypatch, tiny):
    """Replace the real loader: counts loads, returns a fresh tiny model per spec, empty cache."""
    calls = []

    def fake_load(spec):
        calls.append(spec)
        return tiny if len(calls) == 1 else tiny_chat_kblam()

    monkeypatch.setattr(model_cache, "_load", fake_load)
    saved = dict(model_cache._CACHE)
    model_cache.clear_model_cache()
    yield calls
    model_cache.clear_model_cache()
    model_cache._CACHE.update(saved)


class TokenRecorder(BaseCallbackHandler):
    def __init__(self):
        self.tokens: list[str] = []

    def on_llm_new_token(self, token, **kwargs):
        self.tokens.append(token)


def test_invoke_returns_text_usage_and_attended_triples(tiny):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLLM(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=6, top_k_attention=2)
    msg = llm.invoke("Who founded Veltrano Dynamics?")
    assert isinstance(msg, AIMessage) and isinstance(msg.content, str)
    usage = msg.usage_metadata
    assert usage["input_tokens"] > 0 and 0 < usage["output_tokens"] <= 6
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    meta = msg.response_metadata
    assert meta["mode"] == "kblam" and meta["kb_version"] == kb.version and meta["kb_size"] == 3
    assert meta["model_name"] == llm.model_name
    att = meta["kb_attention"]
    assert len(att) == 2 and att[0]["score"] >= att[1]["score"]
    ids = {Triple(*t).id: t for t in TRIPLES}
    for a in att:
        assert set(a) == {"name", "property", "value", "triple_id", "score"}
        assert ids[a["triple_id"]] == (a["name"], a["property"], a["value"])


def test_no_kb_is_exactly_the_backbone(tiny):
    llm = KBLaMLLM(kb=None, kblam_model=tiny, mode="kblam", max_new_tokens=5)
    msg = llm.invoke("Name a colour.")
    assert msg.content == tiny.generate("Name a colour.", kb=None, max_new_tokens=5).text
    assert msg.response_metadata["kb_attention"] == [] and msg.response_metadata["kb_version"] is None


def test_stream_adds_up_to_invoke_and_reports_tokens_to_callbacks(tiny):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=10)
    text = llm.invoke("Hello").content
    recorder = TokenRecorder()
    chunks = list(llm.stream("Hello", config={"callbacks": [recorder]}))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert chunks[-1].chunk_position == "last"
    full = chunks[0]
    for c in chunks[1:]:
        full = full + c
    assert full.content == text
    assert "".join(recorder.tokens) == text
    assert full.usage_metadata["output_tokens"] > 0
    assert full.response_metadata["kb_size"] == 3 and len(full.response_metadata["kb_attention"]) == 3
    # streaming=True routes invoke through the token stream as well
    streaming = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=10, streaming=True)
    recorder2 = TokenRecorder()
    assert streaming.invoke("Hello", config={"callbacks": [recorder2]}).content == text
    assert "".join(recorder2.tokens) == text


def test_stop_strings_cut_invoke_and_stream_alike(tiny):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=12)
    full = llm.invoke("Tell me something").content
    assert len(full) >= 6
    stop = full[4:6]
    cut = llm.invoke("Tell me something", stop=[stop]).content
    assert stop not in cut and full.startswith(cut)
    streamed = "".join(c.content for c in llm.stream("Tell me something", stop=[stop]))
    assert streamed == cut
    preset = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=12, stop=[stop])
    assert preset.invoke("Tell me something").content == cut


def test_batch_async_and_lcel(tiny):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=4)
    out = llm.batch(["Hello", "Hey"])
    assert len(out) == 2 and all(isinstance(m, AIMessage) for m in out)
    assert out[0].content == llm.invoke("Hello").content

    async def run():
        one = await llm.ainvoke("Hello")
        pieces = [c async for c in llm.astream("Hello")]
        return one, pieces

    one, pieces = asyncio.run(run())
    assert one.content == out[0].content
    assert "".join(p.content for p in pieces) == one.content and pieces[-1].chunk_position == "last"

    prompt = ChatPromptTemplate.from_messages([("system", "Be brief."), ("human", "{question}")])
    chain = prompt | llm | StrOutputParser()
    assert isinstance(chain.invoke({"question": "Who founded Veltrano Dynamics?"}), str)


def test_messages_go_through_the_chat_template(tiny, monkeypatch):
    seen = []
    original = type(tiny).generate

    def spy(self, prompt_or_messages, *args, **kwargs):
        seen.append(list(prompt_or_messages))
        return original(self, prompt_or_messages, *args, **kwargs)

    monkeypatch.setattr(type(tiny), "generate", spy)
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2)
    llm.invoke([SystemMessage("sys"), HumanMessage("q1"), AIMessage("a1"), HumanMessage("q2"),
                HumanMessage([{"type": "text", "text": "q3"}], name="someone")])
    assert seen[-1] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q1"},
                        {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2\n\nq3"}]
    llm.invoke("hi")  # no system message: the model's default system prompt
    assert seen[-1] == [{"role": "system", "content": tiny.config.system_prompt}, {"role": "user", "content": "hi"}]
    KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2, system_prompt="Answer in French.").invoke("hi")
    assert seen[-1][0] == {"role": "system", "content": "Answer in French."}


def test_kb_is_live_and_only_changes_are_reencoded(tiny):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLLM(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=2, top_k_attention=10)
    enc = tiny.encoder

    def seen_triples():
        meta = llm.invoke("What do you know?").response_metadata
        assert meta["kb_version"] == kb.version
        return {(a["name"], a["property"], a["value"]) for a in meta["kb_attention"]}

    assert seen_triples() == set(TRIPLES)
    start = enc.triples_encoded
    kb.add("Ada Lovelace", "born in", "London")
    assert ("Ada Lovelace", "born in", "London") in seen_triples()
    assert enc.triples_encoded == start + 1
    kb.update(("Quillmark X2", "price", "42 dollars"), "45 dollars")
    now = seen_triples()
    assert ("Quillmark X2", "price", "45 dollars") in now and ("Quillmark X2", "price", "42 dollars") not in now
    assert enc.triples_encoded == start + 2
    kb.remove(("Ada Lovelace", "born in", "London"))
    assert ("Ada Lovelace", "born in", "London") not in seen_triples()
    assert enc.triples_encoded == start + 2
    assert llm.knowledge_base is kb


def test_kb_manager_input_is_live(tiny):
    manager = tiny.kb_manager(KnowledgeBase(TRIPLES))
    llm = KBLaMLLM(kb=manager, kblam_model=tiny, mode="kblam", max_new_tokens=2, top_k_attention=10)
    assert llm.kb_manager is manager
    assert llm.invoke("x").response_metadata["kb_size"] == 3
    manager.kb.add("Ada Lovelace", "born in", "London")
    meta = llm.invoke("x").response_metadata
    assert meta["kb_size"] == 4 and meta["kb_version"] == manager.kb.version


def test_concurrent_calls_while_the_kb_changes_see_consistent_snapshots(tiny):
    kb = KnowledgeBase(TRIPLES)
    history: dict[int, frozenset] = {kb.version: frozenset(t.id for t in kb)}
    kb.subscribe(lambda change: history.__setitem__(change.version, frozenset(t.id for t in kb.snapshot()[1])))
    llm = KBLaMLLM(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=2, top_k_attention=100)
    stop = threading.Event()
    errors: list[BaseException] = []
    results = []

    def mutate():
        i, previous, price = 0, None, "42 dollars"
        try:
            while not stop.is_set():
                added = kb.add("Counter", "value", str(i))
                if previous is not None:
                    kb.remove(previous)
                new_price = "43 dollars" if price == "42 dollars" else "42 dollars"
                kb.update(("Quillmark X2", "price", price), new_price)
                previous, price, i = added, new_price, i + 1
                time.sleep(0.0005)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def ask(n):
        try:
            for _ in range(n):
                results.append(llm.invoke("What changed?").response_metadata)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    writer = threading.Thread(target=mutate)
    readers = [threading.Thread(target=ask, args=(4,)) for _ in range(3)]
    writer.start()
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    stop.set()
    writer.join()
    assert not errors, errors
    assert len(results) == 12
    assert len({meta["kb_version"] for meta in results}) > 1, "the KB did not change during the calls"
    for meta in results:
        ids = frozenset(a["triple_id"] for a in meta["kb_attention"])
        assert ids == history[meta["kb_version"]], "a call mixed KB versions"
        assert meta["kb_size"] == len(ids)


def test_models_are_loaded_lazily_and_shared(counting_loader, tmp_path):
    llm1 = KBLaMLLM(kb=TRIPLES, max_new_tokens=2)
    llm2 = KBLaMLLM(kb=KnowledgeBase(TRIPLES), backbone=None, max_new_tokens=3)
    assert counting_loader == []  # nothing loaded at construction
    threads = [threading.Thread(target=llm.load_model) for llm in (llm1, llm2, llm1, llm2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(counting_loader) == 1
    assert llm1.load_model() is llm2.load_model()
    assert llm1._runner.model is llm2._runner.model
    assert isinstance(llm1.invoke("hi"), AIMessage) and isinstance(llm2.invoke("hi"), AIMessage)
    # other weights -> another model
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "kblam_config.json").write_text("{}")
    other = KBLaMLLM(kb=TRIPLES, model_path=str(ckpt))
    assert other.load_model() is not llm1.load_model() and len(counting_loader) == 2


def test_failed_load_caches_nothing(monkeypatch, counting_loader, tiny):
    def broken(spec):
        raise ModelNotFoundError("no such model")

    monkeypatch.setattr(model_cache, "_load", broken)
    llm = KBLaMLLM(kb=TRIPLES, max_new_tokens=2)
    with pytest.raises(ModelNotFoundError):
        llm.invoke("hi")
    assert model_cache._CACHE == {} and llm._runner.model is None
    monkeypatch.setattr(model_cache, "_load", lambda spec: tiny)
    assert isinstance(llm.invoke("hi"), AIMessage)


def test_default_weights_fall_back_to_an_untrained_model_with_a_warning(monkeypatch, tmp_path, caplog):
    from kblam_integrations.model import kblam_model

    made = []
    monkeypatch.setattr(kblam_model, "DEFAULT_WEIGHTS_DIR", tmp_path / "missing")
    monkeypatch.setattr(kblam_model.KBLaMModel, "from_backbone",
                        classmethod(lambda cls, backbone=None, encoder=None, **kw: made.append((backbone, encoder))
                                    or "untrained"))
    with caplog.at_level(logging.WARNING, logger="kblam_integrations.integrations.model_cache"):
        assert model_cache._load(model_cache.ModelSpec.create()) == "untrained"
    assert made and "UNTRAINED" in caplog.text


def test_unknown_model_locations_are_typed_errors(tmp_path):
    with pytest.raises(ModelNotFoundError):
        KBLaMLLM(kb=TRIPLES, model_path=str(tmp_path / "nope"))
    with pytest.raises(ModelNotFoundError):
        KBLaMLLM(kb=TRIPLES, model_path=str(tmp_path))  # a directory, but no kblam_config.json
    with pytest.raises(ModelNotFoundError):
        KBLaMLLM(kb=TRIPLES, backbone=str(tmp_path / "nope.gguf"))
    with pytest.raises(ModelNotFoundError):
        KBLaMLLM(kb=TRIPLES, encoder=str(tmp_path / "no-encoder"))


def test_bad_messages_are_typed_errors_without_side_effects(counting_loader):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLLM(kb=kb, max_new_tokens=2)
    with pytest.raises(KBValidationError):
        llm.invoke([])
    with pytest.raises(KBValidationError, match="image_url"):
        llm.invoke([HumanMessage(content=[{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}])])
    with pytest.raises(KBValidationError):
        llm.invoke([HumanMessage("hi"), ToolMessage("3", tool_call_id="1")])
    with pytest.raises(KBValidationError):
        llm.invoke([AIMessage("", tool_calls=[{"name": "add", "args": {}, "id": "1"}]), HumanMessage("hi")])
    with pytest.raises(KBValidationError):
        list(llm.stream([]))
    assert counting_loader == [] and kb.version == 1 and len(kb) == 3  # nothing loaded, KB untouched
    with pytest.raises(KBValidationError):
        messages_to_dicts([HumanMessage(content=["ok", {"type": "image", "base64": "AA", "mime_type": "image/png"}])])


def test_bad_settings_and_options_are_typed_errors(tiny):
    for bad in ({"mode": "rag"}, {"max_new_tokens": 0}, {"temperature": -1.0}, {"top_k_attention": -1},
                {"grounded_k": 0}):
        with pytest.raises(ConfigError):
            KBLaMLLM(kb=TRIPLES, kblam_model=tiny, **bad)
    with pytest.raises(ConfigError, match="max_new_token"):
        KBLaMLLM(kb=TRIPLES, kblam_model=tiny, max_new_token=3)  # typo: not silently ignored
    KBLaMLLM(kb=TRIPLES, kblam_model=tiny, timeout=60, max_retries=2, api_key="x")  # generic, ignored
    with pytest.raises(ConfigError):
        KBLaMLLM(kb=TRIPLES, kblam_model=tiny, backbone="smollm2")
    with pytest.raises(ConfigError):
        KBLaMLLM(kb=TRIPLES, kblam_model="not a model")
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2)
    with pytest.raises(ConfigError, match="unknown"):
        llm.invoke("hi", max_new_token=3)
    with pytest.raises(ConfigError):
        llm.invoke("hi", mode="rag")
    with pytest.raises(ConfigError):
        llm.invoke("hi", max_tokens=0)
    with pytest.raises(ConfigError, match="override"):
        llm.invoke("hi", model="gpt-x")
    assert llm.invoke("hi", model=llm.model_name, max_tokens=1).usage_metadata["output_tokens"] == 1


def test_tools_and_structured_output_are_declared_unsupported(tiny):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny)
    with pytest.raises(NotImplementedError, match="tool calling"):
        llm.bind_tools([])
    with pytest.raises(NotImplementedError, match="structured output"):
        llm.with_structured_output({"title": "x", "type": "object", "properties": {}})
    with pytest.raises(NotImplementedError):
        llm.invoke("hi", tools=[{"type": "function"}])


def test_kb_inputs_and_bad_kb_files(tiny, tmp_path):
    for kb in (TRIPLES, [Triple(*t) for t in TRIPLES], [dict(zip(("name", "property", "value"), t)) for t in TRIPLES],
               {"triples": list(TRIPLES)}, (t for t in TRIPLES)):
        assert KBLaMLLM(kb=kb, kblam_model=tiny).knowledge_base.snapshot()[1] == tuple(Triple(*t) for t in TRIPLES)
    with pytest.raises(KBFormatError, match="not found"):
        KBLaMLLM(kb=str(tmp_path / "missing.json"), kblam_model=tiny)
    with pytest.raises(KBFormatError):
        KBLaMLLM(kb=tmp_path, kblam_model=tiny)  # a directory
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(KBFormatError, match="unsupported"):
        KBLaMLLM(kb=tmp_path / "notes.txt", kblam_model=tiny)
    (tmp_path / "kb.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(KBFormatError):
        KBLaMLLM(kb=tmp_path / "kb.safetensors", kblam_model=tiny)
    with pytest.raises(KBValidationError):
        KBLaMLLM(kb=[("only", "two")], kblam_model=tiny)
    with pytest.raises(KBValidationError):
        KBLaMLLM(kb=[("a", "b", "")], kblam_model=tiny)
    with pytest.raises(KBValidationError):
        KBLaMLLM(kb=42, kblam_model=tiny)


def test_saved_kb_files(tiny, tmp_path):
    pytest.importorskip("kblam_integrations.kb.persistence", reason="KB persistence (kb/persistence.py) not there yet")
    kb = KnowledgeBase(TRIPLES)
    for name in ("kb.json", "kb.jsonl", "kb.graphml"):
        kb.save(tmp_path / name)
        llm = KBLaMLLM(kb=str(tmp_path / name), kblam_model=tiny, mode="kblam", max_new_tokens=2)
        assert llm.invoke("x").response_metadata["kb_size"] == 3
        llm.knowledge_base.add("Ada Lovelace", "born in", "London")
        assert llm.invoke("x").response_metadata["kb_size"] == 4
    (tmp_path / "bad.json").write_text('{"triples": [{"name": "x", "property": "y"')
    with pytest.raises(KBFormatError):
        KBLaMLLM(kb=tmp_path / "bad.json", kblam_model=tiny)


def test_encoded_kb_file_reloads_without_reencoding(tiny, tmp_path, caplog):
    path = tiny.kb_manager(KnowledgeBase(TRIPLES)).save(tmp_path / "kb.safetensors")
    before = tiny.encoder.triples_encoded
    llm = KBLaMLLM(kb=path, kblam_model=tiny, mode="kblam", max_new_tokens=2)
    assert llm.invoke("x").response_metadata["kb_size"] == 3
    assert tiny.encoder.triples_encoded == before
    llm.knowledge_base.add("Ada Lovelace", "born in", "London")
    assert llm.invoke("x").response_metadata["kb_size"] == 4 and tiny.encoder.triples_encoded == before + 1
    # other adapters: the cache does not fit, its stored triples are re-encoded (with a warning)
    other = tiny_chat_kblam()
    with torch.no_grad():
        for p in other.adapters.parameters():
            p.add_(0.01)
    with caplog.at_level(logging.WARNING):
        meta = KBLaMLLM(kb=path, kblam_model=other, max_new_tokens=2).invoke("x").response_metadata
    assert meta["kb_size"] == 3 and "re-encoding" in caplog.text


def test_grounded_mode(tiny):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, max_new_tokens=3, mode="grounded", grounded_k=2)
    meta = llm.invoke("Who founded Veltrano Dynamics?").response_metadata
    assert meta["mode"] == "grounded" and len(meta["kb_attention"]) <= 2
    assert llm.invoke("x", mode="kblam").response_metadata["mode"] == "kblam"


# ------------------------------------------------------------------ real model
QUESTION = "Who founded Veltrano Dynamics?"


@pytest.mark.slow
def test_real_model_is_shared_stream_matches_invoke(smollm2_kblam):
    llm1 = KBLaMLLM(kb=TRIPLES, max_new_tokens=8)
    llm2 = KBLaMLLM(kb=KnowledgeBase(TRIPLES), max_new_tokens=8)
    assert llm1.load_model() is llm2.load_model()
    assert llm1.load_model().backbone is smollm2_kblam.backbone  # one backbone per process
    text = llm1.invoke(QUESTION).content
    assert text and "".join(c.content for c in llm1.stream(QUESTION)) == text


CORPUS = ("Veltrano Dynamics was founded by Marisol Okonkwo in 2011. The company is headquartered in "
          "Port Alvessa.\n\nQuillmark Labs is based in Dunmore.")


@pytest.mark.slow
def test_rag_chain_and_kblam_answer_the_same_question():
    """Classic RAG (vector store over the same MiniLM + prompt + plain SmolLM2) next to KBLaMLLM,
    both fed by the spaCy loader."""
    from langchain_core.runnables import RunnablePassthrough
    from langchain_core.vectorstores import InMemoryVectorStore

    from kblam_integrations.integrations.langchain import KBLaMSentenceEmbeddings
    from kblam_integrations.integrations.langchain_loaders import KBLaMTextLoader

    loader = KBLaMTextLoader(texts=[CORPUS])
    docs = loader.load()  # one Document per extracted triple: "the {property} of {name} is {value}"
    kb = loader.load_knowledge_base()
    assert len(kb) == len(docs) >= 3 and {t.id for t in kb} == {d.metadata["triple_id"] for d in docs}
    founder = [t for t in kb if t.name == "Veltrano Dynamics" and t.value == "Marisol Okonkwo"]
    assert founder, list(kb)

    # classic RAG: embed the triple documents, retrieve, paste them in the prompt, plain SmolLM2
    store = InMemoryVectorStore.from_documents(docs, KBLaMSentenceEmbeddings())
    retriever = store.as_retriever(search_kwargs={"k": 2})
    assert "Marisol Okonkwo" in " ".join(d.page_content for d in retriever.invoke(QUESTION))
    plain = KBLaMLLM(kb=None, max_new_tokens=12)  # exactly the SmolLM2 chat model
    rag_prompt = ChatPromptTemplate.from_messages([
        ("system", "Answer using only these facts:\n{context}"), ("human", "{question}")])
    rag = ({"context": retriever | (lambda ds: "\n".join(d.page_content for d in ds)),
            "question": RunnablePassthrough()} | rag_prompt | plain | StrOutputParser())
    rag_answer = rag.invoke(QUESTION)
    assert isinstance(rag_answer, str) and rag_answer

    # KBLaM: no retriever, no facts in the prompt; the same KB as knowledge tokens
    llm = KBLaMLLM(kb=kb, mode="kblam", max_new_tokens=12, top_k_attention=len(kb))
    kblam = ChatPromptTemplate.from_messages([("human", "{question}")]) | llm
    msg = kblam.invoke({"question": QUESTION})
    assert isinstance(msg.content, str) and msg.content
    assert {a["triple_id"] for a in msg.response_metadata["kb_attention"]} == {t.id for t in kb}
    assert isinstance((ChatPromptTemplate.from_messages([("human", "{question}")]) | llm | StrOutputParser())
                      .invoke({"question": QUESTION}), str)
    # grounded mode streams exactly what it answers (including a refusal)
    grounded = KBLaMLLM(kb=kb, max_new_tokens=12, mode="grounded")
    assert "".join(c.content for c in grounded.stream(QUESTION)) == grounded.invoke(QUESTION).content


def test_stream_text_pieces_add_up_to_the_final_answer():
    from kblam_integrations.integrations.streaming import _StreamText

    st = _StreamText(["STOP"])
    out = [st.push(p) for p in ["  Hello", " wor", "ld  ", "ST", "OP and more"]]
    assert "".join(out) == "Hello world" and out[0] == "Hello" and out[3] == ""
    assert st.finish("Hello world  ") == "  "
    st = _StreamText(None)
    assert [st.push(p) for p in ["a ", "b", ""]] == ["a", " b", ""] and st.finish("a b") == ""
    st = _StreamText(None)  # a refusal put to the streamer as a "prompt" never reaches it
    assert st.finish("I'm sorry.") == "I'm sorry."


def test_kb_given_as_an_ndjson_path_loads_like_knowledge_base_load(tiny, tmp_path):
    """Every suffix KnowledgeBase.load reads is accepted by KBLaMLLM(kb=path) (one suffix list)."""
    from kblam_integrations.kb.persistence import KB_FILE_SUFFIXES

    path = tmp_path / "kb.ndjson"
    KnowledgeBase(TRIPLES).save(path)
    assert ".ndjson" in KB_FILE_SUFFIXES
    llm = KBLaMLLM(kb=str(path), kblam_model=tiny, mode="kblam", max_new_tokens=2)
    assert len(llm.knowledge_base) == len(TRIPLES)
