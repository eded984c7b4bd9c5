"""The fixed words around the slots of names and values; their tokens form the shared vocabulary."""

from __future__ import annotations

from typing import Iterable

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

