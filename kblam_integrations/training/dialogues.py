"""Synthetic conversations over a KB: follow-ups that only make sense with the history.

A retriever given the last message alone cannot answer "And its founder?"; KBLaM's KB
query reads the whole chat prompt, so it can. These dialogues measure that (and train
it): each starts with a question that names an entity, then asks follow-ups that do
not — a pronoun ("What is its budget?"), an ellipsis ("And the venue?"), a property the
entity lacks (the answer is a refusal) — and may switch to another entity and back.
Two-fact questions ask about two properties of one entity in one turn.

History turns carry the reference answer (teacher-forced), so every turn is judged on
its own. Names come from the generator's split, so validation dialogues never reuse a
name the adapters were trained on.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import KBFormatError
from ..kb.atomic_files import atomic_write_text
from ..kb.triple import Triple
from .synthetic import REFUSAL, SyntheticKBGenerator
from .synthetic.aliases import _label
from .synthetic.templates import _cap

FOLLOW_UP_KINDS = ("pronoun", "ellipsis", "switch_back", "absent")

_PRONOUN = ["What is {its} {p}?", "And what about {its} {p}?", "Tell me {its} {p}.", "And {its} {p}?",
            "Do you know {its} {p} too?", "What's {its} {p}, then?"]
_ELLIPSIS = ["And the {p}?", "What about the {p}?", "The {p}?", "How about the {p}?", "And what about the {p}?"]
_SWITCH_BACK = ["Going back to {n}, what is {its} {p}?", "Back to {n}: what is {its} {p}?",
                "And {n}'s {p}?", "One more about {n}: its {p}?"]
_TWO_FACT = ["What are the {p1} and the {p2} of {n}?", "Tell me the {p1} and the {p2} of {n}.",
             "I need two facts about {n}: {its} {p1} and {its} {p2}.",
             "Could you give me both the {p1} and the {p2} of {n}?"]


@dataclass
class Turn:
    """One user turn: what it asks (``asked``: (name, property) pairs) and the expected values
    (None: the KB cannot answer, the reference answer is the refusal)."""

    user: str
    kind: str
    asked: list[tuple[str, str]]
    values: list[str] | None
    reference: str = ""


@dataclass
class Dialogue:
    turns: list[Turn] = field(default_factory=list)

    def messages(self, upto: int) -> list[dict[str, str]]:
        """Chat messages for turn ``upto``: the earlier turns with their reference answers, then its question."""
        msgs: list[dict[str, str]] = []
        for t in self.turns[:upto]:
            msgs += [{"role": "user", "content": t.user}, {"role": "assistant", "content": t.reference}]
        msgs.append({"role": "user", "content": self.turns[upto].user})
        return msgs


class DialogueGenerator:
    """Dialogues about a KB made by :class:`SyntheticKBGenerator` (same split and seed)."""

    def __init__(self, split: str = "validation", seed: int = 0):
        self.gen = SyntheticKBGenerator(split=split, seed=seed)
        self.rng = self.gen.rng

    def _its(self, name: str) -> str:
        return "their" if self.gen._name_types.get(name) == "person" else "its"

    def _answer(self, t: Triple) -> str:
        return self.gen._answer(t)

    def make(self, n_entities: int, n_dialogues: int, two_fact: int) -> tuple[list[Triple], list[Dialogue]]:
        """A KB of ``n_entities`` entities, ``n_dialogues`` follow-up dialogues and ``two_fact`` two-fact turns."""
        kb = self.gen.make_kb(n_entities, properties_per_entity=(3, 5))
        by_name: dict[str, dict[str, Triple]] = {}
        for t in kb:
            by_name.setdefault(t.name, {})[t.property] = t
        names = [n for n, props in by_name.items() if len(props) >= 3]
        from .synthetic import ENTITY_TYPES, PROPERTIES

        dialogues = []
        for i in range(n_dialogues):
            a, b = self.rng.sample(names, 2)
            props = list(by_name[a].values())
            self.rng.shuffle(props)
            first = props[0]
            d = Dialogue([Turn(self.gen._question(a, _label(first), "*"), "first", [(a, first.property)],
                               [first.value], self._answer(first))])
            kind = FOLLOW_UP_KINDS[i % len(FOLLOW_UP_KINDS)]
            its = self._its(a)
            if kind in ("pronoun", "ellipsis"):
                t = props[1]
                tpl = _PRONOUN if kind == "pronoun" else _ELLIPSIS
                q = _cap(self.rng.choice(tpl).format(its=its, p=_label(t)))
                d.turns.append(Turn(q, kind, [(a, t.property)], [t.value], self._answer(t)))
            elif kind == "absent":
                etype = self.gen._name_types.get(a)
                missing = [p for p in ENTITY_TYPES.get(etype, PROPERTIES) if p not in by_name[a]]
                if not missing:
                    missing = [p for p in PROPERTIES if p not in by_name[a]]
                p = self.rng.choice(missing)
                tpl = self.rng.choice(_PRONOUN + _ELLIPSIS)
                q = _cap(tpl.format(its=its, p=p))
                d.turns.append(Turn(q, kind, [(a, p)], None, REFUSAL))
            else:  # another entity, then back to the first one
                other = self.rng.choice(list(by_name[b].values()))
                d.turns.append(Turn(self.gen._question(b, _label(other), "*"), "other", [(b, other.property)],
                                    [other.value], self._answer(other)))
                t = props[1]
                q = _cap(self.rng.choice(_SWITCH_BACK).format(n=a, its=its, p=_label(t)))
                d.turns.append(Turn(q, kind, [(a, t.property)], [t.value], self._answer(t)))
            dialogues.append(d)
        for _ in range(two_fact):
            a = self.rng.choice(names)
            t1, t2 = self.rng.sample(list(by_name[a].values()), 2)
            q = _cap(self.rng.choice(_TWO_FACT).format(n=a, its=self._its(a), p1=_label(t1), p2=_label(t2)))
            ref = f"{self._answer(t1)} {self._answer(t2)}"
            dialogues.append(Dialogue([Turn(q, "two_fact", [(a, t1.property), (a, t2.property)],
                                            [t1.value, t2.value], ref)]))
        return kb, dialogues


def write_dialogue_file(path: str | os.PathLike, n_entities: int, n_dialogues: int, two_fact: int,
                        split: str = "validation", seed: int = 0) -> None:
    """Write ``{"triples": [...], "dialogues": [{"turns": [...]}]}`` as JSON (atomically)."""
    kb, dialogues = DialogueGenerator(split, seed).make(n_entities, n_dialogues, two_fact)
    data = {"triples": [{"name": t.name, "property": t.property, "value": t.value} for t in kb],
            "dialogues": [{"turns": [{"user": t.user, "kind": t.kind, "asked": [list(x) for x in t.asked],
                                      "values": t.values, "reference": t.reference} for t in d.turns]}
                          for d in dialogues]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")


def load_dialogue_file(path: str | os.PathLike) -> tuple[list[Triple], list[Dialogue]]:
    """Read a dialogue file (typed errors name the record and field)."""
    from .evaluate import read_kb_json

    path = Path(path)
    triples, records = read_kb_json(path, "dialogues", "dialogue")
    dialogues = []
    for i, d in enumerate(records):
        turns = d.get("turns") if isinstance(d, dict) else None
        if not isinstance(turns, list) or not turns:
            raise KBFormatError("a dialogue needs a non-empty 'turns' list", path=path, record=f"dialogue #{i}")
        out = []
        for j, t in enumerate(turns):
            rec = f"dialogue #{i} turn #{j}"
            if not isinstance(t, dict) or not isinstance(t.get("user"), str) or not t["user"].strip():
                raise KBFormatError("missing or empty string", path=path, record=rec, field="user")
            values = t.get("values")
            if values is not None and not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
                raise KBFormatError("values must be a list of strings or null", path=path, record=rec, field="values")
            asked = [tuple(x) for x in t.get("asked", [])]
            out.append(Turn(t["user"], str(t.get("kind", "")), asked, values, str(t.get("reference", ""))))
        dialogues.append(Dialogue(out))
    return triples, dialogues


def evaluate_dialogues(model, triples: list[Triple], dialogues: list[Dialogue], *, kb_size: int, mode: str,
                       seed: int = 0, max_new_tokens: int = 48, answer=None, progress: bool = False,
                       generate: bool = True) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Answer every follow-up / two-fact turn with its history; accuracy per kind, refusals.

    Each dialogue is asked against a KB of ``kb_size`` triples: the triples it asks about
    plus others of the file and validation-split distractors (as :func:`.evaluate.evaluate`
    builds them). ``answer(messages, kb_triples) -> (text, refused, top_triple)`` replaces
    the model's own ``generate`` (used for the RAG baselines); by default the model answers
    in ``mode``. A turn is right when every expected value is in the answer (the project's
    answer rule) and it is not a refusal.
    """
    import random

    from tqdm.auto import tqdm

    from .evaluate import answer_is_correct, is_refusal

    rng = random.Random(seed)
    index = {(t.name, t.property): t for t in triples}
    names = {t.name for t in triples}
    pool = SyntheticKBGenerator(split="validation", seed=seed + 7919).distractors(kb_size, exclude_names=names)
    records = []
    for d in tqdm(dialogues, disable=not progress, desc=f"dialogues kb={kb_size} {mode}"):
        asked = [index[a] for t in d.turns for a in t.asked if a in index]
        absent = {a for t in d.turns if t.values is None for a in t.asked}
        kb = list(dict.fromkeys(asked))
        others = [t for t in triples if t not in kb and (t.name, t.property) not in absent]
        kb += rng.sample(others, min(len(others), max(0, kb_size - len(kb))))
        if len(kb) < kb_size:
            kb += rng.sample(pool, min(len(pool), kb_size - len(kb)))
        rng.shuffle(kb)
        tokens = model.encode_kb(kb) if answer is None else None
        for j, turn in enumerate(d.turns):
            if turn.kind in ("first", "other"):
                continue
            msgs = d.messages(j)
            if answer is None and not generate:  # retrieval and the refusal rule only
                found = model._retrieve(msgs, tokens, 1, rerank=model.config.grounded_rerank)
                text, refused, top = "", found.refuse, found.top[0].triple if found.top else None
            elif answer is None:
                res = model.generate(msgs, kb=tokens, mode=mode, max_new_tokens=max_new_tokens)
                text, refused = res.text, is_refusal(res.text)
                # the triples an answer read, best first (all of the KB's when they were all attended)
                top = res.triples[0] if 0 < len(res.triples) < len(kb) else (
                    res.top_k(1)[0].triple if res.top_k(1) else None)
            else:
                text, refused, top = answer(msgs, kb)
            rec = {"kind": turn.kind, "user": turn.user, "expected": turn.values, "answer": text, "refused": refused,
                   "top1": top is not None and (top.name, top.property) in turn.asked}
            if turn.values is not None:
                rec["correct"] = not refused and all(answer_is_correct(v, text) for v in turn.values)
                if not generate and answer is None:
                    rec["correct"] = not refused and rec["top1"]
            records.append(rec)
    metrics: dict[str, Any] = {"kb_size": kb_size, "mode": mode}
    for kind in ("pronoun", "ellipsis", "switch_back", "two_fact"):
        rs = [r for r in records if r["kind"] == kind]
        metrics[f"{kind}_n"] = len(rs)
        metrics[f"{kind}_accuracy"] = sum(r["correct"] for r in rs) / len(rs) if rs else None
    follow = [r for r in records if r["kind"] in ("pronoun", "ellipsis", "switch_back")]
    metrics["follow_up_n"] = len(follow)
    metrics["follow_up_accuracy"] = sum(r["correct"] for r in follow) / len(follow) if follow else None
    metrics["follow_up_top1"] = sum(r["top1"] for r in follow) / len(follow) if follow else None
    tp = sum(r["refused"] for r in records if r["expected"] is None)
    fp = sum(r["refused"] for r in records if r["expected"] is not None)
    n_unans = sum(r["expected"] is None for r in records)
    metrics["refusal_precision"] = tp / (tp + fp) if tp + fp else 0.0
    metrics["refusal_recall"] = tp / n_unans if n_unans else None
    metrics["unanswerable"] = n_unans
    return metrics, records
