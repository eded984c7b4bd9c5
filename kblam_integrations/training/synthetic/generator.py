"""The generator of synthetic KBs and questions about them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

from ...kb.triple import Triple
from .aliases import _canonical, _label
from .entities import SyntheticEntities
from .schema import _MAX_PROPERTIES, DEFAULT_MIX, ENTITY_TYPES, KINDS, PROPERTIES, REFUSAL
from .templates import (
    _A,
    _GENERIC_A,
    _GENERIC_Q,
    _MULTI_JOINERS,
    _MULTI_PREFIX,
    _MULTI_SAME,
    _NO_GENERIC_ANSWER,
    _OPEN_INTROS,
    _OPEN_Q,
    _Q,
    _cap,
    _decap,
    _pick_templates,
    _render,
    _shape,
    _value_first_ok,
)


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



class SyntheticKBGenerator(SyntheticEntities):
    """Seeded generator of synthetic KBs and questions for one split.

    Calls on one instance draw from one random stream, so a sequence of calls is
    reproducible from ``(split, seed)``. Names are never reused within an instance: entities
    of :meth:`make_kb`, names mentioned in values, absent entities of unanswerable questions
    and :meth:`distractors` are all distinct (and never within one edit of each other).
    """

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

