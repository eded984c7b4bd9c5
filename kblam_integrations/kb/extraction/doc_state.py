"""What one document remembers while it is read: named subjects for pronouns, genders, categories."""

from __future__ import annotations

from dataclasses import dataclass, field

from .vocabulary import _FEMALE, _GENERIC_HEADS, _MALE, _PRONOUN_GENDER


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

