"""Documents in, graphs out: KnowledgeBase.from_documents, loaders taking documents, graph round trips."""

from __future__ import annotations

import subprocess
import sys

import networkx as nx
import pytest
from langchain_core.documents import Document as LCDocument
from llama_index.core.graph_stores import SimplePropertyGraphStore
from llama_index.core.schema import Document as LIDocument, TextNode

from kblam_integrations.errors import KBValidationError
from kblam_integrations.integrations.graphs import (
    KnowledgeTriple,
    kb_from_entity_graph,
    kb_from_property_graph,
    kb_to_entity_graph,
    kb_to_knowledge_triples,
    kb_to_property_graph,
    kb_to_triplets,
)
from kblam_integrations.integrations.langchain_loaders import KBLaMTextLoader, kb_to_documents
from kblam_integrations.integrations.llamaindex_readers import KBLaMReader, kb_to_nodes
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.kb.extraction import TripleExtractor
from kblam_integrations.model.grounding import fact_sentence

TEXT = "Ada Lovelace was born in London. She worked with Charles Babbage."
KB_TRIPLES = [Triple("Ada Lovelace", "born in", "London", {"source": "bio.txt", "page": 3}),
              Triple("Paris", "capital of", "France"),
              Triple("Veltrano Dynamics", "founder", "Marisol Okonkwo")]


@pytest.fixture(scope="module")
def extractor() -> TripleExtractor:
    return TripleExtractor()


def _facts(kb) -> set[tuple[str, str, str]]:
    return {(t.name, t.property, t.value) for t in kb}


# ------------------------------------------------------------------ documents in
def test_langchain_documents_are_extracted_and_keep_their_metadata(extractor):
    docs = [LCDocument(page_content=TEXT, metadata={"source": "notes.pdf", "page": 7}),
            LCDocument(page_content="Paris is the capital of France.", metadata={}, id="doc-b")]
    kb = KnowledgeBase.from_documents(docs, extractor=extractor)
    assert ("Ada Lovelace", "born in", "London") in _facts(kb) and ("Paris", "capital of", "France") in _facts(kb)
    ada = kb.find(name="Ada Lovelace", property="born in")[0]
    assert ada.extra["source"] == "notes.pdf" and ada.extra["page"] == 7
    assert ada.extra["sentence"] == "Ada Lovelace was born in London."
    paris = kb.find(name="Paris")[0]
    assert paris.extra["doc_id"] == "doc-b" and paris.extra["source"] == "<document>"


def test_llamaindex_documents_and_nodes_are_extracted(extractor):
    nodes = [LIDocument(text=TEXT, metadata={"file_path": "/data/bio.txt"}),
             TextNode(text="Paris is the capital of France.", metadata={"source": "atlas"})]
    kb = KnowledgeBase.from_documents(nodes, extractor=extractor)
    assert kb.find(name="Ada Lovelace", property="born in")[0].extra["source"] == "/data/bio.txt"
    assert kb.find(name="Paris")[0].extra["source"] == "atlas"


def test_the_loaders_take_documents_including_their_own_output(extractor):
    lc_docs = KBLaMTextLoader(texts=[TEXT], extractor=extractor).load()
    assert lc_docs and all(d.page_content == fact_sentence(Triple(d.metadata["name"], d.metadata["property"],
                                                                    d.metadata["value"])) for d in lc_docs)
    # the loader's own output: read back as its triples, by the KB and by the loaders (no re-extraction)
    direct = KnowledgeBase(lc_docs)
    assert _facts(direct) == _facts(KnowledgeBase.from_documents(lc_docs)) == {
        (d.metadata["name"], d.metadata["property"], d.metadata["value"]) for d in lc_docs}
    assert direct.find(name="Ada Lovelace")[0].extra["sentence"] == "Ada Lovelace was born in London."
    again = KBLaMTextLoader(lc_docs).load()
    assert [d.metadata["triple_id"] for d in again] == [d.metadata["triple_id"] for d in lc_docs]
    # LlamaIndex: reader output and a plain node together
    reader = KBLaMReader(extractor)
    li_docs = reader.load_data(texts=[TEXT])
    kb = reader.load_knowledge_base(li_docs + [TextNode(text="Paris is the capital of France.")])
    assert _facts(kb) == _facts(direct) | {("Paris", "capital of", "France")}


def test_documents_without_a_triple_are_refused_by_the_kb_constructor():
    with pytest.raises(KBValidationError, match="from_documents") as info:
        KnowledgeBase([LCDocument(page_content=TEXT)])
    assert "field 'metadata'" in str(info.value)


def test_kb_to_documents_and_nodes_use_fact_sentences():
    kb = KnowledgeBase(KB_TRIPLES)
    docs = kb_to_documents(kb)
    assert [d.page_content for d in docs] == [fact_sentence(t) for t in KB_TRIPLES]
    assert docs[0].page_content == "Ada Lovelace was born in London."
    assert docs[0].metadata["source"] == "bio.txt" and docs[0].metadata["page"] == 3 and docs[0].id == KB_TRIPLES[0].id
    nodes = kb_to_nodes(kb)
    assert nodes[1].text == "Paris is the capital of France." and nodes[1].node_id == KB_TRIPLES[1].id
    assert _facts(KnowledgeBase(docs)) == _facts(KnowledgeBase(nodes)) == _facts(kb)


def test_the_kb_layer_imports_no_framework():
    code = ("import sys, kblam_integrations, kblam_integrations.kb.loaders, kblam_integrations.kb.knowledge_base;"
            "bad = [m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'llama_index')];"
            "assert not bad, bad;"
            "from kblam_integrations import KBLaMTextLoader, KBLaMReader;"  # framework classes: integrations only
            "print(KBLaMTextLoader.__module__, KBLaMReader.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["kblam_integrations.integrations.langchain_loaders",
                                  "kblam_integrations.integrations.llamaindex_readers"]


# -------------------------------------------------------------------- graphs out
def test_langchain_knowledge_triples_round_trip():
    kb = KnowledgeBase(KB_TRIPLES)
    triples = kb_to_knowledge_triples(kb)
    assert triples[0] == KnowledgeTriple(subject="Ada Lovelace", predicate="born in", object_="London")
    assert {t.id for t in KnowledgeBase(triples)} == {t.id for t in kb}


def test_langchain_entity_graph_round_trip_and_layout():
    kb = KnowledgeBase(KB_TRIPLES)
    graph = kb_to_entity_graph(kb)
    assert isinstance(graph, nx.DiGraph) and not graph.is_multigraph()
    assert graph.edges["Paris", "France"] == {"relation": "capital of"}  # NetworkxEntityGraph's layout
    assert {t.id for t in kb_from_entity_graph(graph)} == {t.id for t in kb}
    # a graph built the way NetworkxEntityGraph.add_triple builds it
    built = nx.DiGraph()
    built.add_edge("Quillmark Labs", "Idris Halvorsen", relation="founder")
    assert _facts(kb_from_entity_graph(built)) == {("Quillmark Labs", "founder", "Idris Halvorsen")}
    # the KB's own MultiDiGraph (edges carry 'property') reads back too
    assert {t.id for t in kb_from_entity_graph(kb.graph)} == {t.id for t in kb}
    with pytest.raises(KBValidationError, match="relation"):
        kb_from_entity_graph(nx.DiGraph([("a", "b")]))


def test_llamaindex_property_graph_round_trip_keeps_extras():
    kb = KnowledgeBase(KB_TRIPLES + [Triple("Ada Lovelace", "died in", "London")])
    store = kb_to_property_graph(kb)
    assert isinstance(store, SimplePropertyGraphStore)
    back = kb_from_property_graph(store)
    assert {t.id for t in back} == {t.id for t in kb}  # two relations between the same nodes both kept
    assert dict(back.get(KB_TRIPLES[0].id).extra) == {"source": "bio.txt", "page": 3}
    # persisted and reloaded by LlamaIndex, then read back
    reloaded = SimplePropertyGraphStore.from_dict(store.to_dict())
    assert {t.id for t in kb_from_property_graph(reloaded)} == {t.id for t in kb}
    # any store's get_triplets() output
    some = store.get_triplets(entity_names=["Paris"])
    assert _facts(kb_from_property_graph(some)) == {("Paris", "capital of", "France")}


def test_llamaindex_triplets_round_trip():
    kb = KnowledgeBase(KB_TRIPLES)
    triplets = kb_to_triplets(kb)
    assert triplets[1] == ("Paris", "capital of", "France")
    assert {t.id for t in KnowledgeBase(triplets)} == {t.id for t in kb_from_property_graph(triplets)} \
        == {t.id for t in kb}
    with pytest.raises(KBValidationError):
        kb_from_property_graph(42)
