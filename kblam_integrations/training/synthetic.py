"""Offline synthetic knowledge bases and question/answer pairs for training and evaluating KBLaM.

Everything here is pure Python and seeded: no remote model, no network, no file reads.

* Entities of six types (organisation, person, place, product, project, event) get
  realistic, varied names composed from word lists and syllables ("Veltrano Dynamics",
  "Marisol Okonkwo-Hart", "Port Alvessa", "Quillmark X2", "Project Tessaline",
  "the Hollow Creek Summit"), with near-duplicate names rejected so that key texts
  ("the founder of Veltrano Dynamics") stay distinguishable for a sentence encoder.
* Each type has its own properties (description, purpose, objectives, founder,
  location, founding year, members, product, occupation, population, price, date, ...)
  whose values vary in length and style: names, numbers, dates, phrases, sentences.
* Questions come in four kinds: ``simple`` (many paraphrases per property, natural
  answers containing the value verbatim), ``multi`` (two or three triples in one
  question), ``open`` ("What do you know about ...") and ``unanswerable`` (the entity
  or the property is not in the KB; the answer is exactly :data:`REFUSAL`).
* The train and validation splits are disjoint in entity names *and* value vocabulary:
  every content token (a word from the lists, a coined word, a number) belongs to one
  split through a fixed seeded hash (:func:`token_split`); only the template words in
  :data:`SHARED_VOCABULARY` (function words, name affixes such as "Dynamics" or "Port",
  months, units, numbers up to 31) occur in both.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

from ..kb.triple import Triple
from . import wordlists as W

__all__ = [
    "DEFAULT_MIX", "ENTITY_TYPES", "KINDS", "PROPERTIES", "QAExample", "REFUSAL", "SHARED_VOCABULARY",
    "SPLITS", "SyntheticKBGenerator", "token_split", "tokenize", "write_eval_file",
]

REFUSAL = "I'm sorry, I cannot find that information in the knowledge base."

SPLITS = ("train", "validation")
KINDS = ("simple", "multi", "open", "unanswerable")
DEFAULT_MIX: dict[str, float] = {"simple": 0.6, "multi": 0.1, "open": 0.1, "unanswerable": 0.2}
EVAL_MIX: dict[str, float] = {"simple": 0.6, "open": 0.2, "unanswerable": 0.2}

#: Properties of each entity type (every type has at least 7, the upper bound of
#: ``properties_per_entity``).
ENTITY_TYPES: dict[str, tuple[str, ...]] = {
    "organisation": ("description", "purpose", "objectives", "founder", "location", "founding year", "members",
                     "product", "industry", "chief executive"),
    "person": ("description", "occupation", "birthplace", "employer", "year of birth", "notable work", "location"),
    "place": ("description", "population", "country", "founding year", "founder", "landmark", "mayor"),
    "product": ("description", "purpose", "price", "manufacturer", "release date", "weight", "designer"),
    "project": ("description", "purpose", "objectives", "founder", "location", "founding year", "members", "budget",
                "sponsor"),
    "event": ("description", "purpose", "objectives", "date", "venue", "organiser", "attendance", "founding year"),
}
_TYPE_WEIGHTS = {"organisation": 0.28, "person": 0.2, "place": 0.14, "product": 0.14, "project": 0.12, "event": 0.12}
PROPERTIES: tuple[str, ...] = tuple(sorted({p for props in ENTITY_TYPES.values() for p in props}))
_MAX_PROPERTIES = min(len(p) for p in ENTITY_TYPES.values())
_PLURAL_PROPERTIES = {"objectives", "members"}

# ---------------------------------------------------------------------------------------
# Frames: the fixed words around the slots. Their tokens form the shared vocabulary.
# ---------------------------------------------------------------------------------------

_ORG_SUFFIXES = ["Dynamics", "Labs", "Systems", "Group", "Holdings", "Collective", "Works", "Partners", "Industries",
                 "Analytics", "Studio", "Cooperative", "Technologies", "Ventures", "Associates", "Consortium",
                 "Alliance", "Company", "Outfitters", "Supply"]
_ORG_THE = ["Institute", "Foundation", "Society", "Trust", "Guild", "Academy", "Council", "Fellowship"]
_PERSON_TITLES = ["Dr.", "Prof."]
_PLACE_PREFIXES = ["Port", "New", "Lake", "Mount", "Fort", "Saint", "East", "West", "North", "South", "Upper",
                   "Lower", "Old", "Cape"]
_PLACE_SUFFIXES = ["Falls", "Bay", "Valley", "Heights", "Springs", "Harbour", "Crossing", "Ridge", "Creek", "Point",
                   "Cove", "Hills", "Landing", "Junction"]
_PRODUCT_CODES = ["X2", "S", "Pro", "Max", "Mini", "Air", "Lite", "One", "Neo", "Plus", "Ultra", "II", "III", "500",
                  "3", "7", "GT", "Go", "Flex", "Duo", "Zero", "S4", "X", "Prime", "Nano", "Q7", "V2"]
_PROJECT_FORMS = ["Project {C}", "Operation {C}", "The {C} Initiative", "{C} Programme", "Mission {C}",
                  "Operation {Adj} {Noun}", "The {Adj} {Noun} Project", "Project {Adj} {Noun}"]
_EVENT_KINDS = ["Summit", "Festival", "Conference", "Expo", "Symposium", "Fair", "Marathon", "Regatta", "Forum",
                "Games", "Gathering", "Carnival", "Congress", "Biennale", "Hackathon", "Tournament", "Jamboree",
                "Showcase"]
_EVENT_FORMS = ["the {Adj} {PlaceSuffix} {Event}", "the {C} {Event}", "the Annual {C} {Event}",
                "the International {Field} {Event}", "the {Adj} {Noun} {Event}", "{C} {Event}",
                "the {C} {Field} {Event}"]
_LANDMARKS = ["Bridge", "Tower", "Lighthouse", "Cathedral", "Fountain", "Gate", "Observatory", "Market", "Gardens",
              "Clocktower", "Aqueduct", "Castle", "Museum", "Windmill"]
_VENUES = ["the {C} Arena", "{C} Hall in {place}", "the {S} Convention Centre", "the {Adj} {Noun} Pavilion",
           "the {C} Amphitheatre", "the Exhibition Grounds of {place}", "{C} Stadium", "the Old Opera House in {place}"]
_COUNTRY_FORMS = ["{C}", "{C}", "{C}", "the Republic of {C}", "the {C} Isles", "the Kingdom of {C}",
                  "the Federation of {C}"]
_LANDMARK_FORMS = ["the {C} {Landmark}", "the {Adj} {Landmark}", "the Old {Noun} {Landmark}"]
_TITLE_FORMS = ["The {Adj} {Noun}", "The {Noun} of {C}", "A {Noun} for {C}", "Notes on {Adj} {Nouns}"]

_DESCRIPTION_FRAMES = {
    "organisation": [
        "a {adj} {field} company that {verb_s} {noun} for {people}",
        "a {adj} nonprofit that {verb_s} {adj} {noun} in {place}",
        "a {field} firm from {place} that {verb_s} {adj} {noun}",
        "a small {field} startup best known for its {adj} {noun}",
        "a {adj} trading house that {verb_s} {noun} to {people} across {country}",
        "a family business that has {verb_pp} {noun} since {year}",
    ],
    "person": [
        "a {adj} {person} who {verb_s} {noun} for {people}",
        "a {person} from {place} known for {verb_ing} {adj} {noun}",
        "a retired {person} who now {verb_s} {noun} in {place}",
        "a {adj} {field} specialist and former {person}",
        "a self-taught {person} who spent {small} years {verb_ing} {noun}",
    ],
    "place": [
        "a {adj} town in {country} famous for its {noun}",
        "a {adj} harbour city where {people} {verb} {noun}",
        "a small {adj} village on the edge of {place}",
        "a {adj} mountain settlement known for its {adj} {noun}",
        "a former mining town that now lives from {field}",
    ],
    "product": [
        "a {adj} {noun_sg} that {verb_s} {noun} for {people}",
        "a {adj} device for {verb_ing} {noun}",
        "a {adj}, {adj} {noun_sg} designed for {people}",
        "a subscription service that {verb_s} {adj} {noun} every month",
        "a {field} kit that lets {people} {verb} their own {noun}",
    ],
    "project": [
        "a {adj} research project that {verb_s} {noun} in {place}",
        "a {small}-year programme to {verb} {noun} across {country}",
        "an open effort by {people} to {verb} {adj} {noun}",
        "a {field} study that {verb_s} {noun} together with {people}",
        "a joint venture to {verb} and {verb} {noun} along the coast of {country}",
    ],
    "event": [
        "a {adj} annual gathering where {people} {verb} {noun}",
        "a {field} conference held every spring in {place}",
        "a {adj} festival celebrating {noun} and {noun}",
        "a {adj} competition in which {people} {verb} {adj} {noun}",
        "a weekend fair where {people} show {adj} {noun} to the public",
    ],
}
_PURPOSE_FRAMES = [
    "to {verb} {adj} {noun} for {people}",
    "to help {people} {verb} {noun}",
    "to {verb} and {verb} {noun} in {place}",
    "to make {noun} more {adj} for {people}",
    "to bring {adj} {noun} to {people} in {country}",
    "to show {people} how to {verb} {noun}",
    "to give {people} a place to {verb} {noun}",
]
_OBJECTIVES_FRAMES = [
    "{Verb} {noun} by {pct} percent and {verb} {num} new {noun} before {future}.",
    "The main objectives are to {verb} {noun} and to {verb} {adj} {noun}.",
    "First, {verb} {noun}; second, {verb} {noun}; third, {verb} {adj} {noun}.",
    "{Verb} {adj} {noun} in {small} countries by {future} while {verb_ing} {noun}.",
    "It aims to {verb} {num} {noun}, to train {small} {people} and to {verb} {noun} in {place}.",
    "Reach {num} {people} in {country} and {verb} {adj} {noun} for every one of them.",
]
_OCCUPATION_FRAMES = ["{person}", "{person}", "{mod} {person}"]

_NAME_TEMPLATES_FOR_VOCAB = ["{C} & {S}", "{F} {I}. {S}", "{F} {S}-{S}", "The {C}", "{C} {Code}"]
_VALUE_TEMPLATES_FOR_VOCAB = [
    "{place}, {country}", "{p1}, {p2} and {p3}", "${n}", "€{n}", "£{n}", "{n} credits", "{n} kg", "{n} g",
    "{n} pounds", "${n} million", "€{n} million", "£{n} million",
]

_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]


def _frame_texts() -> Iterable[str]:
    yield from _ORG_SUFFIXES
    yield from _ORG_THE
    yield from _PERSON_TITLES
    yield from _PLACE_PREFIXES
    yield from _PLACE_SUFFIXES
    yield from _PRODUCT_CODES
    yield from _PROJECT_FORMS
    yield from _EVENT_KINDS
    yield from _EVENT_FORMS
    yield from _LANDMARKS
    yield from _VENUES
    yield from _COUNTRY_FORMS
    yield from _LANDMARK_FORMS
    yield from _TITLE_FORMS
    for frames in _DESCRIPTION_FRAMES.values():
        yield from frames
    yield from _PURPOSE_FRAMES
    yield from _OBJECTIVES_FRAMES
    yield from _OCCUPATION_FRAMES
    yield from _NAME_TEMPLATES_FOR_VOCAB
    yield from _VALUE_TEMPLATES_FOR_VOCAB
    yield from _MONTHS


# ---------------------------------------------------------------------------------------
# Tokens and the train/validation partition
# ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+")
_SLOT_RE = re.compile(r"\{(\w+)\}")

PARTITION_SEED = "kblam-synthetic-split-v1"
VALIDATION_FRACTION = 0.25


def tokenize(text: str) -> list[str]:
    """Lower-cased word and number tokens ("$1,299.00" -> ["1,299.00"], "Okonkwo-Hart" -> two)."""
    return _TOKEN_RE.findall(text.lower())


def _hash_split(token: str) -> str:
    digest = hashlib.blake2b(f"{PARTITION_SEED}|{token}".encode("utf-8"), digest_size=8).digest()
    return "validation" if int.from_bytes(digest, "big") % 10_000 < VALIDATION_FRACTION * 10_000 else "train"


def _shared_vocabulary() -> frozenset[str]:
    words: set[str] = set()
    for text in _frame_texts():
        words.update(tokenize(_SLOT_RE.sub(" ", text)))
    words.update(str(i) for i in range(32))  # days of the month and small counts
    words.update("abcdefghijklmnopqrstuvwxyz")  # initials
    return frozenset(words)


#: Tokens allowed in both splits: template words, name affixes, months, units, 0..31, letters.
SHARED_VOCABULARY: frozenset[str] = _shared_vocabulary()


def _plural(noun: str) -> str:
    if noun in W.IRREGULAR_PLURALS:
        return W.IRREGULAR_PLURALS[noun]
    if noun.endswith(("s", "x", "z", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2:-1] not in "aeiou":
        return noun[:-1] + "ies"
    return noun + "s"


_DOUBLING = {"map", "ship", "knit", "spin", "plan"}


def _verb_forms(verb: str) -> tuple[str, str, str, str]:
    """(base, third person, -ing, past participle) for the regular verbs of the word list."""
    if verb.endswith(("s", "x", "z", "ch", "sh")):
        third = verb + "es"
    elif verb.endswith("y") and verb[-2:-1] not in "aeiou":
        third = verb[:-1] + "ies"
    else:
        third = verb + "s"
    irregular_pp = {"build": "built", "grow": "grown", "lend": "lent", "sell": "sold", "sew": "sewn", "spin": "spun",
                    "weave": "woven", "teach": "taught", "rebuild": "rebuilt", "rent": "rented"}
    if verb in _DOUBLING:
        ing, pp = verb + verb[-1] + "ing", verb + verb[-1] + "ed"
    elif verb.endswith("e") and not verb.endswith(("ee", "ye", "oe")):
        ing, pp = verb[:-1] + "ing", verb + "d"
    elif verb.endswith("y") and verb[-2:-1] not in "aeiou":
        ing, pp = verb + "ing", verb[:-1] + "ied"
    else:
        ing, pp = verb + "ing", verb + "ed"
    return verb, third, ing, irregular_pp.get(verb, pp)


def _groups() -> list[tuple[str, tuple[str, ...]]]:
    """Every inventory entry as (inventory, surface forms); the first form decides the split."""
    out: list[tuple[str, tuple[str, ...]]] = []
    out += [("first", (w,)) for w in W.FIRST_NAMES]
    out += [("surname", (w,)) for w in W.SURNAMES]
    out += [("adj", (w,)) for w in W.ADJECTIVES]
    out += [("noun", (w, _plural(w))) for w in W.NOUNS]
    out += [("verb", _verb_forms(w)) for w in W.VERBS]
    out += [("people", (w, _plural(w))) for w in W.PEOPLE]
    out += [("mod", (w,)) for w in W.OCCUPATION_MODIFIERS]
    out += [("field", (w,)) for w in W.FIELDS]
    return out


def _partition():
    groups = _groups()
    claims: dict[str, set[str]] = {}
    for _, forms in groups:
        split = _hash_split(forms[0].lower())
        for f in forms:
            claims.setdefault(f.lower(), set()).add(split)
    inventories: dict[str, dict[str, list[tuple[str, ...]]]] = {s: {} for s in SPLITS}
    token_splits: dict[str, str] = {}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    for inv, forms in groups:
        if (inv, forms) in seen:
            continue
        seen.add((inv, forms))
        toks = [f.lower() for f in forms]
        # drop entries that touch the shared vocabulary or a token claimed by both splits
        if any(t in SHARED_VOCABULARY or len(claims[t]) > 1 for t in toks):
            continue
        split = _hash_split(toks[0])
        inventories[split].setdefault(inv, []).append(forms)
        for t in toks:
            token_splits[t] = split
    reserved = frozenset(claims) | SHARED_VOCABULARY
    return inventories, token_splits, reserved


_INVENTORIES, _TOKEN_SPLITS, _RESERVED = _partition()


def token_split(token: str) -> str:
    """Which split a (lower-cased) token belongs to: ``"train"``, ``"validation"``, ``"shared"``
    (template words), or ``"none"`` (a listed word dropped from both splits)."""
    token = token.lower()
    if token in SHARED_VOCABULARY:
        return "shared"
    if token in _TOKEN_SPLITS:
        return _TOKEN_SPLITS[token]
    if token in _RESERVED:
        return "none"
    return _hash_split(token)


# ---------------------------------------------------------------------------------------
# Questions and answers
# ---------------------------------------------------------------------------------------

_GENERIC_Q = [
    "What {is} the {p} of {n}?",
    "Tell me the {p} of {n}.",
    "Do you know the {p} of {n}?",
    "Could you tell me the {p} of {n}?",
    "I'd like to know the {p} of {n}.",
    "What {is} {n}'s {p}?",
    "Please give me the {p} of {n}.",
    "{N}: what {is} its {p}?",
]
_GENERIC_A = {
    "*": ["The {p} of {n} {is} {v}.", "{N}'s {p} {is} {v}.", "According to the knowledge base, the {p} of {n} {is} {v}."],
    "sentence": ["The {p} of {n}: {v}", "Here {is} the {p} of {n}: {v}", "{N}'s {p} {is} as follows: {v}"],
}
_NO_GENERIC_ANSWER = {"members"}  # "The members of X are 253." reads wrong
_OPEN_Q = [
    "What do you know about the {p} of {n}?",
    "Tell me about the {p} of {n}.",
    "What can you tell me about {n}'s {p}?",
    "Give me some information about the {p} of {n}.",
    "I'm curious about the {p} of {n}. What do you know?",
    "Share what you know regarding the {p} of {n}.",
    "Explain the {p} of {n}.",
    "Could you fill me in on the {p} of {n}?",
]
_OPEN_INTROS = ["Here is what I know.", "Sure.", "Here is what the knowledge base says.", "Certainly.",
                "Good question.", "I can help with that."]

# property -> shape ("*", "count", "sentence", "phrase") -> templates
_Q: dict[str, dict[str, list[str]]] = {
    "description": {"*": ["Can you describe {n}?", "Describe {n}.", "What is {n}?", "Give me a short description of {n}.",
                          "How would you describe {n}?", "What is {n} all about?", "What kind of thing is {n}?"]},
    "purpose": {"*": ["What is the purpose of {n}?", "Why does {n} exist?", "Tell me {n}'s purpose.", "What is {n} for?",
                      "What was {n} set up to do?", "What does {n} aim to do?", "What is {n} meant to achieve?"]},
    "objectives": {"*": ["What are the objectives of {n}?", "What does {n} want to achieve?", "What goals does {n} have?",
                         "List the objectives of {n}.", "What are {n}'s aims?", "What is {n} trying to accomplish?",
                         "What are the main goals of {n}?"]},
    "founder": {"*": ["Who founded {n}?", "Who is the founder of {n}?", "Who started {n}?", "Who set up {n}?",
                      "Who created {n}?", "Who established {n}?", "By whom was {n} founded?"]},
    "location": {"*": ["Where is {n} based?", "Where is {n} located?", "Where can I find {n}?",
                       "In which place is {n} located?", "Where is {n}?", "What is the location of {n}?",
                       "Where does {n} operate from?"]},
    "founding year": {"*": ["When was {n} founded?", "In what year was {n} founded?", "What year was {n} established?",
                            "When did {n} start?", "Which year saw the founding of {n}?", "Since when has {n} existed?",
                            "In which year was {n} established?"]},
    "members": {
        "count": ["How many members does {n} have?", "What is the membership of {n}?",
                  "How large is the membership of {n}?", "How many people belong to {n}?",
                  "What is the size of {n}'s membership?", "How many members are there in {n}?"],
        "phrase": ["Who are the members of {n}?", "Who belongs to {n}?", "Which people are members of {n}?",
                   "Name the members of {n}.", "Who is in {n}?", "Who makes up {n}?"],
    },
    "product": {"*": ["What product does {n} make?", "What is {n}'s main product?", "Which product is {n} known for?",
                      "What does {n} sell?", "Name a product of {n}.", "What is the flagship product of {n}?"]},
    "industry": {"*": ["What industry is {n} in?", "In which sector does {n} work?", "What field does {n} operate in?",
                       "What line of business is {n} in?", "Which industry does {n} belong to?"]},
    "chief executive": {"*": ["Who runs {n}?", "Who is the chief executive of {n}?", "Who leads {n}?",
                              "Who is in charge of {n}?", "Who heads {n}?", "Who is {n}'s CEO?"]},
    "occupation": {"*": ["What does {n} do for a living?", "What is {n}'s job?", "What is the occupation of {n}?",
                         "What does {n} work as?", "What is {n}'s profession?", "How does {n} earn a living?"]},
    "birthplace": {"*": ["Where was {n} born?", "What is the birthplace of {n}?", "Where does {n} come from?",
                         "Where is {n} originally from?", "What is {n}'s place of birth?", "In which place was {n} born?"]},
    "employer": {"*": ["Who does {n} work for?", "Who employs {n}?", "Where does {n} work?", "What is {n}'s employer?",
                       "Which organisation employs {n}?", "Who is {n}'s employer?"]},
    "year of birth": {"*": ["When was {n} born?", "In what year was {n} born?", "What year was {n} born in?",
                            "What is {n}'s year of birth?", "What is the birth year of {n}?",
                            "Which year was {n} born?"]},
    "notable work": {"*": ["What is {n} best known for?", "What is {n}'s most notable work?", "What is {n} famous for?",
                           "Which work made {n} famous?", "Name {n}'s best-known work.",
                           "What is the notable work of {n}?"]},
    "population": {"*": ["How many people live in {n}?", "What is the population of {n}?",
                         "How big is the population of {n}?", "How many inhabitants does {n} have?",
                         "What's {n}'s population?", "How populous is {n}?"]},
    "country": {"*": ["Which country is {n} in?", "In what country is {n}?", "What country does {n} belong to?",
                      "{N} is in which country?", "Which nation is {n} part of?", "In which country can I find {n}?"]},
    "landmark": {"*": ["What is the most famous landmark in {n}?", "What landmark is {n} known for?",
                       "Which landmark should I see in {n}?", "What is {n}'s best-known sight?",
                       "What is the landmark of {n}?", "What should visitors to {n} go and see?"]},
    "mayor": {"*": ["Who is the mayor of {n}?", "Who governs {n}?", "Who is in charge of {n}?", "Who is {n}'s mayor?",
                    "Who leads the local council of {n}?", "Which person is mayor of {n}?"]},
    "price": {"*": ["How much does {n} cost?", "What is the price of {n}?", "How much is {n}?", "What does {n} sell for?",
                    "What's {n}'s price?", "How expensive is {n}?"]},
    "manufacturer": {"*": ["Who makes {n}?", "Who manufactures {n}?", "Which company produces {n}?",
                           "Who is the manufacturer of {n}?", "Who builds {n}?", "What company is behind {n}?"]},
    "release date": {"*": ["When was {n} released?", "When did {n} come out?", "What is the release date of {n}?",
                           "When did {n} launch?", "When was {n} first released?", "When did {n} hit the market?"]},
    "weight": {"*": ["How much does {n} weigh?", "What is the weight of {n}?", "How heavy is {n}?",
                     "What's {n}'s weight?", "How much mass does {n} have?"]},
    "designer": {"*": ["Who designed {n}?", "Who is the designer of {n}?", "Who came up with the design of {n}?",
                       "Whose design is {n}?", "Who is behind the design of {n}?"]},
    "budget": {"*": ["What is the budget of {n}?", "How much funding does {n} have?", "How much money does {n} have?",
                     "What's {n}'s budget?", "How much is {n}'s budget?", "How well funded is {n}?"]},
    "sponsor": {"*": ["Who sponsors {n}?", "Who funds {n}?", "Who is the sponsor of {n}?",
                      "Which organisation backs {n}?", "Who pays for {n}?"]},
    "date": {"*": ["When is {n}?", "When does {n} take place?", "What is the date of {n}?", "On what date is {n} held?",
                   "When will {n} happen?", "When is {n} scheduled?"]},
    "venue": {"*": ["Where is {n} held?", "What is the venue of {n}?", "Where does {n} take place?",
                    "Where will {n} be hosted?", "In which venue is {n}?", "Where do people go for {n}?"]},
    "organiser": {"*": ["Who organises {n}?", "Who is the organiser of {n}?", "Who puts on {n}?", "Who is behind {n}?",
                        "Who is responsible for organising {n}?", "Which group organises {n}?"]},
    "attendance": {"*": ["How many people attend {n}?", "What is the attendance of {n}?",
                         "How many visitors does {n} draw?", "How big is the crowd at {n}?",
                         "How many attendees does {n} have?"]},
}

_A: dict[str, dict[str, list[str]]] = {
    "description": {"phrase": ["{N} is {v}.", "{N} can be described as {v}.", "In short, {n} is {v}.",
                               "Here is a short description: {n} is {v}."],
                    "sentence": ["Here is a description of {n}: {v}", "{N} can be described like this: {v}"]},
    "purpose": {"*": ["The purpose of {n} is {v}.", "{N} exists {v}.", "{N} aims {v}.", "{N}'s purpose is {v}.",
                      "{N} was set up {v}."]},
    "objectives": {"*": ["The objectives of {n} are as follows: {v}", "{N} has these objectives: {v}",
                         "Here are the objectives of {n}: {v}", "{N}'s objectives: {v}"]},
    "founder": {"*": ["The founder of {n} is {v}.", "{N} was founded by {v}.", "{v} founded {n}.",
                      "{N} was started by {v}.", "{v} is the founder of {n}."]},
    "location": {"*": ["{N} is based in {v}.", "{N} is located in {v}.", "The location of {n} is {v}.",
                       "You can find {n} in {v}."]},
    "founding year": {"*": ["{N} was founded in {v}.", "{N} was established in {v}.", "The founding year of {n} is {v}.",
                            "{N} has existed since {v}.", "{N} dates back to {v}."]},
    "members": {"count": ["{N} has {v} members.", "The membership of {n} stands at {v}.",
                          "There are {v} members in {n}.", "{v} people are members of {n}."],
                "phrase": ["The members of {n} are {v}.", "{N}'s members are {v}.", "{v} are members of {n}.",
                           "{N} is made up of {v}."]},
    "product": {"*": ["The main product of {n} is {v}.", "{N} makes {v}.", "{N} is known for {v}.",
                      "{v} is a product of {n}.", "{N}'s product is {v}."]},
    "industry": {"*": ["{N} works in {v}.", "{N} operates in the {v} sector.", "The industry of {n} is {v}.",
                       "{N} belongs to the {v} industry."]},
    "chief executive": {"*": ["{N} is run by {v}.", "The chief executive of {n} is {v}.", "{v} leads {n}.",
                              "{v} is the chief executive of {n}.", "{N} is headed by {v}."]},
    "occupation": {"*": ["{N} works as {a} {v}.", "{N} is {a} {v}.", "The occupation of {n} is {v}.",
                         "By profession, {n} is {a} {v}.", "{N} earns a living as {a} {v}."]},
    "birthplace": {"*": ["{N} was born in {v}.", "The birthplace of {n} is {v}.", "{N} comes from {v}.",
                         "{N} is originally from {v}."]},
    "employer": {"*": ["{N} works for {v}.", "{N} is employed by {v}.", "The employer of {n} is {v}.",
                       "{v} employs {n}."]},
    "year of birth": {"*": ["{N} was born in {v}.", "{N}'s year of birth is {v}.", "The year of birth of {n} is {v}.",
                            "{N} was born in the year {v}."]},
    "notable work": {"*": ["{N} is best known for {v}.", "The notable work of {n} is {v}.",
                           "{N}'s most notable work is {v}.", "{v} is the best-known work of {n}."]},
    "population": {"*": ["{N} has a population of {v}.", "The population of {n} is {v}.", "About {v} people live in {n}.",
                         "{N} is home to {v} people.", "{N} has {v} inhabitants."]},
    "country": {"*": ["{N} is in {v}.", "{N} is located in the country of {v}.", "{N} belongs to {v}.",
                      "The country of {n} is {v}.", "{N} is part of {v}."]},
    "landmark": {"*": ["The best-known landmark in {n} is {v}.", "{N} is known for {v}.",
                       "The landmark of {n} is {v}.", "Visitors to {n} often go to see {v}."]},
    "mayor": {"*": ["The mayor of {n} is {v}.", "{v} is the mayor of {n}.", "{N} is governed by {v}.",
                    "{N}'s mayor is {v}."]},
    "price": {"*": ["{N} costs {v}.", "The price of {n} is {v}.", "{N} sells for {v}.", "{N} is priced at {v}."]},
    "manufacturer": {"*": ["{N} is made by {v}.", "{v} manufactures {n}.", "The manufacturer of {n} is {v}.",
                           "{N} is produced by {v}."]},
    "release date": {"*": ["{N} was released {on} {v}.", "{N} came out {on} {v}.", "The release date of {n} is {v}.",
                           "{N} launched {on} {v}."]},
    "weight": {"*": ["{N} weighs {v}.", "The weight of {n} is {v}.", "{N} has a weight of {v}."]},
    "designer": {"*": ["{N} was designed by {v}.", "The designer of {n} is {v}.", "{v} designed {n}.",
                       "{v} is the designer behind {n}."]},
    "budget": {"*": ["{N} has a budget of {v}.", "The budget of {n} is {v}.", "{N} is funded with {v}.",
                     "{N}'s budget is {v}."]},
    "sponsor": {"*": ["{N} is sponsored by {v}.", "The sponsor of {n} is {v}.", "{v} sponsors {n}.",
                      "{N} is backed by {v}."]},
    "date": {"*": ["{N} takes place {on} {v}.", "The date of {n} is {v}.", "{N} is held {on} {v}.",
                   "{N} is scheduled for {v}."]},
    "venue": {"*": ["{N} is held at {v}.", "The venue of {n} is {v}.", "{N} takes place at {v}.", "{v} hosts {n}."]},
    "organiser": {"*": ["{N} is organised by {v}.", "The organiser of {n} is {v}.", "{v} organises {n}.",
                        "{N} is put on by {v}."]},
    "attendance": {"*": ["{N} draws about {v} visitors.", "The attendance of {n} is {v}.", "Around {v} people attend {n}.",
                         "{N} has {v} attendees."]},
}

_MULTI_SAME = {
    2: ["What are the {p1} and the {p2} of {n}?", "Tell me the {p1} and the {p2} of {n}.",
        "I need two facts about {n}: its {p1} and its {p2}.", "Could you give me both the {p1} and the {p2} of {n}?"],
    3: ["What are the {p1}, the {p2} and the {p3} of {n}?", "Tell me the {p1}, the {p2} and the {p3} of {n}.",
        "I need three facts about {n}: its {p1}, its {p2} and its {p3}."],
}
_MULTI_PREFIX = {2: ["", "", "Two questions: ", "I have a couple of questions. "],
                 3: ["", "", "Three questions: ", "I have a few questions. "]}
_MULTI_JOINERS = [" ", " ", " Also, ", " And "]
_DECAP_WORDS = {"What", "Who", "Where", "When", "How", "Which", "Can", "Could", "Do", "Tell", "Describe", "Give",
                "Please", "In", "List", "Name", "By", "Since", "On", "Why", "Whose", "I'd"}

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


_COUNT_RE = re.compile(r"\d{1,3}(?:,\d{3})*|\d+")


def _shape(value: str) -> str:
    if _COUNT_RE.fullmatch(value):
        return "count"
    if len(value.split()) >= 4 and value[:1].isupper() and value.endswith((".", "!", "?")):
        return "sentence"
    return "phrase"


def _pick_templates(table: Mapping[str, Mapping[str, list[str]]], prop: str, shape: str) -> list[str]:
    by_shape = table.get(prop, {})
    return list(by_shape.get(shape) or by_shape.get("*") or [])


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _decap(question: str) -> str:
    first = question.split(" ", 1)[0]
    if first in _DECAP_WORDS and first != "I'd":
        return question[:1].lower() + question[1:]
    return question


def _render(template: str, name: str, prop: str, value: str | None = None, label: str | None = None) -> str:
    """Fill a template; ``label`` (default ``prop``) is how ``{p}`` names the property."""
    fields = {"n": name, "N": _cap(name), "p": label or prop, "is": "are" if prop in _PLURAL_PROPERTIES else "is"}
    if value is not None:
        fields["v"] = value
        fields["a"] = "an" if value[:1].lower() in "aeiou" else "a"
        fields["on"] = "on" if re.search(r"(?<![\d,.])\d{1,2}(?!\d|[.,]\d)", value) else "in"
    out = template.format(**fields)
    if value is not None and value.endswith((".", "!", "?")) and out.endswith(value + "."):
        out = out[:-1]
    return out


def _value_first_ok(template: str, value: str) -> bool:
    """Templates that open with the value need a value that can start a sentence."""
    return not template.startswith("{v}") or value[:1].isupper() or value[:1].isdigit()


@dataclass(frozen=True)
class QAExample:
    """One question with its target answer.

    ``triples``: the KB triples the question asks about (empty for unanswerable ones).
    ``kind``: ``"simple"``, ``"multi"``, ``"open"`` or ``"unanswerable"``.
    ``asked``: the ``(name, property)`` pairs asked about, also for unanswerable questions
    (whose pairs are not in the KB).
    """

    question: str
    answer: str
    triples: tuple[Triple, ...]
    kind: str
    asked: tuple[tuple[str, str], ...] = ()


# ---------------------------------------------------------------------------------------
# The generator
# ---------------------------------------------------------------------------------------


def _check_int(value, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value


def _fix_articles(text: str) -> str:
    """"a orchard" -> "an orchard" (the word lists avoid vowel letters with consonant sounds)."""
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _deletions(word: str) -> set[str]:
    return {word} | {word[:i] + word[i + 1:] for i in range(len(word))}


class SyntheticKBGenerator:
    """Seeded generator of synthetic KBs and questions for one split.

    Calls on one instance draw from one random stream, so a sequence of calls is
    reproducible from ``(split, seed)``. Names are never reused within an instance: entities
    of :meth:`make_kb`, names mentioned in values, absent entities of unanswerable questions
    and :meth:`distractors` are all distinct (and never within one edit of each other).
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

    # ------------------------------------------------------------------ public API

    def make_kb(self, n_entities: int, properties_per_entity: tuple[int, int] = (2, 5)) -> list[Triple]:
        """``n_entities`` new entities with ``lo..hi`` properties each; (name, property) pairs are unique."""
        _check_int(n_entities, "n_entities")
        lo, hi = self._check_range(properties_per_entity)
        triples: list[Triple] = []
        for _ in range(n_entities):
            triples.extend(self._entity(self._pick_type(), self.rng.randint(lo, hi)))
        return triples

    def distractors(self, n: int, exclude_names: Iterable[str] = frozenset()) -> list[Triple]:
        """``n`` triples about new entities (1-3 properties each) to pad a KB up to a size.

        Their names are not in ``exclude_names`` nor among the names this generator has used
        (so they never answer an unanswerable question it made).
        """
        _check_int(n, "n")
        if isinstance(exclude_names, str):
            raise ValueError("exclude_names must be a collection of names, not a string")
        exclude = set(exclude_names)
        out: list[Triple] = []
        while len(out) < n:
            k = min(self.rng.randint(1, 3), n - len(out))
            out.extend(self._entity(self._pick_type(), k, exclude=exclude))
        return out

    def make_questions(self, kb: list[Triple], n: int, mix: Mapping[str, float] | None = None) -> list[QAExample]:
        """``n`` questions about ``kb``, kinds in the proportions of ``mix`` (exact counts, shuffled).

        Unanswerable questions ask about an entity that is not in ``kb`` or about a property
        that a ``kb`` entity lacks; their answer is :data:`REFUSAL`.
        """
        kb = list(kb)
        for i, t in enumerate(kb):
            if not isinstance(t, Triple):
                raise ValueError(f"kb[{i}] must be a Triple, got {type(t).__name__}")
        _check_int(n, "n")
        counts = self._allocate(self._check_mix(mix), n)
        if not kb and any(counts[k] for k in ("simple", "multi", "open")):
            raise ValueError("kb is empty: only 'unanswerable' questions can be made about it")
        if counts["multi"] and len(kb) < 2:
            raise ValueError("'multi' questions need a kb of at least 2 triples")
        ctx = _KBContext(kb)
        kinds = [k for k in KINDS for _ in range(counts[k])]
        self.rng.shuffle(kinds)
        out = []
        for kind in kinds:
            if kind == "simple":
                out.append(self._simple(self.rng.choice(kb)))
            elif kind == "open":
                out.append(self._open(self._pick_open_triple(kb)))
            elif kind == "multi":
                out.append(self._multi(ctx))
            else:
                out.append(self._unanswerable(ctx))
        return out

    # ------------------------------------------------------------------ checks

    @staticmethod
    def _check_range(r) -> tuple[int, int]:
        if not isinstance(r, (tuple, list)) or len(r) != 2:
            raise ValueError(f"properties_per_entity must be a (low, high) pair, got {r!r}")
        lo, hi = r
        for v in (lo, hi):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"properties_per_entity must hold integers, got {r!r}")
        if not 1 <= lo <= hi <= _MAX_PROPERTIES:
            raise ValueError(f"properties_per_entity must satisfy 1 <= low <= high <= {_MAX_PROPERTIES}, got {r!r}")
        return lo, hi

    @staticmethod
    def _check_mix(mix: Mapping[str, float] | None) -> dict[str, float]:
        if mix is None:
            mix = DEFAULT_MIX
        if not isinstance(mix, Mapping):
            raise ValueError(f"mix must be a mapping of kind -> weight, got {type(mix).__name__}")
        unknown = [k for k in mix if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown question kind(s) in mix: {unknown!r}; expected {list(KINDS)}")
        out = {}
        for k in KINDS:
            v = mix.get(k, 0.0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"mix[{k!r}] must be a finite number >= 0, got {v!r}")
            out[k] = float(v)
        if sum(out.values()) <= 0:
            raise ValueError("mix weights must not all be zero")
        return out

    @staticmethod
    def _allocate(mix: dict[str, float], n: int) -> dict[str, int]:
        total = sum(mix.values())
        exact = {k: n * v / total for k, v in mix.items()}
        counts = {k: int(math.floor(x)) for k, x in exact.items()}
        rest = n - sum(counts.values())
        for k in sorted(KINDS, key=lambda k: (-(exact[k] - counts[k]), KINDS.index(k)))[:rest]:
            counts[k] += 1
        return counts

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
        r = rng.random()
        if r < 0.3:
            return f"${self._log_int(5, 3000):,}"
        if r < 0.55:
            return f"€{self._log_int(5, 900)}.{rng.choice(['99', '95', '50', '49'])}"
        if r < 0.8:
            return f"£{self._log_int(5, 2000):,}"
        return f"{self._log_int(40, 9000):,} credits"

    def _weight(self) -> str:
        r = self.rng.random()
        if r < 0.5:
            return f"{self.rng.uniform(0.2, 40):.1f} kg"
        if r < 0.8:
            return f"{self.rng.randint(45, 990)} g"
        return f"{self.rng.uniform(0.5, 60):.1f} pounds"

    def _budget(self) -> str:
        cur = self.rng.choice("$€£")
        if self.rng.random() < 0.5:
            return f"{cur}{self.rng.uniform(0.3, 95):.1f} million"
        return f"{cur}{self.rng.randint(20, 990) * 1000:,}"

    # ------------------------------------------------------------------ questions

    def _question(self, name: str, prop: str, shape: str, specific_weight: float = 0.7,
                  label: str | None = None) -> str:
        spec = _pick_templates(_Q, prop, shape)
        pool = spec if spec and self.rng.random() < specific_weight else _GENERIC_Q
        return _render(self.rng.choice(pool), name, prop, label=label)

    def _answer(self, t: Triple) -> str:
        shape = _shape(t.value)
        prop = _canonical(t)
        spec = [a for a in _pick_templates(_A, prop, shape) if _value_first_ok(a, t.value)]
        generic = _GENERIC_A["sentence" if shape == "sentence" else "*"]
        use_generic = not spec or (prop not in _NO_GENERIC_ANSWER and self.rng.random() >= 0.8)
        pool = generic if use_generic else spec
        return _render(self.rng.choice(pool), t.name, prop, t.value, label=_label(t))

    def _simple(self, t: Triple) -> QAExample:
        q = self._question(t.name, _canonical(t), _shape(t.value), label=_label(t))
        return QAExample(q, self._answer(t), (t,), "simple", ((t.name, t.property),))

    def _pick_open_triple(self, kb: list[Triple]) -> Triple:
        # prefer the long, free-text properties for open-ended questions
        for _ in range(3):
            t = self.rng.choice(kb)
            if _canonical(t) in ("description", "purpose", "objectives") or _shape(t.value) == "sentence":
                return t
        return self.rng.choice(kb)

    def _open(self, t: Triple) -> QAExample:
        q = _render(self.rng.choice(_OPEN_Q), t.name, _canonical(t), label=_label(t))
        a = self._answer(t)
        if self.rng.random() < 0.75:
            a = f"{self.rng.choice(_OPEN_INTROS)} {a}"
        return QAExample(q, a, (t,), "open", ((t.name, t.property),))

    def _multi(self, ctx: "_KBContext") -> QAExample:
        rng = self.rng
        k = 3 if rng.random() < 0.3 and len(ctx.kb) >= 3 else 2
        triples: list[Triple] | None = None
        same = False
        if rng.random() < 0.5:
            for _ in range(5):
                t = rng.choice(ctx.kb)
                props = ctx.by_name[t.name]
                if len(props) >= k:
                    triples = [props[p] for p in rng.sample(list(props), k)]
                    same = True
                    break
        if triples is None:
            triples = rng.sample(ctx.kb, k)
        if same and rng.random() < 0.5:
            fields = {"n": triples[0].name, **{f"p{i + 1}": _label(t) for i, t in enumerate(triples)}}
            q = _cap(rng.choice(_MULTI_SAME[k]).format(**fields))
        else:
            parts = [self._question(t.name, _canonical(t), _shape(t.value), label=_label(t)) for t in triples]
            q = rng.choice(_MULTI_PREFIX[k]) + parts[0]
            for part in parts[1:]:
                joiner = rng.choice(_MULTI_JOINERS)
                q += joiner + (_decap(part) if joiner.strip() else part)
        a = " ".join(self._answer(t) for t in triples)
        return QAExample(q, a, tuple(triples), "multi", tuple((t.name, t.property) for t in triples))

    def _unanswerable(self, ctx: "_KBContext") -> QAExample:
        rng = self.rng
        name = prop = None
        if ctx.names and rng.random() < 0.5:
            for _ in range(10):
                cand = rng.choice(ctx.names)
                missing = ctx.missing(cand, self._name_types.get(cand))
                if missing:
                    name, prop = cand, rng.choice(missing)
                    break
        if name is None:
            name = self._absent_name(ctx)
            prop = rng.choice(ENTITY_TYPES.get(self._name_types.get(name, ""), PROPERTIES))
        shape = rng.choice(list(_Q.get(prop, {"*": []})))
        if rng.random() < 0.75:
            q = self._question(name, prop, shape)
        else:
            q = _render(rng.choice(_OPEN_Q), name, prop)
        return QAExample(q, REFUSAL, (), "unanswerable", ((name, prop),))

    def _absent_name(self, ctx: "_KBContext") -> str:
        # sometimes a name this generator already used (e.g. only mentioned in a value): a hard negative
        if self._all_names and self.rng.random() < 0.4:
            for _ in range(10):
                cand = self.rng.choice(self._all_names)
                if cand not in ctx.name_set and self._name_types[cand] in ENTITY_TYPES:
                    return cand
        return self._new_name(self._pick_type(), exclude=ctx.name_set)


class _KBContext:
    """Index of a KB for question making: name -> {property: triple}, entity types."""

    def __init__(self, kb: list[Triple]):
        self.kb = kb
        self.by_name: dict[str, dict[str, Triple]] = {}
        self.types: dict[str, str | None] = {}
        for t in kb:  # by canonical property: an aliased triple still answers its property
            self.by_name.setdefault(t.name, {}).setdefault(_canonical(t), t)
            et = t.extra.get("entity_type") if isinstance(t.extra, Mapping) else None
            if et in ENTITY_TYPES:
                self.types.setdefault(t.name, et)
        self.names = list(self.by_name)
        self.name_set = set(self.names)

    def missing(self, name: str, known_type: str | None) -> list[str]:
        present = self.by_name[name]
        etype = self.types.get(name) or known_type
        if etype not in ENTITY_TYPES:
            fits = [e for e, props in ENTITY_TYPES.items() if set(present) <= set(props)]
            etype = fits[0] if fits else None
        candidates = ENTITY_TYPES[etype] if etype else PROPERTIES
        return [p for p in candidates if p not in present]


def _org_name(g: SyntheticKBGenerator) -> str:
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


def _person_name(g: SyntheticKBGenerator) -> str:
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


def _place_name(g: SyntheticKBGenerator) -> str:
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


def _product_name(g: SyntheticKBGenerator) -> str:
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


def _project_name(g: SyntheticKBGenerator) -> str:
    return g._name_form(g.rng.choice(_PROJECT_FORMS))


def _event_name(g: SyntheticKBGenerator) -> str:
    return g._name_form(g.rng.choice(_EVENT_FORMS))


def _country_name(g: SyntheticKBGenerator) -> str:
    return g._name_form(g.rng.choice(_COUNTRY_FORMS))


_NAME_BUILDERS: dict[str, Callable[[SyntheticKBGenerator], str]] = {
    "organisation": _org_name,
    "person": _person_name,
    "place": _place_name,
    "product": _product_name,
    "project": _project_name,
    "event": _event_name,
    "country": _country_name,
}


# ---------------------------------------------------------------------------------------
# Evaluation files
# ---------------------------------------------------------------------------------------


def write_eval_file(path: str | os.PathLike, n_entities: int, n_questions: int, split: str = "validation",
                    seed: int = 0) -> None:
    """Write an evaluation set as JSON.

    Format: ``{"triples": [{"name", "property", "value"}], "questions": [{"q", "name",
    "property", "answer"}]}``. Only single-triple questions (simple and open ones) and
    unanswerable ones are written; ``answer`` is the asked triple's value, or ``null``
    for unanswerable questions (whose ``name``/``property`` are not in ``triples``).
    """
    _check_int(n_entities, "n_entities", minimum=1)
    _check_int(n_questions, "n_questions")
    gen = SyntheticKBGenerator(split=split, seed=seed)
    kb = gen.make_kb(n_entities)
    questions = gen.make_questions(kb, n_questions, mix=EVAL_MIX)
    records = []
    for ex in questions:
        name, prop = ex.asked[0]
        answer = ex.triples[0].value if ex.triples else None
        records.append({"q": ex.question, "name": name, "property": prop, "answer": answer})
    data = {
        "triples": [{"name": t.name, "property": t.property, "value": t.value} for t in kb],
        "questions": records,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
