"""Rich tables of triples, shared by the demo and the command line (rich is imported lazily)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from .kb.triple import Triple

__all__ = ["attended_table", "triples_table"]


def triples_table(kb: "Iterable[Triple]", title: str | None = None, limit: int | None = None):
    """A rich table of the triples of ``kb`` (a ``KnowledgeBase`` or any iterable of triples)."""
    from rich.table import Table

    table = Table(title=title, show_lines=False, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("name", style="cyan")
    table.add_column("property", style="magenta")
    table.add_column("value", style="green")
    for i, t in enumerate(kb):
        if limit is not None and i >= limit:
            break
        table.add_row(str(i + 1), t.name, t.property, t.value)
    return table


def attended_table(attended: Sequence[dict[str, Any]], title: str | None = None):
    """A rich table of attended triples given as ``{score, name, property, value}`` records."""
    from rich.table import Table

    table = Table(title=title, header_style="bold", title_justify="left")
    table.add_column("score", justify="right")
    table.add_column("name", style="cyan")
    table.add_column("property", style="magenta")
    table.add_column("value", style="green")
    for a in attended:
        table.add_row(f"{float(a.get('score', 0.0)):.3f}", str(a.get("name", "")), str(a.get("property", "")),
                      str(a.get("value", "")))
    return table
