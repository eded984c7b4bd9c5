"""Question and answer templates, by property and value shape, and how they are filled."""

from __future__ import annotations

import re
from typing import Mapping

from .schema import _PLURAL_PROPERTIES

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

