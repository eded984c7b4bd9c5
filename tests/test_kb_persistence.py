"""KB files: JSON / JSON Lines / GraphML round trips, typed errors for bad files, atomic writes."""

from __future__ import annotations

import json
import os
import stat

import networkx as nx
import pytest

from kblam_integrations.errors import KBFormatError, KBLaMError, KBValidationError
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.kb import atomic_files, file_formats
from kblam_integrations.kb.persistence import (
    KBFileNotFoundError,
    detect_format,
    dump_triples,
    load_triples,
    parse_triples,
    save_triples,
)

SUFFIXES = {"json": ".json", "jsonl": ".jsonl", "graphml": ".graphml"}
PROVENANCE = {"doc_id": "wiki/ada", "sentence": "Ada was born in London.", "char_start": 0, "char_end": 23,
              "scores": [0.5, 1.0, -2.25], "nested": {"by": ["spaCy", None, True], "ok": False}}


def sample_kb() -> KnowledgeBase:
    return KnowledgeBase([
        Triple("Ada Lovelace", "born in", "London", {"provenance": PROVENANCE, "confidence": 0.93}),
        Triple("London", "capital of", "UK"),
        Triple("Ada Lovelace", "field", "mathematics", {"source": "wiki", "rank": 2, "tags": []}),
        Triple("  padded  ", "has <xml> & \"quotes\"", "line one\nline two\r\nwindows\ttab"),
        Triple("ترجمة", "emoji 😀", "NUL\x00 and \x0b\x1f controls \ufffe\uffff"),
    ])


def as_records(triples) -> list[dict]:
    return [t.to_dict() for t in triples]


def path_for(tmp_path, fmt, stem="kb"):
    return tmp_path / f"{stem}{SUFFIXES[fmt]}"


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", ["json", "jsonl", "graphml"])
def test_round_trip_keeps_triples_extras_ids_and_order(tmp_path, fmt):
    kb = sample_kb()
    path = kb.save(path_for(tmp_path, fmt))
    assert path == path_for(tmp_path, fmt) and path.exists()
    loaded = KnowledgeBase.load(path)
    assert as_records(loaded) == as_records(kb)
    assert loaded.ids == kb.ids
    assert loaded.get(kb.ids[0]).extra["provenance"] == PROVENANCE
    assert os.listdir(tmp_path) == [path.name]  # no temporary files left behind


@pytest.mark.parametrize("fmt", ["json", "jsonl", "graphml"])
def test_empty_kb_round_trips(tmp_path, fmt):
    path = KnowledgeBase().save(path_for(tmp_path, fmt))
    assert len(KnowledgeBase.load(path)) == 0


def test_json_file_layout(tmp_path):
    path = sample_kb().save(tmp_path / "kb.json")
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert list(doc) == ["triples"] and doc["triples"] == as_records(sample_kb())
    text = path.read_text(encoding="utf-8")
    assert "ترجمة" in text and "😀" in text  # readable, not \u-escaped
    assert len(text.splitlines()) == 4 + len(sample_kb())  # one triple per line


def test_jsonl_file_layout(tmp_path):
    path = sample_kb().save(tmp_path / "kb.jsonl")
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and [json.loads(line) for line in lines[:-1]] == as_records(sample_kb())


def test_jsonl_keeps_unicode_line_separators_inside_records(tmp_path):
    # json.dumps(ensure_ascii=False) leaves U+2028/U+0085 raw; str.splitlines() would cut records there
    kb = KnowledgeBase([Triple("a\u2028b", "p\x85q", "v\u2029w\x1cx\x1dy\x1ez", {"note": "\u2028"})])
    path = kb.save(tmp_path / "kb.jsonl")
    assert as_records(KnowledgeBase.load(path)) == as_records(kb)


def test_graphml_is_a_real_graph_with_extras_as_json(tmp_path):
    kb = sample_kb()
    path = kb.save(tmp_path / "kb.graphml")
    graph = nx.read_graphml(path, force_multigraph=True)
    edges = {k: (u, v, d) for u, v, k, d in graph.edges(keys=True, data=True)}
    assert set(edges) == set(kb.ids)
    u, v, d = edges[kb.ids[0]]
    assert (u, v, d["property"]) == ("Ada Lovelace", "London", "born in")
    assert json.loads(d["extra"]) == {"provenance": PROVENANCE, "confidence": 0.93}
    assert graph.nodes["Ada Lovelace"]["kind"] == "entity" and graph.nodes["mathematics"]["kind"] == "value"
    # the triple with XML-illegal characters is stored escaped, and still loads exactly
    _, _, d = edges[kb.ids[4]]
    assert json.loads(d["value_json"]) == "NUL\x00 and \x0b\x1f controls \ufffe\uffff"
    assert "\x00" not in path.read_text(encoding="utf-8")


def test_graphml_keeps_carriage_returns_in_properties(tmp_path):
    # a raw CR in XML text comes back as LF; such fields must be escaped
    kb = KnowledgeBase([("a", "p\rq", "v"), ("b", "p\r\nq", "w\r")])
    assert as_records(KnowledgeBase.load(kb.save(tmp_path / "kb.graphml"))) == as_records(kb)


def test_graphml_written_by_networkx_loads_too(tmp_path):
    """A plain ``nx.write_graphml(kb.graph)`` file (and other tools' extra edge attributes) loads."""
    kb = KnowledgeBase([("Ada Lovelace", "born in", "London"), ("London", "capital of", "UK")])
    graph = kb.graph.copy()
    graph.edges["London", "UK", Triple("London", "capital of", "UK").id]["weight"] = 2.5
    nx.write_graphml(graph, tmp_path / "plain.graphml")
    loaded = load_triples(tmp_path / "plain.graphml")
    assert sorted(as_records(loaded), key=str) == sorted(
        [{"name": "Ada Lovelace", "property": "born in", "value": "London"},
         {"name": "London", "property": "capital of", "value": "UK", "weight": 2.5}], key=str)


def test_lone_surrogates_in_extras_survive_json(tmp_path):
    kb = KnowledgeBase([Triple("a", "b", "c", {"raw": "broken \udc80 byte"})])
    for fmt in ("json", "jsonl", "graphml"):
        loaded = KnowledgeBase.load(kb.save(path_for(tmp_path, fmt)))
        assert loaded.get(kb.ids[0]).extra == {"raw": "broken \udc80 byte"}


def test_in_memory_dump_and_parse():
    kb = sample_kb()
    for fmt in ("json", "jsonl", "graphml"):
        data = dump_triples(kb, fmt)
        assert isinstance(data, bytes)
        assert as_records(parse_triples(data, fmt)) == as_records(kb)


# ------------------------------------------------------------------- formats
def test_format_by_suffix_or_explicit(tmp_path):
    assert detect_format("kb.json") == "json"
    assert detect_format("KB.JSONL") == "jsonl"
    assert detect_format("kb.ndjson") == "jsonl"
    assert detect_format("kb.graphml") == "graphml"
    assert detect_format("kb.txt", "NDJSON") == "jsonl"
    assert detect_format("kb.json", ".graphml") == "graphml"  # explicit wins
    kb = sample_kb()
    path = kb.save(tmp_path / "kb.data", format="jsonl")
    assert path.read_bytes().count(b"\n") == len(kb)
    assert as_records(KnowledgeBase.load(path, format="jsonl")) == as_records(kb)
    with pytest.raises(KBFormatError):
        KnowledgeBase.load(path)  # .data: the suffix says nothing


@pytest.mark.parametrize("name, fmt", [("kb.csv", None), ("kb", None), ("kb.json", "yaml"), ("kb.json", "")])
def test_unknown_format_is_a_format_error(tmp_path, name, fmt):
    with pytest.raises(KBFormatError) as err:
        sample_kb().save(tmp_path / name, format=fmt)
    assert err.value.path == tmp_path / name and err.value.field == "format"
    assert not (tmp_path / name).exists()
    (tmp_path / name).write_text("{}")
    with pytest.raises(KBFormatError):
        load_triples(tmp_path / name, fmt)


# --------------------------------------------------------------------- bad files
def write(tmp_path, name, content) -> os.PathLike:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("content, record, field, words", [
    ('{"triples": [{"name": "x", "property": "y"', None, None, "invalid JSON"),
    ("", None, None, "invalid JSON"),
    ('[{"name": "a", "property": "b", "value": "c"}]', None, None, "top level"),
    ('"triples"', None, None, "top level"),
    ('{"facts": []}', None, "triples", "missing"),
    ('{"triples": {"name": "a"}}', None, "triples", "must be a list"),
    ('{"triples": [{"name": "a", "property": "b", "value": "c"}, {"name": "a", "property": "b"}]}',
     "#1", "value", "missing field"),
    ('{"triples": [{"name": "a", "property": "", "value": "c"}]}', "#0", "property", "non-empty"),
    ('{"triples": [{"name": "a", "property": "b", "value": 3}]}', "#0", "value", "must be a string"),
    ('{"triples": [{"name": null, "property": "b", "value": "c"}]}', "#0", "name", "must be a string"),
    ('{"triples": [{"name": "\\ud800", "property": "b", "value": "c"}]}', "#0", "name", "surrogate"),
    ('{"triples": [["a", "b", "c"]]}', "#0", None, "must be an object"),
    ("[" * 100000, None, None, "invalid JSON"),
])
def test_corrupt_json_names_file_record_and_field(tmp_path, content, record, field, words):
    path = write(tmp_path, "bad.json", content)
    with pytest.raises(KBFormatError) as err:
        KnowledgeBase.load(path)
    assert (err.value.path, err.value.record, err.value.field) == (path, record, field)
    assert words in str(err.value) and str(path) in str(err.value)
    assert isinstance(err.value, KBLaMError)


def test_invalid_json_reports_the_position(tmp_path):
    path = write(tmp_path, "bad.json", '{"triples": [\n  {"name": "a", "property": "b", "value": "c"},\n  oops\n]}')
    with pytest.raises(KBFormatError, match="line 3 column 3"):
        load_triples(path)


def test_not_utf8_is_a_format_error(tmp_path):
    path = write(tmp_path, "bad.json", b'{"triples": [{"name": "\xff\xfe", "property": "b", "value": "c"}]}')
    with pytest.raises(KBFormatError, match="UTF-8"):
        load_triples(path)


def test_byte_order_mark_is_tolerated(tmp_path):
    path = write(tmp_path, "bom.json", b'\xef\xbb\xbf{"triples": [{"name": "a", "property": "b", "value": "c"}]}')
    assert load_triples(path) == [Triple("a", "b", "c")]


@pytest.mark.parametrize("lines, record, field", [
    (['{"name": "a", "property": "b", "value": "c"}', "", '{"name": "a", "property": "b", "value": "c"'],
     "line 3", None),
    (['{"name": "a", "property": "b", "value": "c"}', '["a", "b", "c"]'], "line 2", None),
    (['', '', '', '{"name": "a", "property": "b"}'], "line 4", "value"),
    (['{"name": "a", "property": "b", "value": "   "}'], "line 1", "value"),
    (['{"triples": []}'], "line 1", "name"),
])
def test_bad_jsonl_line_names_its_line_number(tmp_path, lines, record, field):
    path = write(tmp_path, "bad.jsonl", "\n".join(lines) + "\n")
    with pytest.raises(KBFormatError) as err:
        KnowledgeBase.load(path)
    assert (err.value.path, err.value.record, err.value.field) == (path, record, field)
    assert record in str(err.value)


def test_jsonl_skips_blank_lines_and_accepts_crlf(tmp_path):
    path = write(tmp_path, "ok.jsonl", b'\r\n{"name": "a", "property": "b", "value": "c"}\r\n\r\n  \n'
                                       b'{"name": "d", "property": "e", "value": "f", "x": 1}')
    assert as_records(load_triples(path)) == [{"name": "a", "property": "b", "value": "c"},
                                              {"name": "d", "property": "e", "value": "f", "x": 1}]


GRAPHML_HEAD = ('<?xml version="1.0" encoding="utf-8"?>\n<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
                '<key id="p" for="edge" attr.name="property" attr.type="string"/>'
                '<key id="e" for="edge" attr.name="extra" attr.type="string"/>'
                '<key id="n" for="edge" attr.name="value_json" attr.type="string"/>'
                '<key id="i" for="edge" attr.name="index" attr.type="int"/>'
                '<graph edgedefault="directed"><node id="a"/><node id="b"/>')


@pytest.mark.parametrize("content, record, field", [
    ("<graphml><graph>", None, None),  # truncated XML
    ("not xml at all", None, None),
    ("<?xml version='1.0'?><html><body/></html>", None, None),  # XML, but no graph
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="i">x</data></edge></graph></graphml>', None, None),
    (GRAPHML_HEAD + '<edge source="a" target="b"/></graph></graphml>', "#0", "property"),
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="p">  </data></edge></graph></graphml>',
     "#0", "property"),
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="p">p</data><data key="e">{broken</data></edge>'
     '</graph></graphml>', "#0", "extra"),
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="p">p</data><data key="e">[1, 2]</data></edge>'
     '</graph></graphml>', "#0", "extra"),
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="p">p</data><data key="e">{"name": "x"}</data></edge>'
     '</graph></graphml>', "#0", "name"),
    (GRAPHML_HEAD + '<edge source="a" target="b"><data key="p">p</data><data key="n">42</data></edge>'
     '</graph></graphml>', "#0", "value"),
])
def test_broken_graphml_is_a_format_error(tmp_path, content, record, field):
    path = write(tmp_path, "bad.graphml", content)
    with pytest.raises(KBFormatError) as err:
        KnowledgeBase.load(path)
    assert (err.value.path, err.value.record, err.value.field) == (path, record, field)


def test_missing_file_is_a_format_error_and_a_file_not_found_error(tmp_path):
    path = tmp_path / "absent.json"
    with pytest.raises(KBFileNotFoundError) as err:
        KnowledgeBase.load(path)
    assert isinstance(err.value, KBFormatError) and isinstance(err.value, FileNotFoundError)
    assert err.value.path == path and str(path) in str(err.value)
    with pytest.raises(FileNotFoundError):
        load_triples(path)


def test_directory_instead_of_file_is_a_format_error(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(KBFormatError, match="cannot read"):
        load_triples(tmp_path / "dir.json")


def test_load_applies_the_duplicate_policy(tmp_path):
    path = write(tmp_path, "dup.jsonl", '{"name": "a", "property": "b", "value": "c", "n": 1}\n'
                                        '{"name": "a", "property": "b", "value": "c", "n": 2}\n')
    assert len(load_triples(path)) == 2  # the loader keeps both; the KB decides
    assert KnowledgeBase.load(path).get(Triple("a", "b", "c").id).extra == {"n": 1}
    assert KnowledgeBase.load(path, on_duplicate="replace").get(Triple("a", "b", "c").id).extra == {"n": 2}
    with pytest.raises(KBValidationError):
        KnowledgeBase.load(path, on_duplicate="error")


# ------------------------------------------------------------------- load_into
@pytest.mark.parametrize("content", [
    '{"triples": [{"name": "new", "property": "p", "value": "v"}, {"name": "bad", "property": "p"}]}',
    '{"triples": [{"name": "new", "property": "p", "value": "v"}, ',
])
def test_failed_load_into_leaves_the_kb_untouched(tmp_path, content):
    kb = sample_kb()
    before, version = as_records(kb), kb.version
    changes = []
    kb.subscribe(changes.append)
    with pytest.raises(KBFormatError):
        kb.load_into(write(tmp_path, "bad.json", content))
    with pytest.raises(KBFormatError):
        kb.load_into(tmp_path / "missing.json")
    assert as_records(kb) == before and kb.version == version and changes == []
    assert "new" not in kb.graph


def test_load_into_with_duplicates_under_error_policy_is_atomic(tmp_path):
    kb = sample_kb()
    before = as_records(kb)
    path = save_triples([Triple("fresh", "p", "v"), Triple("London", "capital of", "UK")], tmp_path / "more.json")
    with pytest.raises(KBValidationError):
        kb.load_into(path, on_duplicate="error")
    assert as_records(kb) == before


def test_load_into_adds_and_notifies_only_the_new_triples(tmp_path):
    kb = sample_kb()
    changes = []
    kb.subscribe(changes.append)
    path = save_triples([Triple("fresh", "p", "v"), Triple("London", "capital of", "UK")], tmp_path / "more.jsonl")
    added = kb.load_into(path)
    assert added == [Triple("fresh", "p", "v")] and len(changes) == 1 and changes[0].added == tuple(added)


# --------------------------------------------------------------- atomic writes
@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_a_failed_write_does_not_clobber_the_existing_file(tmp_path, monkeypatch, fmt):
    path = path_for(tmp_path, fmt)
    sample_kb().save(path)
    old = path.read_bytes()
    real_dumps, calls = json.dumps, []

    def failing_dumps(*args, **kwargs):  # fail half-way: the first records are already written
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk on fire")
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(file_formats.json, "dumps", failing_dumps)
    bigger = KnowledgeBase([(f"e{i}", "p", "v") for i in range(10)])
    with pytest.raises(RuntimeError, match="disk on fire"):
        bigger.save(path)
    assert len(calls) == 3
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == [path.name]


def test_a_failed_graphml_write_does_not_clobber_the_existing_file(tmp_path, monkeypatch):
    path = sample_kb().save(tmp_path / "kb.graphml")
    old = path.read_bytes()

    def failing_writer(graph, fh, **kwargs):
        fh.write(b"<?xml version='1.0'?><graphml>")
        raise OSError("no space left on device")

    monkeypatch.setattr(file_formats, "write_graphml_xml", failing_writer)
    with pytest.raises(OSError, match="no space"):
        KnowledgeBase([("x", "y", "z")]).save(path)
    assert path.read_bytes() == old and os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("step", ["fsync", "replace"])
def test_failure_at_fsync_or_rename_keeps_the_old_file(tmp_path, monkeypatch, step):
    path = sample_kb().save(tmp_path / "kb.json")
    old = path.read_bytes()

    def boom(*args, **kwargs):
        raise OSError(f"{step} failed")

    monkeypatch.setattr(atomic_files.os, step, boom)
    with pytest.raises(OSError, match=step):
        KnowledgeBase([("x", "y", "z")]).save(path)
    monkeypatch.undo()
    assert path.read_bytes() == old and os.listdir(tmp_path) == [path.name]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "graphml"])
def test_unserializable_extra_names_record_and_field_and_keeps_the_file(tmp_path, fmt):
    path = sample_kb().save(path_for(tmp_path, fmt))
    old = path.read_bytes()
    kb = KnowledgeBase([("a", "b", "c"), Triple("d", "e", "f", {"fine": 1, "when": object()})])
    with pytest.raises(KBValidationError) as err:
        kb.save(path)
    assert err.value.field == "when" and err.value.record.startswith("#1")
    assert path.read_bytes() == old and os.listdir(tmp_path) == [path.name]


def test_save_to_a_missing_directory_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        sample_kb().save(tmp_path / "no" / "such" / "kb.json")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_keeps_permissions_and_symlinks(tmp_path):
    real = sample_kb().save(tmp_path / "real.json")
    os.chmod(real, 0o640)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    KnowledgeBase([("x", "y", "z")]).save(link)
    assert link.is_symlink() and load_triples(real) == [Triple("x", "y", "z")]
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    fresh = KnowledgeBase().save(tmp_path / "fresh.json")
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(fresh).st_mode) == 0o666 & ~umask  # not mkstemp's 0o600


def test_save_uses_one_consistent_snapshot(tmp_path):
    """The file holds a KB version that existed, even with a writer running meanwhile."""
    import threading

    kb = KnowledgeBase([("seed", "p", str(i)) for i in range(50)])
    stop = threading.Event()

    def writer():
        for i in range(3000):
            if stop.is_set():
                break
            kb.add_many([("pair", "left", str(i)), ("pair", "right", str(i))])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for _ in range(5):
            triples = load_triples(kb.save(tmp_path / "kb.jsonl"))
            left = sum(t.property == "left" for t in triples)
            assert left == sum(t.property == "right" for t in triples)
    finally:
        stop.set()
        thread.join()
