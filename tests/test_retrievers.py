"""KBLaMRetriever (LangChain) and KBLaMLlamaIndexRetriever on the real default stack (slow), plus cheap checks.

The LangChain combination is checked twice: langchain's own ``EnsembleRetriever``
(langchain-classic, a dev dependency) and a RunnableParallel fused by reciprocal rank,
which is what EnsembleRetriever computes.
"""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.runnables import RunnableParallel
from llama_index.core.schema import NodeWithScore, TextNode

from kblam_integrations.errors import ConfigError, KBValidationError
from kblam_integrations.integrations.langchain import KBLaMLLM
from kblam_integrations.integrations.langchain_retriever import KBLaMRetriever
from kblam_integrations.integrations.llamaindex import KBLaMLlamaIndexLLM
from kblam_integrations.integrations.llamaindex_retriever import KBLaMLlamaIndexRetriever
from kblam_integrations.kb import KnowledgeBase
from kblam_integrations.model.grounding import fact_sentence

from .test_langchain import TRIPLES, tiny  # noqa: F401 - fixture

DEMO = [("Veltrano Dynamics", "founder", "Marisol Okonkwo"), ("Veltrano Dynamics", "headquarters", "Port Alvessa"),
        ("Quillmark Labs", "location", "Nerovia"), ("Harlow Institute", "director", "Amara Velasquez"),
        ("Marie Curie", "born in", "Warsaw")]
QUESTION = "Who founded Veltrano Dynamics?"
KEYS = {"name", "property", "value", "triple_id", "score", "kb_version", "null_score"}


def _rrf(*rankings: list[Document], c: int = 60) -> list[str]:
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking):
            scores[doc.page_content] = scores.get(doc.page_content, 0.0) + 1.0 / (c + rank + 1)
    return sorted(scores, key=lambda k: -scores[k])


# ------------------------------------------------------------------ tiny model
def test_langchain_retriever_documents_and_live_kb(tiny):
    kb = KnowledgeBase(TRIPLES)
    retriever = KBLaMRetriever(kb=kb, kblam_model=tiny, k=2)
    docs = retriever.invoke(QUESTION)
    assert len(docs) == 2 and all(isinstance(d, Document) for d in docs)
    assert KEYS <= set(docs[0].metadata) and docs[0].metadata["score"] >= docs[1].metadata["score"]
    assert docs[0].page_content == fact_sentence(kb.get(docs[0].id)) and docs[0].metadata["kb_version"] == kb.version
    kb.add("Harlow Institute", "director", "Amara Velasquez")
    assert retriever.invoke(QUESTION)[0].metadata["kb_version"] == kb.version
    with pytest.raises(KBValidationError, match="query"):
        retriever.invoke("   ")
    with pytest.raises(ConfigError):
        KBLaMRetriever(kb=kb, kblam_model=tiny, k=0)
    shared = KBLaMLLM(kb=kb, kblam_model=tiny).as_retriever(k=1)
    assert shared._runner is not None and len(shared.invoke(QUESTION)) == 1


def test_llamaindex_retriever_nodes(tiny):
    retriever = KBLaMLlamaIndexRetriever(kb=TRIPLES, kblam_model=tiny, similarity_top_k=3)
    nodes = retriever.retrieve(QUESTION)
    assert len(nodes) == 3 and all(isinstance(n, NodeWithScore) and isinstance(n.node, TextNode) for n in nodes)
    assert KEYS <= set(nodes[0].node.metadata) and nodes[0].score == nodes[0].node.metadata["score"]
    assert nodes[0].node.get_content(metadata_mode="llm") == nodes[0].node.text  # metadata hidden from LLMs
    llm = KBLaMLlamaIndexLLM(kb=TRIPLES, kblam_model=tiny)
    assert len(KBLaMLlamaIndexRetriever(llm=llm, similarity_top_k=1).retrieve(QUESTION)) == 1
    with pytest.raises(ConfigError):
        KBLaMLlamaIndexRetriever(llm=llm, kb=TRIPLES)
    with pytest.raises(ConfigError):
        KBLaMLlamaIndexRetriever(kb=TRIPLES, similarity_top_k=0)


# ------------------------------------------------------------------ real model
@pytest.mark.slow
async def test_langchain_retriever_in_an_ensemble_with_a_vector_store():
    from langchain_core.vectorstores import InMemoryVectorStore

    from kblam_integrations.integrations.langchain import KBLaMSentenceEmbeddings

    kb = KnowledgeBase(DEMO)
    ours = KBLaMRetriever(kb=kb, k=2)
    docs = ours.invoke(QUESTION)
    assert docs[0].metadata["value"] == "Marisol Okonkwo"
    assert docs[0].page_content == "The founder of Veltrano Dynamics is Marisol Okonkwo."
    adocs = await ours.ainvoke(QUESTION)
    assert [d.id for d in adocs] == [d.id for d in docs]
    notes = [Document(page_content=t) for t in ("Veltrano Dynamics builds autonomous cargo drones.",
                                                "Quillmark Labs makes the Quillmark X2 tablet.")]
    vector = InMemoryVectorStore.from_documents(notes, KBLaMSentenceEmbeddings()).as_retriever(search_kwargs={"k": 1})
    ensemble = RunnableParallel(kblam=ours, vector=vector) | (lambda r: _rrf(r["kblam"], r["vector"]))
    fused = ensemble.invoke(QUESTION)
    assert "The founder of Veltrano Dynamics is Marisol Okonkwo." in fused[:2]
    assert "Veltrano Dynamics builds autonomous cargo drones." in fused
    assert await ensemble.ainvoke(QUESTION) == fused
    assert [len(b) for b in ours.batch([QUESTION, "Where was Marie Curie born?"])] == [2, 2]
    from langchain_classic.retrievers import EnsembleRetriever

    real = EnsembleRetriever(retrievers=[ours, vector], weights=[0.5, 0.5])
    texts = [d.page_content for d in real.invoke(QUESTION)]
    assert texts[0] == "The founder of Veltrano Dynamics is Marisol Okonkwo."
    assert "Veltrano Dynamics builds autonomous cargo drones." in texts
    assert [d.page_content for d in await real.ainvoke(QUESTION)] == texts


@pytest.mark.slow
async def test_llamaindex_retriever_in_a_query_engine_and_a_fusion_retriever():
    from llama_index.core import SummaryIndex
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.retrievers import QueryFusionRetriever

    kb = KnowledgeBase(DEMO)
    ours = KBLaMLlamaIndexRetriever(kb=kb, similarity_top_k=2)
    nodes = ours.retrieve(QUESTION)
    assert nodes[0].node.metadata["value"] == "Marisol Okonkwo"
    assert [n.node.node_id for n in await ours.aretrieve(QUESTION)] == [n.node.node_id for n in nodes]

    reader = KBLaMLlamaIndexLLM(kb=None, max_new_tokens=16)  # the plain backbone answers from the nodes
    engine = RetrieverQueryEngine.from_args(ours, llm=reader)
    response = engine.query(QUESTION)
    assert [n.node.node_id for n in response.source_nodes] == [n.node.node_id for n in nodes]
    assert isinstance(response.response, str) and response.response.strip()
    aresponse = await engine.aquery(QUESTION)
    assert [n.node.node_id for n in aresponse.source_nodes] == [n.node.node_id for n in nodes]

    notes = SummaryIndex([TextNode(text="Veltrano Dynamics builds autonomous cargo drones.", id_="note-1")])
    fusion = QueryFusionRetriever([ours, notes.as_retriever()], llm=reader, use_async=True, num_queries=1,
                                  similarity_top_k=3)
    fused = await fusion.aretrieve(QUESTION)
    ids = [n.node.node_id for n in fused]
    assert nodes[0].node.node_id in ids and "note-1" in ids
