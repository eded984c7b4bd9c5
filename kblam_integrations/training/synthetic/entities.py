"""The random stream of one generator and what KB entities draw from it: names, words, values."""

from __future__ import annotations

import math
import random
import re
from typing import Callable

from ...kb.triple import Triple
from .. import wordlists as W
from .aliases import PROPERTY_ALIASES
from .frames import (
    _DESCRIPTION_FRAMES,
    _EVENT_KINDS,
    _LANDMARK_FORMS,
    _LANDMARKS,
    _MONTHS,
    _OBJECTIVES_FRAMES,
    _OCCUPATION_FRAMES,
    _PLACE_SUFFIXES,
    _PURPOSE_FRAMES,
    _TITLE_FORMS,
    _VENUES,
)
from .names import _NAME_BUILDERS, _ladder
from .schema import _TYPE_WEIGHTS, ENTITY_TYPES, SPLITS
from .templates import _cap
from .vocabulary import _INVENTORIES, _RESERVED, _SLOT_RE, _hash_split, token_split, tokenize


def _fix_articles(text: str) -> str:
    """"a orchard" -> "an orchard" (the word lists avoid vowel letters with consonant sounds)."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _deletions(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}



class SyntheticEntities:
    """The seeded random stream of one generator and the entities drawn from it.

    Keeps the names used so far (and their one-edit neighbourhoods) so that no name is
    drawn twice; :class:`~.generator.SyntheticKBGenerator` adds KBs and questions on top.
    """

    def __init__(self, split: str = "train", seed: int = 0, property_aliases: float = 0.0):
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(map(repr, SPLITS))}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if (isinstance(property_aliases, bool) or not isinstance(property_aliases, (int, float))
                or not 0.0 <= property_aliases <= 1.0):
            raise ValueError(f"property_aliases must be a rate in [0, 1], got {property_aliases!r}")
        self.split = split
        self.seed = seed
        # Share of triples whose property is written under an alias (PROPERTY_ALIASES);
        # at 0 the generator draws exactly what it drew before aliases existed.
        self.property_aliases = float(property_aliases)
        self.rng = random.Random(f"kblam-synthetic|{split}|{seed}")
        self._inv = _INVENTORIES[split]
        self._used_names: set[str] = set()
        self._name_index: set[str] = set()  # deletion neighbourhoods of used names
        self._coined_used: set[str] = set()
        self._compounds: dict[tuple[tuple[str, ...], tuple[str, ...]], list[str]] = {}
        self._coined_index: set[str] = set()  # deletion neighbourhoods of coined words
        self._name_types: dict[str, str] = {}
        self._all_names: list[str] = []
        self._pools: dict[str, list[str]] = {}
        self._entity_names: set[str] = set()

    # ------------------------------------------------------------------ entities

    def _pick_type(self) -> str:
        types = list(_TYPE_WEIGHTS)
        return self.rng.choices(types, weights=[_TYPE_WEIGHTS[t] for t in types])[0]

    def _entity(self, etype: str, k: int, exclude: set[str] | None = None) -> list[Triple]:
        name = self._new_name(etype, exclude=exclude)
        self._entity_names.add(name)
        props = self.rng.sample(ENTITY_TYPES[etype], k)
        extra = {"entity_type": etype}
        triples = [Triple(name, p, self._value(etype, p), dict(extra)) for p in props]
        if self.property_aliases:
            triples = [self._aliased(t) for t in triples]
        return triples

    def _aliased(self, t: Triple) -> Triple:
        if self.rng.random() >= self.property_aliases:
            return t
        alias = self.rng.choice(PROPERTY_ALIASES[t.property])
        return Triple(t.name, alias, t.value, {**t.extra, "canonical_property": t.property})

    def _ok_text(self, text: str) -> bool:
        return all(token_split(t) in ("shared", self.split) for t in tokenize(text))

    def _new_name(self, kind: str, exclude: set[str] | None = None) -> str:
        build = _NAME_BUILDERS[kind]
        for _ in range(500):
            name = build(self)
            if name in self._used_names or (exclude and name in exclude) or not self._ok_text(name):
                continue
            dels = _deletions(name.lower())
            if dels & self._name_index:
                continue
            self._used_names.add(name)
            self._name_index.update(dels)
            self._name_types[name] = kind
            self._all_names.append(name)
            self._pools.setdefault(kind, []).append(name)
            return name
        raise RuntimeError(f"could not find a new {kind} name: the name space of this generator is exhausted")

    def _ref(self, kind: str, reuse: float = 0.35) -> str:
        """A name mentioned in a value: an existing one of that kind, or a new one."""
        pool = self._pools.get(kind)
        if pool and self.rng.random() < reuse:
            return self.rng.choice(pool)
        return self._new_name(kind)

    # ------------------------------------------------------------------ words

    def _word(self, inv: str) -> tuple[str, ...]:
        return self.rng.choice(self._inv[inv])

    def _coined(self, min_len: int = 4, max_len: int = 11) -> str:
        rng = self.rng
        for attempt in range(2000):
            w = rng.choice(W.SYLLABLE_STARTS)
            if rng.random() < 0.6:
                w += rng.choice(W.SYLLABLE_MIDS)
            w += rng.choice(W.SYLLABLE_ENDS)
            if self._accept_coined(w, min_len, max_len, strict=attempt < 100):
                return w.capitalize()
        raise RuntimeError("could not coin a new word")

    def _compound(self, stems: list[str], heads: list[str]) -> str:
        """A new stem+head word ("Quillmark", "Brackenford"); a coined word once they run out."""
        key = (tuple(stems), tuple(heads))
        queue = self._compounds.get(key)
        if queue is None:
            queue = [s + h for s in stems for h in heads]
            self.rng.shuffle(queue)
            self._compounds[key] = queue
        while queue:
            w = queue.pop()
            if self._accept_coined(w, 4, 14):
                return w.capitalize()
        return self._coined()

    def _accept_coined(self, w: str, min_len: int, max_len: int, strict: bool = True) -> bool:
        """A new coined word of this split; ``strict`` also rejects words one edit from a used one
        (relaxed only once the neighbourhood is crowded: whole names are still kept apart)."""
        if not min_len <= len(w) <= max_len or re.search(r"(.)\1\1", w) or re.search(r"[aeiou]{3}|ii|uu|aa|yy", w):
            return False
        if w in _RESERVED or w in self._coined_used or _hash_split(w) != self.split:
            return False
        dels = _deletions(w)
        if strict and dels & self._coined_index:
            return False
        self._coined_used.add(w)
        self._coined_index.update(dels)
        return True

    def _number(self, make: Callable[[], str]) -> str:
        for _ in range(200):
            text = make()
            if self._ok_text(text):
                return text
        raise RuntimeError("could not draw a number for this split")

    def _year(self, lo: int, hi: int) -> str:
        return self._number(lambda: str(self.rng.randint(lo, hi)))

    def _log_int(self, lo: int, hi: int) -> int:
        return int(math.exp(self.rng.uniform(math.log(lo), math.log(hi))))

    def _date(self, lo: int, hi: int) -> str:
        def make() -> str:
            year, month, day = self.rng.randint(lo, hi), self.rng.choice(_MONTHS), self.rng.randint(1, 28)
            style = self.rng.random()
            if style < 0.45:
                return f"{day} {month} {year}"
            if style < 0.8:
                return f"{month} {day}, {year}"
            return f"{month} {year}"

        return self._number(make)

    def _fill(self, frame: str) -> str:
        used: set[str] = set()

        def pick(inv: str, form: int = 0) -> str:
            for _ in range(20):
                entry = self._word(inv)
                if entry[0] not in used:
                    break
            used.add(entry[0])
            return entry[form]

        def slot(m: re.Match) -> str:
            s = m.group(1)
            if s == "adj":
                return pick("adj")
            if s == "noun":
                return pick("noun", 1)
            if s == "noun_sg":
                return pick("noun", 0)
            if s in ("verb", "Verb"):
                v = pick("verb", 0)
                return _cap(v) if s == "Verb" else v
            if s == "verb_s":
                return pick("verb", 1)
            if s == "verb_ing":
                return pick("verb", 2)
            if s == "verb_pp":
                return pick("verb", 3)
            if s == "people":
                return pick("people", 1)
            if s == "person":
                return pick("people", 0)
            if s == "mod":
                return pick("mod")
            if s == "field":
                return pick("field")
            if s == "place":
                return self._ref("place", reuse=0.5)
            if s == "country":
                return self._ref("country", reuse=0.6)
            if s == "year":
                return self._year(1850, 2035)
            if s == "future":
                return self._year(2025, 2045)
            if s == "num":
                return self._number(lambda: f"{self._log_int(40, 20000):,}")
            if s == "small":
                return str(self.rng.randint(2, 12))
            if s == "pct":
                return self._number(lambda: str(self.rng.randint(5, 90)))
            raise KeyError(s)  # pragma: no cover - frames are fixed

        return _fix_articles(_SLOT_RE.sub(slot, frame))

    def _name_form(self, form: str) -> str:
        """Fill a name pattern: {C} coined, {Adj}/{Noun}/{Nouns}/{Field} listed words, {S} surname, ..."""

        def slot(m: re.Match) -> str:
            s = m.group(1)
            if s == "C":
                return self._coined()
            if s == "Adj":
                return self._word("adj")[0].capitalize()
            if s == "Noun":
                return self._word("noun")[0].capitalize()
            if s == "Nouns":
                return self._word("noun")[1].capitalize()
            if s == "Field":
                return self._word("field")[0].capitalize()
            if s == "S":
                return self._word("surname")[0]
            if s == "PlaceSuffix":
                return self.rng.choice(_PLACE_SUFFIXES)
            if s == "Event":
                return self.rng.choice(_EVENT_KINDS)
            if s == "Landmark":
                return self.rng.choice(_LANDMARKS)
            if s == "place":
                return self._ref("place", reuse=0.6)
            raise KeyError(s)  # pragma: no cover

        return _fix_articles(_SLOT_RE.sub(slot, form))

    # ------------------------------------------------------------------ values

    def _person_list(self) -> str:
        names: list[str] = []
        k = self.rng.randint(2, 4)
        while len(names) < k:
            nm = self._ref("person", reuse=0.3)
            if nm not in names:
                names.append(nm)
        return ", ".join(names[:-1]) + " and " + names[-1]

    def _value(self, etype: str, prop: str) -> str:
        rng = self.rng
        if prop == "description":
            return self._fill(rng.choice(_DESCRIPTION_FRAMES[etype]))
        if prop == "purpose":
            return self._fill(rng.choice(_PURPOSE_FRAMES))
        if prop == "objectives":
            return self._fill(rng.choice(_OBJECTIVES_FRAMES))
        if prop in ("founder", "chief executive", "mayor", "designer"):
            return self._ref("person")
        if prop in ("location", "birthplace"):
            place = self._ref("place", reuse=0.45)
            return f"{place}, {self._ref('country', reuse=0.6)}" if rng.random() < 0.3 else place
        if prop == "founding year":
            lo, hi = {"place": (1150, 1950), "project": (1985, 2024), "event": (1890, 2023)}.get(etype, (1850, 2023))
            return self._year(lo, hi)
        if prop == "year of birth":
            return self._year(1930, 2005)
        if prop == "members":
            if rng.random() < 0.5:
                return self._number(lambda: f"{self._log_int(40, 60000):,}")
            return self._person_list()
        if prop == "product":
            return self._ref("product", reuse=0.15)
        if prop in ("manufacturer", "employer", "sponsor"):
            return self._ref("organisation")
        if prop == "organiser":
            return self._ref("organisation" if rng.random() < 0.7 else "person")
        if prop == "industry":
            return self._word("field")[0]
        if prop == "occupation":
            return self._fill(rng.choice(_OCCUPATION_FRAMES))
        if prop == "notable work":
            r = rng.random()
            if r < 0.5:
                return self._name_form(rng.choice(_TITLE_FORMS))
            return self._ref("product" if r < 0.75 else "project", reuse=0.2)
        if prop == "population":
            return self._number(lambda: f"{self._log_int(300, 3_000_000):,}")
        if prop == "country":
            return self._ref("country", reuse=0.6)
        if prop == "landmark":
            return self._name_form(rng.choice(_LANDMARK_FORMS))
        if prop == "price":
            return self._number(self._price)
        if prop == "weight":
            return self._number(self._weight)
        if prop == "budget":
            return self._number(self._budget)
        if prop == "release date":
            return self._date(1995, 2025)
        if prop == "date":
            return self._date(2019, 2028)
        if prop == "venue":
            return self._name_form(rng.choice(_VENUES))
        if prop == "attendance":
            return self._number(lambda: f"{self._log_int(150, 150_000):,}")
        raise KeyError(prop)  # pragma: no cover - ENTITY_TYPES is fixed

    def _price(self) -> str:
        rng = self.rng
        return _ladder(
            rng.random(),
            (0.3, lambda: f"${self._log_int(5, 3000):,}"),
            (0.55, lambda: f"€{self._log_int(5, 900)}.{rng.choice(['99', '95', '50', '49'])}"),
            (0.8, lambda: f"£{self._log_int(5, 2000):,}"),
            otherwise=lambda: f"{self._log_int(40, 9000):,} credits")

    def _weight(self) -> str:
        rng = self.rng
        return _ladder(
            rng.random(),
            (0.5, lambda: f"{rng.uniform(0.2, 40):.1f} kg"),
            (0.8, lambda: f"{rng.randint(45, 990)} g"),
            otherwise=lambda: f"{rng.uniform(0.5, 60):.1f} pounds")

    def _budget(self) -> str:
        cur = self.rng.choice("$€£")
        if self.rng.random() < 0.5:
            return f"{cur}{self.rng.uniform(0.3, 95):.1f} million"
        return f"{cur}{self.rng.randint(20, 990) * 1000:,}"
