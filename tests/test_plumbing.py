"""Issue 16 plumbing: default mode, serialisation keeps the KB, cache keyed by KB content, token counts,
extras and optional-import errors, attention plots from metadata, cache directory."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.globals import set_llm_cache
from langchain_core.load import dumpd, dumps, loads
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, trim_messages

from kblam_integrations import settings
from kblam_integrations._optional import MissingDependencyError, require
from kblam_integrations.errors import ConfigError, KBValidationError
from kblam_integrations.integrations.langchain import KBLaMLLM
from kblam_integrations.integrations.llamaindex import KBLaMLlamaIndexLLM, KBLaMQueryEngine
from kblam_integrations.kb import KnowledgeBase

from .test_langchain import TRIPLES, tiny  # noqa: F401 - fixture

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "Who founded Veltrano Dynamics?"


# ----------------------------------------------------------------- default mode
def test_default_mode_is_grounded_everywhere():
    assert KBLaMLLM(kb=TRIPLES).mode == "grounded"
    assert KBLaMLlamaIndexLLM(kb=TRIPLES).mode == "grounded"
    assert KBLaMQueryEngine(kb=TRIPLES).llm.mode == "grounded"


@pytest.mark.slow
def test_default_answers_on_the_demo_kb_are_right():
    """The demo corpus, extracted with spaCy, answered with every default (shipped weights, grounded)."""
    from kblam_integrations.demo import corpus_paragraphs, extract_kb

    kb = extract_kb(corpus_paragraphs())
    assert kb.find(name="Veltrano Dynamics", property="founded by") or any(
        t.value == "Marisol Okonkwo" for t in kb), list(kb)
    llm = KBLaMLLM(kb=kb, max_new_tokens=32)
    msg = llm.invoke(QUESTION)
    assert "Marisol Okonkwo" in msg.content and msg.response_metadata["mode"] == "grounded"
    assert "Amara Velasquez" in llm.invoke("Who is the director of the Harlow Institute?").content
    response = KBLaMQueryEngine(kb=kb, max_new_tokens=32).query(QUESTION)
    assert "Marisol Okonkwo" in str(response)


# ---------------------------------------------------------------- serialisation
def test_dumps_loads_keeps_a_kb_given_by_path(tmp_path):
    path = KnowledgeBase(TRIPLES).save(tmp_path / "kb.json")
    llm = KBLaMLLM(kb=str(path), mode="kblam", max_new_tokens=7)
    data = dumpd(llm)
    assert data["type"] == "constructor" and data["kwargs"]["kb"] == str(path)
    loaded = loads(dumps(llm), valid_namespaces=["kblam_integrations"], allowed_objects=[KBLaMLLM])
    assert isinstance(loaded, KBLaMLLM) and loaded.mode == "kblam" and loaded.max_new_tokens == 7
    assert loaded.knowledge_base.snapshot()[1] == llm.knowledge_base.snapshot()[1]


def test_dumps_loads_keeps_an_in_memory_kb_inline_and_refuses_an_in_memory_model(tiny):
    kb = KnowledgeBase(TRIPLES)
    loaded = loads(dumps(KBLaMLLM(kb=kb)), valid_namespaces=["kblam_integrations"], allowed_objects=[KBLaMLLM])
    assert {t.id for t in loaded.knowledge_base} == {t.id for t in kb}
    assert dumpd(KBLaMLLM(kb=kb, kblam_model=tiny))["type"] == "not_implemented"


def test_llamaindex_to_dict_from_dict_keeps_the_kb(tmp_path, tiny):
    path = KnowledgeBase(TRIPLES).save(tmp_path / "kb.jsonl")
    llm = KBLaMLlamaIndexLLM(kb=path, mode="kblam", max_new_tokens=9)
    data = llm.to_dict()
    assert data["kb"] == str(path) and data["class_name"] == "KBLaMLlamaIndexLLM"
    back = KBLaMLlamaIndexLLM.from_dict(data)
    assert back.knowledge_base.snapshot()[1] == llm.knowledge_base.snapshot()[1]
    assert back.mode == "kblam" and back.max_new_tokens == 9
    inline = KBLaMLlamaIndexLLM.from_json(KBLaMLlamaIndexLLM(kb=TRIPLES).to_json())
    assert len(inline.knowledge_base) == 3
    with pytest.raises(ConfigError, match="kblam_model"):
        KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny).to_dict()


# ------------------------------------------------------------------------ cache
@pytest.fixture
def llm_cache():
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_a_kb_edit_invalidates_the_llm_cache(tiny, llm_cache):
    kb = KnowledgeBase(TRIPLES)
    llm = KBLaMLLM(kb=kb, kblam_model=tiny, mode="kblam", max_new_tokens=2, cache=True)
    first = llm.invoke(QUESTION)
    assert len(llm_cache._cache) == 1
    assert llm.invoke(QUESTION).response_metadata == first.response_metadata  # a cache hit
    assert len(llm_cache._cache) == 1
    kb.update(("Veltrano Dynamics", "founder", "Marisol Okonkwo"), "Someone Else")
    edited = llm.invoke(QUESTION)
    assert edited.response_metadata["kb_version"] == kb.version != first.response_metadata["kb_version"]
    assert len(llm_cache._cache) == 2
    # another KB at the same version never shares entries
    other = KBLaMLLM(kb=KnowledgeBase([("Quillmark X2", "price", "9 dollars")]), kblam_model=tiny, mode="kblam",
                     max_new_tokens=2, cache=True)
    assert other.invoke(QUESTION).response_metadata["kb_size"] == 1


def test_the_global_cache_is_used_by_default(tiny, llm_cache):
    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2)
    llm.invoke(QUESTION)
    assert len(llm_cache._cache) == 1


# ----------------------------------------------------------------------- tokens
@pytest.mark.slow
def test_token_counts_use_the_backbone_tokenizer_offline():
    from kblam_integrations.integrations.tokenizer import backbone_tokenizer

    llm = KBLaMLLM(kb=TRIPLES)
    text = "Who founded Veltrano Dynamics, and where is it based?"
    assert llm.get_num_tokens(text) == len(backbone_tokenizer("smollm2").encode(text, add_special_tokens=False)) > 5
    history = [SystemMessage("Answer briefly."), HumanMessage("hello " * 60), AIMessage("ok " * 60),
               HumanMessage(QUESTION)]
    total = llm.get_num_tokens_from_messages(history)
    assert total > llm.get_num_tokens_from_messages(history[-1:]) > 0
    trimmed = trim_messages(history, max_tokens=60, token_counter=llm, strategy="last", include_system=True)
    assert trimmed[0] == history[0] and trimmed[-1] == history[-1] and len(trimmed) < len(history)
    assert llm.get_num_tokens_from_messages([]) == 0


# ---------------------------------------------------------------- plots, extras
def test_attention_plot_from_chain_calls(tiny, tmp_path):
    from kblam_integrations.integrations.plots import kb_attention_records, plot_kb_attention

    llm = KBLaMLLM(kb=TRIPLES, kblam_model=tiny, mode="kblam", max_new_tokens=2, top_k_attention=3)
    messages = llm.batch([QUESTION, "Where is Veltrano Dynamics?"])
    assert len(kb_attention_records(messages[0])) == 3
    assert kb_attention_records(messages[0].response_metadata) == kb_attention_records(messages[0])
    fig = plot_kb_attention(messages, tmp_path / "plots" / "attention.png", labels=["q1", "q2"])
    assert (tmp_path / "plots" / "attention.png").stat().st_size > 1000
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["q1", "q2"]
    assert not list((tmp_path / "plots").glob(".attention-*"))  # the temporary file is gone
    plot_kb_attention(messages[0])  # one answer
    with pytest.raises(KBValidationError, match="kb_attention"):
        plot_kb_attention(AIMessage("no metadata"))
    with pytest.raises(KBValidationError, match="labels"):
        plot_kb_attention(messages, labels=["only one"])


def test_missing_optional_packages_name_the_extra():
    with pytest.raises(MissingDependencyError, match=r"kblam-integrations\[plots\]") as info:
        require("kblam_no_such_module", extra="plots")
    assert isinstance(info.value, ImportError)
    assert require("networkx", extra="core").__name__ == "networkx"


def test_extras_and_typing_marker_are_declared():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    extras = project["project"]["optional-dependencies"]
    core = " ".join(project["project"]["dependencies"])
    for extra, dist in (("langchain", "langchain-core"), ("llamaindex", "llama-index-core"), ("extract", "spacy"),
                        ("plots", "matplotlib")):
        assert any(r.startswith(dist) for r in extras[extra]) and dist not in core
    assert extras["all"] == ["kblam-integrations[langchain,llamaindex,extract,plots,rag]"]
    assert "kblam-integrations[all]" in extras["dev"]
    assert '-e ".[all,dev]"' in (ROOT / "scripts" / "setup.sh").read_text()
    assert (ROOT / "kblam_integrations" / "py.typed").is_file()
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["kblam_integrations"]


def test_cache_dir_default_and_override(monkeypatch, tmp_path):
    from platformdirs import user_cache_dir

    monkeypatch.delenv("KBLAM_CACHE_DIR", raising=False)
    assert settings.cache_dir() == Path(user_cache_dir("kblam_integrations", appauthor=False))
    monkeypatch.setenv("KBLAM_CACHE_DIR", str(tmp_path))
    assert settings.cache_dir() == tmp_path
