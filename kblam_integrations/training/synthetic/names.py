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


def _ladder(r: float, *steps: tuple[float, Callable[[], str]], otherwise: Callable[[], str]) -> str:
    """One draw ``r`` picks a branch: the first step whose bound ``r`` is under, else
    ``otherwise``; only the picked branch is made (and draws from the random stream)."""
    for bound, make in steps:
        if r < bound:
            return make()
    return otherwise()


def _org_name(g: NameParts) -> str:
    rng = g.rng

    def surname_pair() -> str:
        a, b = g._word("surname")[0], g._word("surname")[0]
        return f"{a} & {b}" if a != b else f"{a} {rng.choice(_ORG_SUFFIXES)}"

    return _ladder(
        rng.random(),
        (0.35, lambda: f"{g._coined()} {rng.choice(_ORG_SUFFIXES)}"),
        (0.45, surname_pair),
        (0.55, lambda: f"{g._word('surname')[0]} {rng.choice(_ORG_SUFFIXES)}"),
        (0.7, lambda: f"The {g._coined()} {rng.choice(_ORG_THE)}"),
        (0.85, lambda: f"{g._name_form('{Adj} {Noun}')} {rng.choice(_ORG_SUFFIXES)}"),
        (0.93, lambda: f"{g._compound(W.PRODUCT_STEMS, ['tek', 'ware', 'works', 'forge', 'field', 'gate'])} "
                       f"{rng.choice(_ORG_SUFFIXES)}"),
        otherwise=lambda: g._coined(6, 11))


def _person_name(g: NameParts) -> str:
    rng = g.rng
    first = g._word("first")[0]

    def double_surname() -> str:
        a, b = g._word("surname")[0], g._word("surname")[0]
        return f"{first} {a}-{b}" if a != b else f"{first} {a}"

    return _ladder(
        rng.random(),
        (0.5, lambda: f"{first} {g._word('surname')[0]}"),
        (0.65, double_surname),
        (0.75, lambda: f"{first} {rng.choice('ABCDEFGHJKLMNPRSTVW')}. {g._word('surname')[0]}"),
        (0.85, lambda: f"{rng.choice(_PERSON_TITLES)} {first} {g._word('surname')[0]}"),
        otherwise=lambda: f"{first} {g._coined(5, 10)}")


def _place_name(g: NameParts) -> str:
    rng = g.rng
    return _ladder(
        rng.random(),
        (0.25, lambda: f"{rng.choice(_PLACE_PREFIXES)} {g._coined()}"),
        (0.45, lambda: g._coined(5, 10)),
        (0.65, lambda: g._compound(W.PLACE_STEMS, W.PLACE_ENDINGS)),
        (0.8, lambda: f"{g._coined()} {rng.choice(_PLACE_SUFFIXES)}"),
        (0.9, lambda: f"{g._name_form('{Adj}')} {rng.choice(_PLACE_SUFFIXES)}"),
        otherwise=lambda: f"{rng.choice(_PLACE_PREFIXES)} {g._compound(W.PLACE_STEMS, W.PLACE_ENDINGS)}")


def _product_name(g: NameParts) -> str:
    rng = g.rng
    return _ladder(
        rng.random(),
        (0.35, lambda: f"{g._compound(W.PRODUCT_STEMS, W.PRODUCT_HEADS)} {rng.choice(_PRODUCT_CODES)}"),
        (0.55, lambda: f"{g._coined()} {rng.choice(_PRODUCT_CODES)}"),
        (0.75, lambda: g._compound(W.PRODUCT_STEMS, W.PRODUCT_HEADS)),
        (0.85, lambda: f"The {g._coined()}"),
        otherwise=lambda: f"{g._word('adj')[0].capitalize()}{rng.choice(W.PRODUCT_HEADS)} {rng.choice(_PRODUCT_CODES)}")


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

