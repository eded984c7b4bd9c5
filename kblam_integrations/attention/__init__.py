"""Rectangular attention: prompt tokens attend to knowledge tokens + their causal prefix."""

from .context import KBAttentionRecord, KBContext, active_kb, use_kb
from .injection import KBLAM_ATTENTION, inject_kb_attention
from .rectangular import rectangular_attention

__all__ = [
    "KBAttentionRecord", "KBContext", "KBLAM_ATTENTION", "active_kb", "inject_kb_attention",
    "rectangular_attention", "use_kb",
]
