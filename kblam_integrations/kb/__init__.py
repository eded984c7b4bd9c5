"""Knowledge bases: triples, the networkx-backed store, persistence, extraction, loaders."""

from .knowledge_base import KBChange, KnowledgeBase
from .triple import Triple, triple_id

__all__ = ["KBChange", "KnowledgeBase", "Triple", "triple_id"]
