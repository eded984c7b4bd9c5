"""KnowledgeBase and Triple: mutation, ids, notifications, duplicate policies, validation, threads."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from kblam_integrations.errors import (
    DuplicateTripleError,
    KBLaMError,
    KBValidationError,
    TripleNotFoundError,
)
from kblam_integrations.kb import KBChange, KnowledgeBase, Triple, triple_id

ADA = ("Ada Lovelace", "born in", "London")
ADA_ID = "2646c3b11285a62a"  # sha1("Ada Lovelace\x1fborn in\x1fLondon")[:16]; must never change


def recorder(kb: KnowledgeBase) -> list[KBChange]:
    changes: list[KBChange] = []
    kb.subscribe(changes.append)
    return changes


def ids(triples) -> set[str]:
    return {t.id for t in triples}


def assert_graph_consistent(kb: KnowledgeBase) -> None:
    """The graph mirrors the triples exactly: one keyed edge each, no orphan nodes."""
    edges = {k: (u, v, d["property"]) for u, v, k, d in kb.graph.edges(keys=True, data=True)}
    assert edges == {t.id: (t.name, t.value, t.property) for t in kb}
    assert all(kb.graph.degree(n) > 0 for n in kb.graph.nodes)


# ---------------------------------------------------------------------- Triple
def test_triple_id_is_a_content_hash():
    t = Triple(*ADA)
    assert t.id == ADA_ID == triple_id(*ADA)
    assert Triple(*ADA, extra={"source": "wiki"}).id == t.id  # extras are not part of the fact
    assert Triple("Ada Lovelace", "born in", "Paris").id != t.id
    assert Triple(*ADA, extra={"source": "wiki"}) == t and hash(Triple(*ADA)) == hash(t)


def test_triple_ids_are_stable_across_processes():
    code = ("from kblam_integrations.kb.triple import Triple;"
            "print(Triple('Ada Lovelace', 'born in', 'London').id, Triple('é😀', 'p', 'v\\nw').id)")
    seen = set()
    for seed in ("1", "2"):  # a different str hash seed must not matter
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True,
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        seen.add(out.stdout.strip())
    assert seen == {f"{ADA_ID} {Triple('é😀', 'p', 'v' + chr(10) + 'w').id}"}


def test_triple_id_has_no_separator_collisions():
    # the fields used to be joined with \x1f, so these two different facts shared an id
    a, b = Triple("a\x1fb", "c", "d"), Triple("a", "b\x1fc", "d")
    assert a != b and a.id != b.id
    assert len({Triple("x\x1f", "y", "z").id, Triple("x", "\x1fy", "z").id, Triple("x", "y\x1f", "z").id}) == 3


@pytest.mark.parametrize("fields, field", [
    (("", "p", "v"), "name"),
    (("n", "   ", "v"), "property"),
    (("n", "p", "\n\t"), "value"),
    ((None, "p", "v"), "name"),
    (("n", 3, "v"), "property"),
    (("n", "p", b"v"), "value"),
    (("n", "p", "bad \ud800 surrogate"), "value"),
])
def test_triple_rejects_bad_fields(fields, field):
    with pytest.raises(KBValidationError) as err:
        Triple(*fields)
    assert err.value.field == field and isinstance(err.value, KBLaMError)


@pytest.mark.parametrize("extra, field", [
    ({"name": "shadow"}, "name"),
    ({"value": 1}, "value"),
    ({"id": "x"}, "id"),
    ({1: "int key"}, "extra"),
    (["not", "a", "mapping"], "extra"),
])
def test_triple_rejects_extras_that_would_not_survive_a_save(extra, field):
    with pytest.raises(KBValidationError) as err:
        Triple(*ADA, extra=extra)
    assert err.value.field == field


def test_triple_copies_its_extra():
    extra = {"source": "wiki"}
    t = Triple(*ADA, extra=extra)
    extra["source"] = "changed later"
    assert t.extra == {"source": "wiki"}


def test_from_dict_names_record_and_field():
    assert Triple.from_dict({"name": "a", "property": "b", "value": "c", "id": "ignored", "p": {"x": 1}}).extra == {
        "p": {"x": 1}}
    with pytest.raises(KBValidationError) as err:
        Triple.from_dict({"name": "a", "property": "b"}, index=7)
    assert (err.value.record, err.value.field) == ("#7", "value")
    with pytest.raises(KBValidationError) as err:
        Triple.from_dict({"name": "a", "property": 5, "value": "c"}, index=0)
    assert err.value.field == "property" and "string" in str(err.value)
    with pytest.raises(KBValidationError):
        Triple.from_dict(["a", "b", "c"])


# ------------------------------------------------------------- basic operations
def test_add_len_contains_iterate_get():
    kb = KnowledgeBase()
    assert len(kb) == 0 and list(kb) == []
    t1 = kb.add(*ADA, source="wiki")
    t2 = kb.add(Triple("London", "capital of", "UK"))
    t3 = kb.add({"name": "UK", "property": "part of", "value": "Europe"})
    t4 = kb.add(("Paris", "capital of", "France"))
    assert len(kb) == 4
    assert list(kb) == [t1, t2, t3, t4]  # insertion order
    assert t1.extra == {"source": "wiki"}
    for probe in (t1, t1.id, ADA, Triple(*ADA)):
        assert probe in kb
    for probe in (("Ada Lovelace", "born in", "Paris"), "0" * 16, ("", "", ""), ("a", "b"), 42, None):
        assert probe not in kb
    assert kb.get(t2.id) is t2
    with pytest.raises(TripleNotFoundError):
        kb.get("nope")
    with pytest.raises(KeyError):  # TripleNotFoundError is a KeyError too
        kb.get("nope")
    assert kb.ids == [t1.id, t2.id, t3.id, t4.id]
    assert kb.find(property="capital of") == [t2, t4]
    assert kb.find(name="UK") == [t3]
    assert_graph_consistent(kb)
    assert kb.graph.nodes["Ada Lovelace"]["kind"] == "entity" and kb.graph.nodes["London"]["kind"] == "value"
    assert kb.graph.number_of_nodes() == 6


def test_constructor_accepts_generators_and_mixed_items():
    kb = KnowledgeBase(t for t in [ADA, {"name": "a", "property": "b", "value": "c"}, Triple("x", "y", "z")])
    assert len(kb) == 3
    assert len(KnowledgeBase(None)) == 0


def test_remove_by_triple_id_and_tuple():
    kb = KnowledgeBase([ADA, ("London", "capital of", "UK"), ("UK", "part of", "Europe")])
    changes = recorder(kb)
    removed = kb.remove(ADA)
    assert removed == Triple(*ADA) and ADA not in kb
    kb.remove(Triple("London", "capital of", "UK").id)
    kb.remove(Triple("UK", "part of", "Europe"))
    assert len(kb) == 0 and kb.graph.number_of_nodes() == 0
    assert [c.removed for c in changes] == [(Triple(*ADA),), (Triple("London", "capital of", "UK"),),
                                            (Triple("UK", "part of", "Europe"),)]
    with pytest.raises(TripleNotFoundError):
        kb.remove(ADA)
    with pytest.raises(KBValidationError):
        kb.remove(42)  # type: ignore[arg-type]


def test_remove_keeps_shared_nodes_and_handles_self_loops():
    kb = KnowledgeBase([ADA, ("Ada Lovelace", "field", "mathematics"), ("Echo", "repeats", "Echo")])
    kb.remove(ADA)
    assert "Ada Lovelace" in kb.graph and "London" not in kb.graph
    kb.remove(("Echo", "repeats", "Echo"))
    assert "Echo" not in kb.graph
    assert_graph_consistent(kb)


def test_remove_many_is_atomic_and_deduplicates():
    kb = KnowledgeBase([ADA, ("a", "b", "c")])
    changes = recorder(kb)
    with pytest.raises(TripleNotFoundError):
        kb.remove_many([ADA, ("not", "in", "kb")])
    assert len(kb) == 2 and changes == []
    removed = kb.remove_many([ADA, Triple(*ADA).id, ADA])
    assert removed == [Triple(*ADA)] and len(kb) == 1
    assert len(changes) == 1 and changes[0].removed == (Triple(*ADA),)
    assert_graph_consistent(kb)


def test_clear_reports_everything_removed():
    kb = KnowledgeBase([ADA, ("a", "b", "c")])
    changes = recorder(kb)
    kb.clear()
    assert len(kb) == 0 and kb.graph.number_of_nodes() == 0
    assert ids(changes[0].removed) == {Triple(*ADA).id, Triple("a", "b", "c").id} and changes[0].added == ()
    kb.clear()
    assert len(changes) == 1  # nothing to clear: no notification


# ----------------------------------------------------------------------- update
def test_update_is_one_change_with_one_added_and_one_removed():
    kb = KnowledgeBase([ADA, ("London", "capital of", "UK")])
    changes = recorder(kb)
    version = kb.version
    new = kb.update(ADA, "Marylebone", note="more precise")
    assert new == Triple("Ada Lovelace", "born in", "Marylebone") and new.extra == {"note": "more precise"}
    assert len(changes) == 1
    change = changes[0]
    assert change.added == (new,) and change.removed == (Triple(*ADA),) and change.version == version + 1
    assert ADA not in kb and new in kb and len(kb) == 2
    assert_graph_consistent(kb)
    assert kb.graph.nodes["Marylebone"]["kind"] == "value"


def test_update_extras_only_is_reported_and_a_noop_is_not():
    kb = KnowledgeBase([ADA])
    changes = recorder(kb)
    assert kb.update(ADA, "London") is kb.get(Triple(*ADA).id)  # nothing changes
    assert changes == []
    new = kb.update(ADA, "London", source="wiki")  # same fact, new provenance: the encoder must see it
    assert new.extra == {"source": "wiki"} and kb.get(new.id).extra == {"source": "wiki"}
    assert len(changes) == 1 and changes[0].added == (new,) and changes[0].removed == (Triple(*ADA),)
    assert_graph_consistent(kb)


def test_update_validates_before_changing_anything():
    kb = KnowledgeBase([ADA])
    changes = recorder(kb)
    with pytest.raises(KBValidationError):
        kb.update(ADA, "   ")
    with pytest.raises(TripleNotFoundError):
        kb.update(("x", "y", "z"), "w")
    assert list(kb) == [Triple(*ADA)] and changes == []


@pytest.mark.parametrize("policy", ["ignore", "error", "replace"])
def test_update_onto_an_existing_fact_follows_the_duplicate_policy(policy):
    paris = Triple("Ada Lovelace", "born in", "Paris", {"source": "existing"})
    kb = KnowledgeBase([Triple(*ADA, extra={"source": "old"}), paris], on_duplicate=policy)
    changes = recorder(kb)
    if policy == "error":
        with pytest.raises(DuplicateTripleError):
            kb.update(ADA, "Paris")
        assert len(kb) == 2 and changes == []
        return
    result = kb.update(ADA, "Paris")
    assert len(kb) == 1 and ADA not in kb and len(changes) == 1
    if policy == "ignore":
        assert result is paris and kb.get(paris.id).extra == {"source": "existing"}
        assert changes[0].added == () and changes[0].removed == (Triple(*ADA),)
    else:
        assert kb.get(paris.id).extra == {"source": "old"}
        assert changes[0].added == (result,) and ids(changes[0].removed) == {Triple(*ADA).id, paris.id}
    assert_graph_consistent(kb)


# ---------------------------------------------------------------- notifications
def test_notifications_carry_exactly_what_changed():
    kb = KnowledgeBase([ADA])
    changes = recorder(kb)
    added = kb.add_many([("a", "b", "c"), ADA, ("d", "e", "f")])  # ADA is already there: ignored
    assert added == [Triple("a", "b", "c"), Triple("d", "e", "f")]
    assert changes[-1].added == tuple(added) and changes[-1].removed == ()
    kb.add(*ADA)
    kb.add_many([])
    assert len(changes) == 1  # no-ops are silent
    kb.remove(("a", "b", "c"))
    assert changes[-1] == KBChange(added=(), removed=(Triple("a", "b", "c"),), version=kb.version)
    assert [c.version for c in changes] == [2, 3] and kb.version == 3


def test_unsubscribe_stops_notifications():
    kb = KnowledgeBase()
    changes: list[KBChange] = []
    unsubscribe = kb.subscribe(changes.append)
    kb.add(*ADA)
    unsubscribe()
    unsubscribe()  # idempotent
    kb.add("a", "b", "c")
    assert len(changes) == 1


def test_a_failing_listener_does_not_starve_the_others():
    kb = KnowledgeBase()
    first: list[KBChange] = []
    last: list[KBChange] = []
    kb.subscribe(first.append)
    kb.subscribe(lambda change: 1 / 0)
    kb.subscribe(last.append)
    with pytest.raises(ZeroDivisionError):
        kb.add(*ADA)
    assert ADA in kb and len(first) == len(last) == 1  # the change happened and everyone heard of it


# ------------------------------------------------------------ duplicate policies
def test_duplicate_policy_ignore_keeps_the_first():
    kb = KnowledgeBase([Triple(*ADA, extra={"source": "first"})])
    stored = kb.add(*ADA, source="second")
    assert stored.extra == {"source": "first"} and len(kb) == 1
    assert kb.add_many([("a", "b", "c"), ("a", "b", "c")]) == [Triple("a", "b", "c")]


def test_duplicate_policy_error_is_atomic():
    kb = KnowledgeBase([ADA], on_duplicate="error")
    changes = recorder(kb)
    with pytest.raises(DuplicateTripleError) as err:
        kb.add_many([("a", "b", "c"), ADA])
    assert "#1" in str(err.value) and isinstance(err.value, KBValidationError)
    with pytest.raises(DuplicateTripleError):
        kb.add_many([("x", "y", "z"), ("x", "y", "z")])  # duplicates inside one batch too
    assert list(kb) == [Triple(*ADA)] and changes == []
    assert kb.add_many([ADA], on_duplicate="ignore") == []  # per-call override


def test_duplicate_policy_replace_swaps_extras_and_reports_it():
    kb = KnowledgeBase([Triple(*ADA, extra={"source": "old"})], on_duplicate="replace")
    changes = recorder(kb)
    new = kb.add(*ADA, source="new")
    assert kb.get(new.id).extra == {"source": "new"} and len(kb) == 1
    assert changes[0].added == (new,) and changes[0].removed[0].extra == {"source": "old"}
    kb.add(*ADA, source="new")  # identical: nothing to re-encode
    assert len(changes) == 1
    kb.add_many([Triple(*ADA, extra={"v": 1}), Triple(*ADA, extra={"v": 2})])  # last of a batch wins
    assert kb.get(new.id).extra == {"v": 2} and len(changes[-1].removed) == 1
    assert_graph_consistent(kb)


def test_unknown_duplicate_policy_is_a_validation_error():
    with pytest.raises(KBValidationError) as err:
        KnowledgeBase(on_duplicate="overwrite")  # type: ignore[arg-type]
    assert err.value.field == "on_duplicate"
    with pytest.raises(KBValidationError):
        KnowledgeBase().add_many([ADA], on_duplicate="merge")  # type: ignore[arg-type]


# ------------------------------------------------------------------ validation
def test_add_many_is_atomic_on_invalid_records():
    kb = KnowledgeBase([ADA])
    changes = recorder(kb)
    with pytest.raises(KBValidationError) as err:
        kb.add_many([("a", "b", "c"), {"name": "x", "property": "y"}, ("d", "e", "f")])
    assert (err.value.record, err.value.field) == ("#1", "value")
    with pytest.raises(KBValidationError) as err:
        kb.add_many([("a", "b", "c"), ("only", "two")])
    assert err.value.record == "#1"
    with pytest.raises(KBValidationError):
        kb.add_many([("a", "b", "c"), 42])
    with pytest.raises(KBValidationError):
        kb.add("a", "b", None)  # type: ignore[arg-type]
    assert list(kb) == [Triple(*ADA)] and changes == [] and kb.version == 1


# --------------------------------------------------------------------- threads
def test_concurrent_writers_readers_and_snapshots():
    """Writers add/remove while readers iterate and snapshot: nothing breaks, and every
    snapshot matches the size the KB had at that version."""
    kb = KnowledgeBase()
    size_at: dict[int, int] = {0: 0}
    kb.subscribe(lambda change: size_at.__setitem__(change.version, len(kb)))
    errors: list[BaseException] = []
    stop = threading.Event()
    writers, per_writer = 4, 150

    def writer(w: int) -> None:
        try:
            for i in range(per_writer):
                kb.add(f"entity {w}", f"property {i}", f"value {i}")
                if i % 10 == 0:
                    kb.add_many([(f"tmp {w}", "p", str(i)), (f"tmp {w}", "q", str(i))])
                    kb.remove((f"tmp {w}", "p", str(i)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    def reader() -> None:
        try:
            last = -1
            while not stop.is_set():
                version, triples = kb.snapshot()
                assert version >= last
                last = version
                assert len(triples) == size_at[version]
                assert len({t.id for t in triples}) == len(triples)
                for t in kb:  # plain iteration must not raise either
                    assert isinstance(t, Triple)
                len(kb), ADA in kb, kb.find(property="p")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers + threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(kb) == writers * per_writer + writers * (per_writer // 10)
    assert_graph_consistent(kb)
    assert kb.version == len(size_at) - 1
