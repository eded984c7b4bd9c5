"""Helpers over spaCy tokens: clean argument text, conjuncts, children, and phrases."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Sequence

from .vocabulary import _ARTICLES, _KEEP_PUNCT, _MAX_ARG_TOKENS, _NAME_ENTS, _NON_REFERRING, _NUMERIC_ENTS, _POSSESSIVE

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Token


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

