"""Graph interop: a :class:`KnowledgeBase` to and from the graphs LangChain and LlamaIndex use.

LangChain (``langchain_community.graphs.networkx_graph``; that package is optional and
not needed here):

* :func:`kb_to_knowledge_triples` / ``KnowledgeBase(triples)``: ``KnowledgeTriple(subject,
  predicate, object_)`` named tuples; a triple's ``(name, property, value)`` is
  ``(subject, predicate, object_)``.
* :func:`kb_to_entity_graph` / :func:`kb_from_entity_graph`: the ``networkx.DiGraph`` layout
  of ``NetworkxEntityGraph`` (an edge ``subject -> object_`` with a ``relation`` attribute).
  Wrap it with ``NetworkxEntityGraph(graph=kb_to_entity_graph(kb))``; read one back with
  ``kb_from_entity_graph(entity_graph)`` (its ``get_triples()`` is used, or its graph).

LlamaIndex (``llama_index.core.graph_stores``):

* :func:`kb_to_property_graph` / :func:`kb_from_property_graph`: a
  ``SimplePropertyGraphStore`` of ``EntityNode`` (label ``"entity"``) and ``Relation``
  (label = property; the triple's scalar ``extra`` as relation properties), or any list of
  ``(EntityNode, Relation, EntityNode)`` triplets from a property-graph store.
* :func:`kb_to_triplets` / ``KnowledgeBase(triplets)``: legacy ``(subj, rel, obj)`` tuples.

A ``DiGraph`` holds one edge per ``(subject, object)`` pair, as ``NetworkxEntityGraph``
does: of two triples with the same name and value, the entity graph keeps the last (a
warning says so); the property graph keeps both.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import networkx as nx

from ..errors import KBValidationError
from ..kb.knowledge_base import KnowledgeBase
from ..kb.triple import Triple

logger = logging.getLogger(__name__)

__all__ = ["KnowledgeTriple", "kb_from_entity_graph", "kb_from_property_graph", "kb_to_entity_graph",
           "kb_to_knowledge_triples", "kb_to_property_graph", "kb_to_triplets"]

ENTITY_LABEL = "entity"
_SCALARS = (str, int, float, bool)


class KnowledgeTriple(NamedTuple):
    """Same fields as ``langchain_community.graphs.networkx_graph.KnowledgeTriple`` (interchangeable)."""

    subject: str
    predicate: str
    object_: str


def _triples(kb: KnowledgeBase | Iterable[Any]) -> tuple[Triple, ...]:
    if isinstance(kb, KnowledgeBase):
        return kb.snapshot()[1]
    return tuple(KnowledgeBase._coerce(t, i) for i, t in enumerate(kb))


# ----------------------------------------------------------------- LangChain
def kb_to_knowledge_triples(kb: KnowledgeBase | Iterable[Any]) -> list[KnowledgeTriple]:
    """``KnowledgeTriple(name, property, value)`` per triple; ``KnowledgeBase(triples)`` reads them back."""
    return [KnowledgeTriple(t.name, t.property, t.value) for t in _triples(kb)]


def kb_to_entity_graph(kb: KnowledgeBase | Iterable[Any]) -> nx.DiGraph:
    """A ``networkx.DiGraph`` in ``NetworkxEntityGraph``'s layout: ``name -> value`` with ``relation=property``."""
    graph = nx.DiGraph()
    lost = 0
    for t in _triples(kb):
        if graph.has_edge(t.name, t.value):
            lost += 1
        graph.add_edge(t.name, t.value, relation=t.property)
    if lost:
        logger.warning("%d triple(s) share a (name, value) pair with another: an entity graph keeps one edge per "
                       "pair (use kb_to_property_graph to keep them all)", lost)
    return graph


def kb_from_entity_graph(graph: Any, *, on_duplicate: str = "ignore") -> KnowledgeBase:
    """A KB from a ``NetworkxEntityGraph`` (``get_triples()`` gives ``(subject, object, relation)``) or
    a networkx graph whose edges carry ``relation`` (or ``property``, as a KB's own graph does)."""
    if hasattr(graph, "get_triples") and callable(graph.get_triples):
        rows = [(s, rel, o) for s, o, rel in graph.get_triples()]
    elif isinstance(graph, nx.Graph):
        rows = []
        for i, (s, o, data) in enumerate(graph.edges(data=True)):
            rel = data.get("relation", data.get("property"))
            if not isinstance(rel, str):
                raise KBValidationError("graph edge without a 'relation' (or 'property') string",
                                        record=f"edge #{i} {s!r} -> {o!r}", field="relation")
            rows.append((s, rel, o))
    else:
        raise KBValidationError(f"expected a NetworkxEntityGraph or a networkx graph, got {type(graph).__name__}",
                                field="graph")
    return KnowledgeBase([(str(s), rel, str(o)) for s, rel, o in rows], on_duplicate=on_duplicate)  # type: ignore[arg-type]


# ---------------------------------------------------------------- LlamaIndex
def kb_to_triplets(kb: KnowledgeBase | Iterable[Any]) -> list[tuple[str, str, str]]:
    """Legacy LlamaIndex KG triplets ``(subj, rel, obj)``; ``KnowledgeBase(triplets)`` reads them back."""
    return [(t.name, t.property, t.value) for t in _triples(kb)]


def kb_to_property_graph(kb: KnowledgeBase | Iterable[Any], store: Any = None) -> Any:
    """Upsert the KB into a LlamaIndex property-graph store (a new ``SimplePropertyGraphStore`` by default).

    Entities and values become ``EntityNode(name=..., label="entity")``; each triple a
    ``Relation(label=property, source_id=name, target_id=value, properties=<scalar extra>)``.
    """
    from .._optional import require

    require("llama_index.core", extra="llamaindex", feature="LlamaIndex property graphs")
    from llama_index.core.graph_stores import SimplePropertyGraphStore
    from llama_index.core.graph_stores.types import EntityNode, Relation

    store = store if store is not None else SimplePropertyGraphStore()
    triples = _triples(kb)
    nodes: dict[str, Any] = {}
    relations = []
    for t in triples:
        for name in (t.name, t.value):
            if name not in nodes:
                nodes[name] = EntityNode(name=name, label=ENTITY_LABEL)
        props = {k: v for k, v in t.extra.items() if isinstance(v, _SCALARS)}
        relations.append(Relation(label=t.property, source_id=nodes[t.name].id, target_id=nodes[t.value].id,
                                  properties=props))
    store.upsert_nodes(list(nodes.values()))
    store.upsert_relations(relations)
    return store


def kb_from_property_graph(store_or_triplets: Any, *, on_duplicate: str = "ignore") -> KnowledgeBase:
    """A KB from a ``SimplePropertyGraphStore`` (every triplet) or ``(node, Relation, node)`` triplets
    (e.g. ``store.get_triplets(entity_names=[...])`` of any property-graph store).

    The relation's label is the property, the nodes' names are the name and value, and the
    relation's properties become the triple's ``extra``.
    """
    graph = getattr(store_or_triplets, "graph", None)
    if graph is not None and callable(getattr(graph, "get_triplets", None)):
        triplets = graph.get_triplets()
    elif isinstance(store_or_triplets, Iterable) and not isinstance(store_or_triplets, (str, bytes, Mapping)):
        triplets = list(store_or_triplets)
    else:
        raise KBValidationError("expected a SimplePropertyGraphStore or a list of (node, Relation, node) triplets, "
                                f"got {type(store_or_triplets).__name__}", field="store")
    triples = []
    for i, item in enumerate(triplets):
        try:
            source, relation, target = item
        except (TypeError, ValueError):
            raise KBValidationError("a triplet must be (node, relation, node)", record=f"#{i}") from None
        if isinstance(relation, str):  # plain (subj, rel, obj) strings
            triples.append(KnowledgeBase._coerce((source, relation, target), i))
            continue
        label = getattr(relation, "label", None)
        if not isinstance(label, str):
            raise KBValidationError("relation without a string label", record=f"#{i}", field="label")
        extra = {k: v for k, v in (getattr(relation, "properties", None) or {}).items()
                 if isinstance(k, str) and k not in ("name", "property", "value", "id")}
        triples.append(Triple(_node_name(source, i), label, _node_name(target, i), extra))
    return KnowledgeBase(triples, on_duplicate=on_duplicate)  # type: ignore[arg-type]


def _node_name(node: Any, index: int) -> str:
    if isinstance(node, str):
        return node
    name = getattr(node, "name", None)  # EntityNode
    if isinstance(name, str):
        return name
    text = getattr(node, "text", None)  # ChunkNode
    if isinstance(text, str):
        return text
    raise KBValidationError(f"cannot name a graph node of type {type(node).__name__}", record=f"#{index}",
                            field="name")
