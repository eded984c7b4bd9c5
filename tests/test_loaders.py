"""KBLaMTextLoader (LangChain) and KBLaMReader (LlamaIndex): files, directories, strings, metadata."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.document_loaders import BaseLoader
from langchain_core.documents import Document as LCDocument
from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document as LIDocument, MetadataMode

from kblam_integrations.errors import KBFormatError
from kblam_integrations.kb import KnowledgeBase
from kblam_integrations.kb.extraction import TripleExtractor
from kblam_integrations.integrations.langchain_loaders import KBLaMTextLoader
from kblam_integrations.integrations.llamaindex_readers import KBLaMReader
from kblam_integrations.kb.loaders import iter_sources

METADATA_KEYS = {"name", "property", "value", "triple_id", "doc_id", "source", "sentence", "char_start", "char_end"}


@pytest.fixture(scope="module")
def extractor() -> TripleExtractor:
    return TripleExtractor()


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    (tmp_path / "sub").mkdir()
    (tmp_path / "b_turing.txt").write_text(
        "Alan Turing was born in London.\r\n\r\nHe worked at Bletchley Park.\n", encoding="utf-8")
    (tmp_path / "sub" / "a_paris.md").write_text("# Notes\n\nParis is the capital of France.\n", encoding="utf-8")
    (tmp_path / "ignored.json").write_text('{"text": "Rome is the capital of Italy."}', encoding="utf-8")
    return tmp_path


def _facts(docs) -> list[tuple[str, str, str]]:
    return [(d.metadata["name"], d.metadata["property"], d.metadata["value"]) for d in docs]


# ------------------------------------------------------------------- LangChain
def test_langchain_loader_is_a_base_loader_and_streams(extractor, corpus):
    loader = KBLaMTextLoader(corpus, extractor)
    assert isinstance(loader, BaseLoader)
    stream = loader.lazy_load()
    first = next(stream)
    assert isinstance(first, LCDocument)


def test_langchain_directory_recursive_sorted_txt_and_md_only(extractor, corpus):
    docs = KBLaMTextLoader(corpus, extractor).load()
    assert _facts(docs) == [
        ("Alan Turing", "born in", "London"),
        ("Alan Turing", "worked at", "Bletchley Park"),  # pronoun resolved within the file
        ("Paris", "capital of", "France"),
    ]
    assert not any("Rome" in d.page_content for d in docs)  # *.json is not read


def test_langchain_metadata_and_page_content(extractor, corpus):
    docs = KBLaMTextLoader(corpus / "b_turing.txt", extractor).load()
    d = docs[1]
    assert d.page_content == "Alan Turing was worked at Bletchley Park."  # grounding.fact_sentence
    assert set(d.metadata) == METADATA_KEYS
    path = str(corpus / "b_turing.txt")
    assert d.metadata["source"] == path and d.metadata["doc_id"] == path
    raw = (corpus / "b_turing.txt").open(encoding="utf-8", newline="").read()
    assert raw[d.metadata["char_start"]:d.metadata["char_end"]] == d.metadata["sentence"] == "He worked at Bletchley Park."
    assert len(d.metadata["triple_id"]) == 16


def test_langchain_plain_strings_and_texts_argument(extractor, corpus):
    loader = KBLaMTextLoader(["Ada Lovelace was born in London.", str(corpus / "sub" / "a_paris.md")], extractor,
                             texts=["Rome is the capital of Italy."])
    docs = loader.load()
    assert _facts(docs) == [("Ada Lovelace", "born in", "London"), ("Paris", "capital of", "France"),
                            ("Rome", "capital of", "Italy")]
    assert docs[0].metadata["source"] == "<text>" and docs[0].metadata["doc_id"] == "text-0"
    assert docs[2].metadata["doc_id"] == "text-1"


def test_langchain_load_knowledge_base(extractor, corpus):
    loader = KBLaMTextLoader([corpus, "Alan Turing was born in London."], extractor)
    kb = loader.load_knowledge_base()
    assert isinstance(kb, KnowledgeBase)
    assert len(kb) == 3  # the duplicate Turing fact is stored once
    t = kb.find(name="Paris")[0]
    assert t.extra["source"].endswith("a_paris.md") and t.extra["sentence"] == "Paris is the capital of France."


def test_missing_path_like_string_is_a_typed_error(extractor, tmp_path):
    with pytest.raises(KBFormatError, match="notes.txt"):
        KBLaMTextLoader("missing/notes.txt", extractor).load()
    with pytest.raises(KBFormatError):
        KBLaMTextLoader(tmp_path / "nope", extractor).load()  # a Path is always a path
    with pytest.raises(KBFormatError):
        KBLaMReader(extractor).load_data(["./missing_dir"])


def test_undecodable_file_is_a_typed_error(extractor, tmp_path):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("Zürich liegt in der Schweiz.".encode("latin-1"))
    with pytest.raises(KBFormatError, match="latin1.txt"):
        KBLaMTextLoader(bad, extractor).load()
    docs = KBLaMTextLoader(bad, extractor, encoding="latin-1").load()
    assert isinstance(docs, list)


def test_large_file_is_streamed_in_paragraphs(extractor, tmp_path):
    big = tmp_path / "big.txt"
    para = "Alan Turing was born in London. He worked at Bletchley Park.\n\n"
    big.write_text(para * 300 + "Paris is the capital of France.\n", encoding="utf-8")
    docs = KBLaMTextLoader(big, extractor, batch_size=16).load()
    assert _facts(docs) == [("Alan Turing", "born in", "London"), ("Alan Turing", "worked at", "Bletchley Park"),
                            ("Paris", "capital of", "France")]
    raw = big.read_text(encoding="utf-8")
    assert docs[-1].metadata["char_start"] == len(para) * 300
    assert raw[docs[-1].metadata["char_start"]:docs[-1].metadata["char_end"]] == "Paris is the capital of France."


def test_progress_bar(extractor, corpus, capsys):
    KBLaMTextLoader(corpus, extractor, show_progress=True).load()
    assert "extracting triples" in capsys.readouterr().err


def test_iter_sources_rules(corpus):
    entries = list(iter_sources([corpus, "plain text here"], texts=["more"]))
    assert [e[0] for e in entries] == [str(corpus / "b_turing.txt"), str(corpus / "sub" / "a_paris.md"), "text-0", "text-1"]
    assert isinstance(entries[0][2], Path) and entries[2][2] == "plain text here"
    assert list(iter_sources("hello")) == [("text-0", "<text>", "hello")]  # no extension: text
    with pytest.raises(TypeError):
        list(iter_sources([42]))  # type: ignore[list-item]


def test_default_extractor_is_created(corpus):
    loader = KBLaMTextLoader(corpus)
    assert isinstance(loader.extractor, TripleExtractor)


# ------------------------------------------------------------------- LlamaIndex
def test_llamaindex_reader_documents(extractor, corpus):
    reader = KBLaMReader(extractor)
    assert isinstance(reader, BaseReader)
    docs = reader.load_data([corpus], texts=["Ada Lovelace was born in London."])
    assert all(isinstance(d, LIDocument) for d in docs)
    assert _facts(docs) == [("Alan Turing", "born in", "London"), ("Alan Turing", "worked at", "Bletchley Park"),
                            ("Paris", "capital of", "France"), ("Ada Lovelace", "born in", "London")]
    d = docs[2]
    assert d.text == "Paris is the capital of France."  # grounding.fact_sentence
    assert set(d.metadata) == METADATA_KEYS
    assert d.metadata["source"] == str(corpus / "sub" / "a_paris.md")
    assert d.metadata["sentence"] == "Paris is the capital of France."
    raw = (corpus / "sub" / "a_paris.md").read_text(encoding="utf-8")
    assert raw[d.metadata["char_start"]:d.metadata["char_end"]] == d.metadata["sentence"]
    # provenance is kept out of what embedders / LLMs see
    embed_text = d.get_content(metadata_mode=MetadataMode.EMBED)
    assert "char_start" not in embed_text and "Paris" in embed_text
    assert len({x.id_ for x in docs}) == len(docs)


def test_llamaindex_plain_string_source_and_lazy(extractor):
    reader = KBLaMReader(extractor)
    gen = reader.lazy_load_data("Canberra is the capital of Australia.")
    assert _facts(list(gen)) == [("Canberra", "capital of", "Australia")]


def test_llamaindex_load_knowledge_base(extractor, corpus):
    kb = KBLaMReader(extractor).load_knowledge_base(corpus)
    assert ("Paris", "capital of", "France") in kb and len(kb) == 3
    existing = KnowledgeBase([("Rome", "capital of", "Italy")])
    out = KBLaMReader(extractor).load_knowledge_base(texts=["Alan Turing was born in London."], kb=existing)
    assert out is existing and len(existing) == 2
