"""Baselines that KBLaM is measured against (see ``docs/benchmarks/index.md``)."""

from .rag import FaissRAG, calibrate_rag_refusal

__all__ = ["FaissRAG", "calibrate_rag_refusal"]
