"""The extraction rules over one sentence's dependency tree (see the package docstring)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Sequence

from .doc_state import _Arg, _DocState
from .tree import (
    _child,
    _clean_arg,
    _clean_property,
    _conjuncts,
    _is_numeric,
    _is_proper,
    _is_role,
    _phrase,
    _phrase_tokens,
    _pobjs,
    _role_appositions,
    _separated,
    _singular,
    _tokens_text,
)
from .vocabulary import (
    _BAD_ARGUMENTS,
    _CONDITIONAL_MARKS,
    _DIMENSIONS,
    _DIRECTIONAL,
    _KEEP_PUNCT,
    _LIGHT_NOUNS,
    _LIGHT_VERBS,
    _LINKING,
    _LOCATIVE,
    _MAX_ARG_TOKENS,
    _MODALS,
    _NON_REFERRING,
    _NUMERIC_ENTS,
    _ORG_HEADS,
    _PERSONAL,
    _POSSESSIVE,
    _SUBJ,
)

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Span, Token


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

