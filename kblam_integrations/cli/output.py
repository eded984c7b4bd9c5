"""How commands print: a rich console, and an answer with the triples it attended to."""

from __future__ import annotations

__all__ = ["console_for", "print_answer"]


def console_for(stderr: bool = False):
    """A rich console on stdout (or stderr, for progress and status lines)."""
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_answer(console, result, top_k: int) -> None:
    """The answer text, then its ``top_k`` attended triples (or why there are none)."""
    from ..console import attended_table

    console.print(result.text or "(empty answer)", markup=False, highlight=False)
    top = result.top_k(top_k)
    if not top and result.triples:
        console.print(f"[dim]no triple outweighed the null token (null score {result.null_score:.3f}): "
                      "the KB does not seem to hold the answer[/]")
    if top:
        rows = [{"score": s.score, "name": s.triple.name, "property": s.triple.property, "value": s.triple.value}
                for s in top]
        console.print(attended_table(rows, title="top attended triples"))
