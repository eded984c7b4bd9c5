"""Tokens and the train/validation partition: every content token belongs to one split through
a fixed seeded hash, so the two splits never share an entity name or a value word."""

from __future__ import annotations

import hashlib
import re

from .. import wordlists as W
from .frames import _frame_texts
from .schema import SPLITS

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

