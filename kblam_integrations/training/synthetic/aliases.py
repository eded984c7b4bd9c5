"""Other names of each property, and which name a triple's question may use."""

from __future__ import annotations

from typing import Mapping

from ...kb.triple import Triple
from .schema import ENTITY_TYPES, PROPERTIES

#: Other names of each property, as extraction or a hand-made KB might label it: the
#: generator's ``property_aliases`` rate writes a triple's property under one of these
#: (the key text becomes "the based in of X"), while its questions keep the natural
#: wording of the canonical property, so the query head learns to match a question to
#: a key whose property is phrased differently. "Noun" aliases can also stand in a
#: question ("What is the home base of X?"); "relation" aliases (extracted verb phrases
#: such as "founded by") never do. None of them is a property of the hand-written eval
#: set (tests/data/handwritten_kb.json), which stays a held-out measure.
_ALIAS_NOUNS: dict[str, tuple[str, ...]] = {
    "description": ("summary", "overview", "profile"),
    "purpose": ("mission", "aim", "raison d'etre"),
    "objectives": ("goals", "aims", "targets"),
    "founder": ("creator", "co-founder", "originator"),
    "location": ("home base", "seat", "main office", "whereabouts"),
    "founding year": ("year founded", "year of establishment", "inception"),
    "members": ("membership", "member count"),
    "product": ("flagship product", "main product", "best-known product"),
    "industry": ("sector", "line of business", "business area"),
    "chief executive": ("CEO", "boss", "managing director"),
    "occupation": ("job", "profession", "trade"),
    "birthplace": ("place of birth", "hometown", "native town"),
    "employer": ("workplace", "company", "firm"),
    "year of birth": ("birth year", "year born"),
    "notable work": ("best-known work", "masterpiece", "claim to fame"),
    "population": ("inhabitants", "number of residents", "head count"),
    "country": ("nation", "home country", "state"),
    "landmark": ("main sight", "best-known sight", "attraction"),
    "mayor": ("town head", "head of council", "civic leader"),
    "price": ("cost", "retail price", "price tag"),
    "manufacturer": ("maker", "brand", "producer"),
    "release date": ("launch date", "date of release", "debut"),
    "weight": ("mass", "heft"),
    "designer": ("design lead", "design author"),
    "budget": ("funding", "total funds", "money"),
    "sponsor": ("backer", "patron", "funder"),
    "date": ("scheduled date", "day", "calendar date"),
    "venue": ("host venue", "setting", "site"),
    "organiser": ("organizer", "host", "promoter"),
    "attendance": ("visitors", "attendees", "turnout"),
}
_ALIAS_RELATIONS: dict[str, tuple[str, ...]] = {
    "founder": ("founded by", "started by", "established by"),
    "location": ("based in", "located in", "operates from"),
    "founding year": ("founded in", "established in"),
    "product": ("makes", "produces", "sells"),
    "industry": ("works in", "active in"),
    "chief executive": ("led by", "run by", "headed by"),
    "occupation": ("works as", "is a"),
    "birthplace": ("born in", "comes from"),
    "employer": ("works for", "employed by"),
    "year of birth": ("born in year",),
    "notable work": ("known for", "famous for"),
    "population": ("population of", "home to"),
    "country": ("lies in", "part of"),
    "landmark": ("known for landmark",),
    "mayor": ("governed by", "mayor is"),
    "price": ("sells for", "priced at", "costs"),
    "manufacturer": ("made by", "produced by", "built by"),
    "release date": ("released on", "launched on", "came out"),
    "weight": ("weighs",),
    "designer": ("designed by", "created by"),
    "budget": ("funded with",),
    "sponsor": ("sponsored by", "funded by", "backed by"),
    "date": ("held on", "takes place on", "scheduled for"),
    "venue": ("held at", "hosted at", "takes place at"),
    "organiser": ("organised by", "run by", "hosted by"),
    "attendance": ("draws", "attended by"),
}
PROPERTY_ALIASES: dict[str, tuple[str, ...]] = {
    p: _ALIAS_NOUNS.get(p, ()) + _ALIAS_RELATIONS.get(p, ()) for p in PROPERTIES}


def _check_aliases() -> None:
    """An entity never gets two properties with one name: aliases are unique within a type."""
    for etype, props in ENTITY_TYPES.items():
        seen = set(props)
        for p in props:
            for a in PROPERTY_ALIASES[p]:
                if a in seen:
                    raise AssertionError(f"alias {a!r} of {p!r} clashes within {etype!r}")
                seen.add(a)


_check_aliases()


def _canonical(t: Triple) -> str:
    """The generator's own property of ``t`` (its alias, if any, is ``t.property``)."""
    extra = t.extra if isinstance(t.extra, Mapping) else {}
    return extra.get("canonical_property", t.property)


def _label(t: Triple) -> str:
    """How a question may name ``t``'s property: its noun alias, else the canonical name."""
    canonical = _canonical(t)
    return t.property if t.property in _ALIAS_NOUNS.get(canonical, ()) else canonical

