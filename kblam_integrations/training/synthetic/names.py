"""Name builders, one per entity kind: how a name of that kind is put together."""

from __future__ import annotations

import random
from typing import Callable, Protocol

from .. import wordlists as W
from .frames import (
    _COUNTRY_FORMS,
    _EVENT_FORMS,
    _ORG_SUFFIXES,
    _ORG_THE,
    _PERSON_TITLES,
    _PLACE_PREFIXES,
    _PLACE_SUFFIXES,
    _PRODUCT_CODES,
    _PROJECT_FORMS,
)


class NameParts(Protocol):
    """What a name builder draws from: the generator's random stream and its word makers
    (:class:`~.entities.SyntheticEntities` provides them)."""

    rng: random.Random

    def _word(self, inv: str) -> tuple[str, ...]: ...

    def _coined(self, min_len: int = 4, max_len: int = 11) -> str: ...

    def _compound(self, stems: list[str], heads: list[str]) -> str: ...

    def _name_form(self, form: str) -> str: ...


def _org_name(g: NameParts) -> str:
    rng = g.rng
    r = rng.random()
    if r < 0.35:
        return f"{g._coined()} {rng.choice(_ORG_SUFFIXES)}"
    if r < 0.45:
        a, b = g._word("surname")[0], g._word("surname")[0]
        return f"{a} & {b}" if a != b else f"{a} {rng.choice(_ORG_SUFFIXES)}"
    if r < 0.55:
        return f"{g._word('surname')[0]} {rng.choice(_ORG_SUFFIXES)}"
    if r < 0.7:
        return f"The {g._coined()} {rng.choice(_ORG_THE)}"
    if r < 0.85:
        return f"{g._name_form('{Adj} {Noun}')} {rng.choice(_ORG_SUFFIXES)}"
    if r < 0.93:
        return f"{g._compound(W.PRODUCT_STEMS, ['tek', 'ware', 'works', 'forge', 'field', 'gate'])} {rng.choice(_ORG_SUFFIXES)}"
    return g._coined(6, 11)


def _person_name(g: NameParts) -> str:
    rng = g.rng
    first = g._word("first")[0]
    r = rng.random()
    if r < 0.5:
        return f"{first} {g._word('surname')[0]}"
    if r < 0.65:
        a, b = g._word("surname")[0], g._word("surname")[0]
        return f"{first} {a}-{b}" if a != b else f"{first} {a}"
    if r < 0.75:
        return f"{first} {rng.choice('ABCDEFGHJKLMNPRSTVW')}. {g._word('surname')[0]}"
    if r < 0.85:
        return f"{rng.choice(_PERSON_TITLES)} {first} {g._word('surname')[0]}"
    return f"{first} {g._coined(5, 10)}"


def _place_name(g: NameParts) -> str:
    rng = g.rng
    r = rng.random()
    if r < 0.25:
        return f"{rng.choice(_PLACE_PREFIXES)} {g._coined()}"
    if r < 0.45:
        return g._coined(5, 10)
    if r < 0.65:
        return g._compound(W.PLACE_STEMS, W.PLACE_ENDINGS)
    if r < 0.8:
        return f"{g._coined()} {rng.choice(_PLACE_SUFFIXES)}"
    if r < 0.9:
        return f"{g._name_form('{Adj}')} {rng.choice(_PLACE_SUFFIXES)}"
    return f"{rng.choice(_PLACE_PREFIXES)} {g._compound(W.PLACE_STEMS, W.PLACE_ENDINGS)}"


def _product_name(g: NameParts) -> str:
    rng = g.rng
    r = rng.random()
    if r < 0.35:
        return f"{g._compound(W.PRODUCT_STEMS, W.PRODUCT_HEADS)} {rng.choice(_PRODUCT_CODES)}"
    if r < 0.55:
        return f"{g._coined()} {rng.choice(_PRODUCT_CODES)}"
    if r < 0.75:
        return g._compound(W.PRODUCT_STEMS, W.PRODUCT_HEADS)
    if r < 0.85:
        return f"The {g._coined()}"
    return f"{g._word('adj')[0].capitalize()}{rng.choice(W.PRODUCT_HEADS)} {rng.choice(_PRODUCT_CODES)}"


def _project_name(g: NameParts) -> str:
    return g._name_form(g.rng.choice(_PROJECT_FORMS))


def _event_name(g: NameParts) -> str:
    return g._name_form(g.rng.choice(_EVENT_FORMS))


def _country_name(g: NameParts) -> str:
    return g._name_form(g.rng.choice(_COUNTRY_FORMS))


_NAME_BUILDERS: dict[str, Callable[[NameParts], str]] = {
    "organisation": _org_name,
    "person": _person_name,
    "place": _place_name,
    "product": _product_name,
    "project": _project_name,
    "event": _event_name,
    "country": _country_name,
}

