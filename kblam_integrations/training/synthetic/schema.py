"""What a synthetic KB is made of: entity types and their properties, question kinds, splits."""

from __future__ import annotations

from ...model.config import REFUSAL

__all__ = ["DEFAULT_MIX", "ENTITY_TYPES", "EVAL_MIX", "KINDS", "PROPERTIES", "REFUSAL", "SPLITS"]

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
