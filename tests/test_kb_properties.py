"""Property-based tests: arbitrary input only ever yields triples or the documented typed errors,
and any valid KB (any Unicode, control characters included) round-trips losslessly in every format."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from kblam_integrations.errors import KBFormatError, KBValidationError, TripleNotFoundError
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.kb.persistence import dump_triples, load_triples, parse_triples
from kblam_integrations.kb.triple import RESERVED_EXTRA_KEYS, has_visible_char

FORMATS = ("json", "jsonl", "graphml")
SUFFIX = {"json": ".json", "jsonl": ".jsonl", "graphml": ".graphml"}
FIELDS = ("name", "property", "value")

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

# characters that break naive writers/readers: XML-illegal controls, CR/LF, Unicode line
# separators, noncharacters, bidi controls, astral emoji, XML/JSON metacharacters
TRICKY = ("\x00", "\x01", "\x08", "\t", "\n", "\x0b", "\x0c", "\r", "\x1c", "\x1e", "\x1f", "\x7f", "\x85",
          "\u2028", "\u2029", "\ufeff", "\ufffe", "\uffff", "\u202e", "\u200f", "\u05d0", "\u0627", "😀",
          "\U0010ffff", " ", "&", "<", ">", '"', "'", "\\", "]", "{", ":")
chars = st.one_of(st.characters(exclude_categories=("Cs",)), st.sampled_from(TRICKY))
text = st.text(chars, max_size=20)
# with a visible character, but free to start/end with any whitespace or control character
field_text = st.builds(lambda head, mid, tail: head + mid + tail, st.text(chars, max_size=8),
                       chars.filter(lambda c: has_visible_char(c)), st.text(chars, max_size=8))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(),
                         st.floats(allow_nan=False, allow_infinity=False), text)
json_values = st.recursive(json_scalars,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                           max_leaves=8)
extras = st.dictionaries(text.filter(lambda k: k not in RESERVED_EXTRA_KEYS), json_values, max_size=3)
triples = st.builds(Triple, field_text, field_text, field_text, extras)
triple_lists = st.lists(triples, max_size=6, unique_by=lambda t: t.id)

# arbitrary records: often almost valid (right keys, wrong values) so every check gets hit
lone_surrogate = st.sampled_from(["\ud800", "x\udfff", "\udc80 y"])
field_values = st.one_of(field_text, text, lone_surrogate, st.none(), st.integers(), st.booleans(),
                         st.floats(allow_nan=False), st.lists(st.integers(), max_size=2))
keys = st.one_of(st.sampled_from(FIELDS + ("id", "extra", "source")), text)
valid_records = st.fixed_dictionaries({f: field_text for f in FIELDS}, optional={"id": text, "source": json_values})
records = st.one_of(
    valid_records,
    st.fixed_dictionaries({f: field_values for f in FIELDS}, optional={"id": text, "source": json_values}),
    st.dictionaries(keys, field_values, max_size=5),
    json_values,
)


def record_is_valid(record) -> bool:
    """An independent statement of the documented rules, to check the loader against."""
    if not isinstance(record, dict) or not all(isinstance(k, str) for k in record):
        return False
    for f in FIELDS:
        v = record.get(f)
        if not isinstance(v, str) or not v.strip() or not has_visible_char(v):
            return False
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def as_records(items) -> list[dict]:
    return [t.to_dict() for t in items]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("kb_props")


# ------------------------------------------------------- arbitrary input is safe
@SETTINGS
@given(st.lists(st.one_of(valid_records, records), max_size=5))
def test_arbitrary_records_in_a_json_file_load_or_name_the_first_bad_one(workdir, items):
    path = workdir / "records.json"
    path.write_text(json.dumps({"triples": items}), encoding="utf-8")
    valid = [record_is_valid(r) for r in items]
    event(f"all valid: {all(valid)}")
    try:
        loaded = load_triples(path)
    except KBFormatError as err:
        assert not all(valid)
        assert err.path == path and err.record == f"#{valid.index(False)}"
        return
    assert all(valid)
    assert [(t.name, t.property, t.value) for t in loaded] == [tuple(r[f] for f in FIELDS) for r in items]
    assert [dict(t.extra) for t in loaded] == [{k: v for k, v in r.items() if k not in RESERVED_EXTRA_KEYS}
                                              for r in items]


@SETTINGS
@given(st.lists(st.one_of(valid_records, records), max_size=5))
def test_arbitrary_records_in_a_jsonl_file_name_the_line(workdir, items):
    path = workdir / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n\n" for r in items), encoding="utf-8")  # records on odd lines
    valid = [record_is_valid(r) for r in items]
    try:
        loaded = load_triples(path)
    except KBFormatError as err:
        assert not all(valid) and err.path == path
        assert err.record == f"line {2 * valid.index(False) + 1}"
        return
    assert all(valid) and len(loaded) == len(items)


@SETTINGS
@given(records)
@example(["0", "0", "0"])  # a 3-string list: not a record, but a (name, property, value) for the KB
@example(["0", " ", "0"])
def test_arbitrary_python_records_build_a_triple_or_raise_a_validation_error(record):
    valid = record_is_valid(record)
    try:
        triple = Triple.from_dict(record, index=3)
    except KBValidationError as err:
        assert not valid and err.record == "#3"
    else:
        assert valid and triple.to_dict() == {k: v for k, v in record.items() if k != "id"}
    # the KB constructor takes the same records, and also (name, property, value) sequences
    # (a list of 3 strings is a JSON value the strategy can draw); it is all-or-nothing
    as_sequence = isinstance(record, (list, tuple)) and len(record) == 3
    if as_sequence:
        valid = record_is_valid(dict(zip(FIELDS, record)))
    try:
        kb = KnowledgeBase([("ok", "ok", "ok"), record])
    except KBValidationError:
        assert not valid
    else:
        added = Triple(*record) if as_sequence else Triple.from_dict(record)
        assert valid and len(kb) == 2 - (added.id == Triple("ok", "ok", "ok").id)


@SETTINGS
@given(st.lists(st.one_of(field_values, lone_surrogate), min_size=3, max_size=3), extras)
def test_triple_constructor_accepts_valid_fields_or_names_the_bad_one(fields, extra):
    expected_bad = next((f for f, v in zip(FIELDS, fields) if not record_is_valid(
        {"name": "x", "property": "x", "value": "x", f: v})), None)
    try:
        t = Triple(*fields, extra)
    except KBValidationError as err:
        assert err.field == expected_bad
    else:
        assert expected_bad is None and t.id == Triple(*fields).id and len(t.id) == 16


@SETTINGS
@given(json_values)
def test_any_json_document_loads_or_raises_a_format_error(doc):
    data = json.dumps(doc).encode()
    try:
        loaded = parse_triples(data, "json", path="doc.json")
    except KBFormatError as err:
        assert err.path == "doc.json"
    else:
        assert isinstance(doc, dict) and isinstance(doc.get("triples"), list) and doc["triples"] == []
        assert loaded == []


@SETTINGS
@given(st.binary(max_size=200), st.sampled_from(FORMATS))
def test_arbitrary_bytes_never_raise_anything_but_a_format_error(data, fmt):
    try:
        loaded = parse_triples(data, fmt, path=f"junk.{fmt}")
    except KBFormatError:
        return
    assert all(isinstance(t, Triple) for t in loaded)


@SETTINGS
@pytest.mark.filterwarnings("ignore:No key type:UserWarning")
@given(triple_lists, st.sampled_from(FORMATS), st.data())
def test_damaged_files_never_raise_anything_but_a_format_error(items, fmt, data):
    """Truncate / overwrite / insert bytes of a valid file: the loader copes."""
    blob = bytearray(dump_triples(items, fmt))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        at = data.draw(st.integers(0, len(blob)), label="at")
        kind = data.draw(st.sampled_from(["truncate", "flip", "insert", "delete"]), label="kind")
        if kind == "truncate":
            del blob[at:]
        elif kind == "flip" and at < len(blob):
            blob[at] = data.draw(st.integers(0, 255), label="byte")
        elif kind == "insert":
            blob[at:at] = data.draw(st.binary(min_size=1, max_size=4), label="bytes")
        elif at < len(blob):
            del blob[at]
    try:
        loaded = parse_triples(bytes(blob), fmt, path="damaged")
    except KBFormatError as err:
        assert err.path == "damaged"
    else:
        assert all(isinstance(t, Triple) for t in loaded)


# ------------------------------------------------------------- lossless round trips
@pytest.mark.parametrize("fmt", FORMATS)
@SETTINGS
@given(items=triple_lists)
def test_save_load_round_trip_loses_nothing(workdir, fmt, items):
    path = workdir / f"roundtrip{SUFFIX[fmt]}"
    kb = KnowledgeBase(items)
    kb.save(path)
    loaded = KnowledgeBase.load(path)
    assert as_records(loaded) == as_records(items)  # fields, extras and order
    assert loaded.ids == [t.id for t in items]


@settings(SETTINGS, max_examples=60)
@given(triple_lists, triple_lists)
def test_load_into_merges_files_like_add_many(workdir, first, second):
    path = workdir / "merge.jsonl"
    KnowledgeBase(second).save(path)
    kb, expected = KnowledgeBase(first), KnowledgeBase(first)
    assert kb.load_into(path) == expected.add_many(second)
    assert as_records(kb) == as_records(expected)


# --------------------------------------------------------- KB against a plain model
small = st.sampled_from(["a", "b", "c"])
operations = st.lists(st.one_of(
    st.tuples(st.just("add"), small, small, small, st.integers(0, 2)),
    st.tuples(st.just("add_many"), st.lists(st.tuples(small, small, small, st.integers(0, 2)), max_size=3)),
    st.tuples(st.just("remove"), small, small, small),
    st.tuples(st.just("update"), small, small, small, small, st.integers(0, 2)),
    st.tuples(st.just("clear")),
), max_size=25)


@SETTINGS
@given(st.sampled_from(["ignore", "error", "replace"]), operations)
def test_notifications_replayed_rebuild_the_kb(policy, ops):
    """Applying each change's removed-then-added to a dict reproduces the KB exactly, after
    any sequence of operations (failed ones included), and the graph always mirrors it."""
    kb = KnowledgeBase(on_duplicate=policy)
    shadow: dict[str, Triple] = {}
    versions: list[int] = []

    def replay(change):
        versions.append(change.version)
        assert change.added or change.removed
        for t in change.removed:
            assert shadow.pop(t.id).extra == t.extra  # only triples that were there get removed
        for t in change.added:
            assert t.id not in shadow
            shadow[t.id] = t

    kb.subscribe(replay)
    for op in ops:
        try:
            if op[0] == "add":
                kb.add(*op[1:4], n=op[4])
            elif op[0] == "add_many":
                kb.add_many([Triple(n, p, v, {"n": x}) for n, p, v, x in op[1]])
            elif op[0] == "remove":
                kb.remove(op[1:4])
            elif op[0] == "update":
                kb.update(op[1:4], op[4], n=op[5])
            else:
                kb.clear()
        except (KBValidationError, TripleNotFoundError):
            pass  # duplicates under "error", removing what is not there: typed, and atomic
        assert {k: (t, dict(t.extra)) for k, t in shadow.items()} == {t.id: (t, dict(t.extra)) for t in kb}
        edges = {k: (u, v, d["property"]) for u, v, k, d in kb.graph.edges(keys=True, data=True)}
        assert edges == {t.id: (t.name, t.value, t.property) for t in kb}
        assert all(kb.graph.degree(n) for n in kb.graph.nodes)
    assert versions == list(range(1, kb.version + 1))
