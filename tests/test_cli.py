"""The ``kblam`` CLI through typer's CliRunner: every command, its --help, and bad input
(exit code 1, one line on stderr, never a traceback).

Model-heavy commands (encode, ask, chat, demo) run against the real SmolLM2/MiniLM stack
in the ``slow`` tests; their plumbing is also tested fast with a stand-in model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kblam_integrations import cli
from kblam_integrations.cli import app
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.model.kblam_model import GenerationResult

runner = CliRunner()

TRIPLES = [
    ("Veltrano Dynamics", "founder", "Marisol Okonkwo"),
    ("Veltrano Dynamics", "headquarters", "Port Alvessa"),
    ("Quillmark Labs", "location", "Nerovia"),
]

COMMANDS = [
    [], ["extract"], ["kb"], ["kb", "show"], ["kb", "add"], ["kb", "remove"], ["encode"], ["ask"], ["chat"],
    ["train"], ["eval"], ["bench"], ["demo"],
]


def invoke(*args: str, input: str | None = None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def ok(result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output


def user_error(result, *fragments: str) -> str:
    """Exit code 1, exactly one line on stderr starting with 'Error:', no traceback."""
    assert result.exit_code == 1, f"exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), (fragment, lines[0])
    return lines[0]


@pytest.fixture
def kb_file(tmp_path) -> Path:
    return KnowledgeBase(TRIPLES).save(tmp_path / "kb.json")


@pytest.fixture
def corrupt_kb(tmp_path) -> Path:
    path = tmp_path / "corrupt.json"
    path.write_text('{"triples": [{"name": "A", "property": ')
    return path


# --------------------------------------------------------------------------- help
@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "kblam")
def test_help_everywhere(command):
    result = invoke(*command, "--help")
    ok(result)
    assert "Usage" in result.output
    short = invoke(*command, "-h")
    ok(short)


def test_version():
    result = invoke("--version")
    ok(result)
    assert result.output.startswith("kblam ")


def test_no_arguments_prints_help():
    result = invoke()
    assert "Usage" in result.output and "demo" in result.output


@pytest.mark.parametrize("args", [["frobnicate"], ["kb", "show", "--frob"], ["kb", "add", "x.json", "only-name"],
                                  ["ask"], ["--threads", "0", "kb", "show", "x.json"]])
def test_usage_errors_are_one_line_exit_1(args):
    user_error(invoke(*args))


# ----------------------------------------------------------------------------- kb
def test_kb_show_lists_triples(kb_file):
    result = invoke("kb", "show", kb_file)
    ok(result)
    for name, prop, value in TRIPLES:
        assert name in result.output and prop in result.output and value in result.output


def test_kb_show_filters_and_json(kb_file):
    result = invoke("kb", "show", kb_file, "--name", "Veltrano Dynamics", "--json")
    ok(result)
    rows = json.loads(result.stdout)
    assert {(r["name"], r["property"], r["value"]) for r in rows} == set(TRIPLES[:2])
    assert all(r["id"] == Triple(r["name"], r["property"], r["value"]).id for r in rows)
    limited = json.loads(invoke("kb", "show", kb_file, "--limit", "1", "--json").stdout)
    assert len(limited) == 1


def test_kb_add_and_remove_edit_the_file(kb_file):
    ok(invoke("kb", "add", kb_file, "Harlow Institute", "director", "Amara Velasquez"))
    kb = KnowledgeBase.load(kb_file)
    assert ("Harlow Institute", "director", "Amara Velasquez") in kb and len(kb) == 4
    ok(invoke("kb", "remove", kb_file, "Veltrano Dynamics", "founder", "Marisol Okonkwo"))
    kb = KnowledgeBase.load(kb_file)
    assert ("Veltrano Dynamics", "founder", "Marisol Okonkwo") not in kb and len(kb) == 3


def test_kb_add_create_new_file(tmp_path):
    path = tmp_path / "sub" / "new.jsonl"
    user_error(invoke("kb", "add", path, "A", "b", "c"), "not found", "--create")
    assert not path.exists()
    ok(invoke("kb", "add", path, "A", "b", "c", "--create"))
    assert list(KnowledgeBase.load(path)) == [Triple("A", "b", "c")]


@pytest.mark.parametrize("command", [["kb", "show"], ["kb", "remove", "{f}", "A", "b", "c"],
                                     ["kb", "add", "{f}", "A", "b", "c"]])
def test_kb_missing_file(tmp_path, command):
    missing = str(tmp_path / "nope.json")
    args = [missing if a == "{f}" else a for a in command]
    if "{f}" not in command:
        args.append(missing)
    user_error(invoke(*args), "not found", "nope.json")


@pytest.mark.parametrize("command", [["kb", "show"], ["kb", "remove", "{f}", "A", "b", "c"],
                                     ["kb", "add", "{f}", "A", "b", "c"]])
def test_kb_corrupt_json(corrupt_kb, command):
    args = [str(corrupt_kb) if a == "{f}" else a for a in command]
    if "{f}" not in command:
        args.append(str(corrupt_kb))
    before = corrupt_kb.read_text()
    user_error(invoke(*args), "corrupt.json")
    assert corrupt_kb.read_text() == before  # never overwritten


def test_kb_bad_edits(kb_file, tmp_path):
    user_error(invoke("kb", "add", kb_file, *TRIPLES[0]), "already")
    user_error(invoke("kb", "remove", kb_file, "Nobody", "founder", "Nobody"), "not in the knowledge base")
    user_error(invoke("kb", "add", kb_file, "A", " ", "c"), "property")
    (tmp_path / "kb.csv").write_text("name,property,value\n")
    user_error(invoke("kb", "show", tmp_path / "kb.csv"), "unsupported")
    user_error(invoke("kb", "show", tmp_path), "directory")
    assert len(KnowledgeBase.load(kb_file)) == 3


# ------------------------------------------------------------------------ extract
def test_extract_text_and_files(tmp_path):
    doc = tmp_path / "doc.txt"
    doc.write_text("Veltrano Dynamics was founded by Marisol Okonkwo in 2011.\n", encoding="utf-8")
    out = tmp_path / "out" / "kb.json"
    result = invoke("extract", doc, "Paris is the capital of France.", "--out", out)
    ok(result)
    kb = KnowledgeBase.load(out)
    assert "Veltrano Dynamics" in {t.name for t in kb} and len(kb) >= 2
    assert "Extracted" in result.output
    # --append keeps what is there
    ok(invoke("extract", "Marie Curie was born in Warsaw.", "--out", out, "--append", "--no-show"))
    assert len(KnowledgeBase.load(out)) > len(kb)


def test_extract_a_directory(tmp_path):
    docs = tmp_path / "docs" / "sub"
    docs.mkdir(parents=True)
    (docs / "a.txt").write_text("Marie Curie was born in Warsaw.", encoding="utf-8")
    (docs.parent / "b.md").write_text("Canberra is the capital of Australia.", encoding="utf-8")
    (docs / "ignored.csv").write_text("x,y", encoding="utf-8")
    out = tmp_path / "kb.json"
    result = invoke("extract", tmp_path / "docs", "--out", out)
    ok(result)
    assert "from 2 input(s)" in result.output
    assert {"Marie Curie", "Canberra"} <= {t.name for t in KnowledgeBase.load(out)}


def test_extract_reads_stdin(tmp_path):
    out = tmp_path / "kb.jsonl"
    ok(invoke("extract", "-", "--out", out, input="Marie Curie was born in Warsaw.\n"))
    assert len(KnowledgeBase.load(out)) >= 1


def test_extract_bad_input(tmp_path):
    user_error(invoke("extract", tmp_path / "missing.txt", "--out", tmp_path / "kb.json"), "not found",
               "missing.txt")
    user_error(invoke("extract", "   ", "--out", tmp_path / "kb.json"), "empty")
    user_error(invoke("extract", "Paris is in France.", "--out", tmp_path / "kb.xml"), "unsupported")
    (tmp_path / "empty").mkdir()
    user_error(invoke("extract", tmp_path / "empty", "--out", tmp_path / "kb.json"), "no *.txt or *.md files")
    binary = tmp_path / "blob.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81 not text")
    user_error(invoke("extract", binary, "--out", tmp_path / "kb.json"), "UTF-8")
    assert not (tmp_path / "kb.json").exists()


# ----------------------------------------------------- model commands, fast paths
class FakeManager:
    def __init__(self, kb):
        self.kb = kb

    def save(self, path):
        Path(path).write_bytes(b"fake")
        return Path(path)


class FakeModel:
    """Stands in for KBLaMModel in the CLI plumbing tests (the real one is in the slow tests)."""

    def __init__(self):
        self.calls = []
        self.messages = []
        self.encoder = object()

    def kb_manager(self, kb=None):
        return FakeManager(kb if kb is not None else KnowledgeBase())

    def generate(self, question, kb=None, *, mode="kblam", max_new_tokens=64, **kwargs):
        self.messages.append(question)
        if not isinstance(question, str):  # chat passes the conversation
            question = question[-1]["content"]
        self.calls.append((question, mode, max_new_tokens, len(kb.kb)))
        triples = tuple(kb.kb)
        scores = torch.linspace(1.0, 0.1, len(triples)) if triples else None
        return GenerationResult(text=f"answer to {question}", triples=triples, scores=scores, mode=mode)


@pytest.fixture
def fake_model(monkeypatch):
    model = FakeModel()
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: model)
    return model


def test_ask_prints_answer_and_attended_triples(kb_file, fake_model):
    result = invoke("ask", kb_file, "Who founded Veltrano Dynamics?", "--mode", "kblam", "--top-k", "2",
                    "--max-new-tokens", "7")
    ok(result)
    assert "answer to Who founded Veltrano Dynamics?" in result.output
    assert "Marisol Okonkwo" in result.output and "Nerovia" not in result.output  # top-2 only
    assert fake_model.calls == [("Who founded Veltrano Dynamics?", "kblam", 7, 3)]


def test_chat_reads_until_exit_and_edits_live(kb_file, fake_model):
    script = "Who founded Veltrano Dynamics?\n\n/add Harlow Institute | director | Amara Velasquez\n" \
             "/remove Nobody | x | y\n/bogus\n/kb\nWhere is Nerovia?\nexit\nnot asked\n"
    result = invoke("chat", kb_file, "--max-new-tokens", "5", "--save", input=script)
    ok(result)
    assert [c[0] for c in fake_model.calls] == ["Who founded Veltrano Dynamics?", "Where is Nerovia?"]
    assert fake_model.calls[1][3] == 4  # the /add was seen by the next question
    # the second question is asked with the first turn and its answer before it
    assert [m["role"] for m in fake_model.messages[1]] == ["user", "assistant", "user"]
    assert fake_model.messages[1][1]["content"] == "answer to Who founded Veltrano Dynamics?"
    assert "error:" in result.output and "unknown command" in result.output  # bad lines do not end the chat
    assert "Amara Velasquez" in result.output  # /kb
    assert ("Harlow Institute", "director", "Amara Velasquez") in KnowledgeBase.load(kb_file)


def test_chat_ends_at_eof(kb_file, fake_model):
    ok(invoke("chat", kb_file, input="Who founded Veltrano Dynamics?"))
    assert len(fake_model.calls) == 1
    before = kb_file.read_text()
    ok(invoke("chat", kb_file, input="/add A | b | c\n"))  # no --save: the file is untouched
    assert kb_file.read_text() == before


def test_encode_writes_a_cache(kb_file, fake_model, tmp_path):
    ok(invoke("encode", kb_file))
    assert kb_file.with_suffix(".safetensors").read_bytes() == b"fake"
    user_error(invoke("encode", kb_file, "--out", tmp_path / "kb.bin"), ".safetensors")


@pytest.mark.parametrize("command", [
    ["ask", "{kb}", "Who?"], ["chat", "{kb}"], ["encode", "{kb}"],
])
def test_model_commands_reject_bad_kb_files(command, tmp_path, corrupt_kb, monkeypatch):
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: pytest.fail("model loaded for bad input"))
    missing = tmp_path / "missing.json"
    user_error(invoke(*[str(missing) if a == "{kb}" else a for a in command]), "not found", "missing.json")
    user_error(invoke(*[str(corrupt_kb) if a == "{kb}" else a for a in command]), "corrupt.json")


@pytest.mark.parametrize("args,fragment", [
    (["--mode", "fancy"], "fancy"),
    (["--max-new-tokens", "0"], "max-new-tokens"),
    (["--top-k", "-1"], "top-k"),
])
def test_ask_and_chat_reject_bad_options(kb_file, args, fragment, monkeypatch):
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: pytest.fail("model loaded for bad input"))
    user_error(invoke("ask", kb_file, "Who?", *args), fragment)
    user_error(invoke("chat", kb_file, *args), fragment)


def test_ask_empty_question(kb_file, monkeypatch):
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: pytest.fail("model loaded for bad input"))
    user_error(invoke("ask", kb_file, " ", "--mode", "kblam"), "empty")


def test_weights_that_do_not_exist(kb_file, tmp_path):
    user_error(invoke("ask", kb_file, "Who?", "--weights", tmp_path / "ckpt"), "not found")
    (tmp_path / "ckpt").mkdir()
    user_error(invoke("encode", kb_file, "--weights", tmp_path / "ckpt"), "kblam_config.json")


def test_encoded_cache_of_another_model_is_refused(kb_file, tmp_path, monkeypatch):
    """A .safetensors KB made by other adapters: one-line CacheMismatchError."""
    from kblam_integrations.encoding.manager import KBManager

    from .conftest import tiny_kblam

    maker, other = tiny_kblam(), tiny_kblam()
    with torch.no_grad():
        other.adapters.key.weight.add_(1.0)
    cache = KBManager(KnowledgeBase.load(kb_file), maker.encoder).save(tmp_path / "kb.safetensors")
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: other)
    user_error(invoke("ask", cache, "Who?"), "re-encode")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not safetensors")
    user_error(invoke("ask", garbage, "Who?"), "garbage.safetensors")


# -------------------------------------------------------------------------- train
def test_train_calls_the_trainer(tmp_path, monkeypatch):
    from kblam_integrations.training import trainer

    seen = {}

    def fake_train(cfg, *, resume=True, progress=True):
        seen.update(cfg=cfg, resume=resume)
        return Path(cfg.output_dir) / "final"

    monkeypatch.setattr(trainer, "train", fake_train)
    monkeypatch.setattr("kblam_integrations.runtime.configure_threads", lambda n=None: 1)
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"train_entities": 20, "questions": 40,
                                  "phases": [{"name": "retrieval", "steps": 2, "lm_weight": 0.0}]}))
    result = invoke("train", config, "--output-dir", tmp_path / "run", "--no-resume")
    ok(result)
    assert seen["cfg"].output_dir == str(tmp_path / "run") and seen["resume"] is False
    assert seen["cfg"].total_steps == 2 and seen["cfg"].train_entities == 20
    assert "Trained 2 step(s)" in result.output


@pytest.mark.parametrize("content,fragment", [
    (None, "not found"),
    ("{not json", "cannot read"),
    ('{"bogus_field": 1}', "bogus_field"),
    ('{"phases": [{"name": "x", "steps": 1, "colour": "red"}]}', "colour"),
    ("[1, 2]", "invalid training config"),
    ('{"phases": [{"name": "x", "steps": 0}]}', "no steps"),
    ('{"property_aliases": 1.5}', "property_aliases"),
])
def test_train_bad_configs(tmp_path, monkeypatch, content, fragment):
    from kblam_integrations.training import trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("trainer called for a bad config"))
    config = tmp_path / "cfg.json"
    if content is not None:
        config.write_text(content)
    user_error(invoke("train", config), fragment)


# --------------------------------------------------------------------------- eval
@pytest.fixture
def eval_file(tmp_path) -> Path:
    path = tmp_path / "questions.jsonl"
    path.write_text('{"question": "Who founded Veltrano Dynamics?", "answer": "Marisol Okonkwo"}\n')
    return path


@pytest.fixture
def fake_evaluate(monkeypatch, fake_model):
    import types

    calls = []
    module = types.ModuleType("kblam_integrations.training.evaluate")

    def evaluate_file(model, path, kb_size, mode, seed):
        calls.append((model, Path(path), kb_size, mode, seed))
        return {"accuracy": 0.75, "refusal_rate": 0.1, "n": 4}

    module.evaluate_file = evaluate_file
    monkeypatch.setitem(sys.modules, module.__name__, module)
    return calls


def test_eval_writes_metrics(eval_file, fake_evaluate, fake_model, tmp_path):
    out = tmp_path / "m" / "metrics.json"
    result = invoke("eval", eval_file, "--kb-size", "50", "--mode", "kblam", "--seed", "3", "--out", out)
    ok(result)
    assert json.loads(out.read_text()) == {"accuracy": 0.75, "refusal_rate": 0.1, "n": 4}
    assert fake_evaluate == [(fake_model, eval_file, 50, "kblam", 3)]
    assert "accuracy" in result.output and "0.7500" in result.output


@pytest.mark.parametrize("args,fragment", [
    (["--kb-size", "0"], "kb-size"),
    (["--kb-size", "-5"], "kb-size"),
    (["--kb-size", "many"], "--kb-size"),
    (["--kb-size", "10", "--mode", "rag"], "rag"),
    ([], "--kb-size"),
])
def test_eval_bad_options(eval_file, fake_evaluate, args, fragment):
    user_error(invoke("eval", eval_file, *args), fragment)
    assert fake_evaluate == []


def test_eval_missing_file(tmp_path, fake_evaluate):
    user_error(invoke("eval", tmp_path / "none.jsonl", "--kb-size", "10"), "not found", "none.jsonl")


def test_eval_without_the_evaluation_module(eval_file, monkeypatch, fake_model):
    monkeypatch.setitem(sys.modules, "kblam_integrations.training.evaluate", None)  # import fails
    user_error(invoke("eval", eval_file, "--kb-size", "10"), "evaluation module")


# -------------------------------------------------------------------------- bench
def test_bench_runs_the_scripts_with_their_arguments(tmp_path, monkeypatch):
    (tmp_path / "compare.py").write_text(
        "import sys, pathlib\n"
        "pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:]))\n")
    (tmp_path / "kb_scaling.py").write_text("import sys\nsys.exit(3 if '--fail' in sys.argv else 0)\n")
    monkeypatch.setenv("KBLAM_BENCHMARKS_DIR", str(tmp_path))
    marker = tmp_path / "args.txt"
    ok(invoke("bench", "compare", marker, "--kb-sizes", "10,100", "--help"))
    assert marker.read_text() == "--kb-sizes 10,100 --help"
    ok(invoke("bench", "scaling"))
    assert invoke("bench", "scaling", "--fail").exit_code == 3


def test_bench_missing_scripts(tmp_path, monkeypatch):
    monkeypatch.setenv("KBLAM_BENCHMARKS_DIR", str(tmp_path / "none"))
    user_error(invoke("bench", "compare"), "not found", "compare.py")
    user_error(invoke("bench", "scaling", "--kb-sizes", "10"), "not found", "kb_scaling.py")
    user_error(invoke("bench", "extraction"), "not found", "extraction.py")
    user_error(invoke("bench", "kernels"), "not found", "kb_attention_kernels.py")


def test_bench_script_crash_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "compare.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.setenv("KBLAM_BENCHMARKS_DIR", str(tmp_path))
    monkeypatch.delenv("KBLAM_DEBUG", raising=False)
    user_error(invoke("bench", "compare"), "boom")


# --------------------------------------------------------------------------- demo
@pytest.mark.parametrize("args,fragment", [
    (["--mode", "fancy"], "fancy"),
    (["--max-new-tokens", "0"], "max-new-tokens"),
    (["--top-k", "0"], "top-k"),
    (["--corpus", "/nonexistent/corpus.txt"], "not found"),
    (["-q", " "], "empty"),
])
def test_demo_bad_options(args, fragment, monkeypatch, tmp_path):
    monkeypatch.setattr("kblam_integrations.demo.run_demo", lambda *a, **k: pytest.fail("demo ran for bad input"))
    user_error(invoke("demo", "--out-dir", tmp_path / "d", *args), fragment)


def test_demo_corpus_is_bundled():
    from kblam_integrations.demo import DEFAULT_QUESTIONS, corpus_paragraphs, corpus_text

    text = corpus_text()
    assert "Veltrano Dynamics was founded by Marisol Okonkwo" in text
    assert len(corpus_paragraphs()) >= 4 and 3 <= len(DEFAULT_QUESTIONS) <= 5


# ------------------------------------------------------------- slow: real models
@pytest.mark.slow
def test_encode_then_ask_from_the_cache(kb_file, tmp_path):
    cache = tmp_path / "kb.safetensors"
    ok(invoke("encode", kb_file, "--out", cache))
    assert cache.stat().st_size > 1000
    result = invoke("ask", cache, "Who founded Veltrano Dynamics?", "--mode", "kblam", "--max-new-tokens", "6",
                    "--top-k", "2")
    ok(result)
    assert "top attended triples" in result.output


@pytest.mark.slow
def test_ask_grounded_real_model(kb_file):
    result = invoke("ask", kb_file, "Who founded Veltrano Dynamics?", "--max-new-tokens", "8")
    ok(result)
    # grounded mode either answers from its top triples or refuses (null token wins)
    assert "top attended triples" in result.output or "null token" in result.output


@pytest.mark.slow
def test_chat_real_model(kb_file):
    script = "Who founded Veltrano Dynamics?\n/add Harlow Institute | director | Amara Velasquez\n" \
             "Who is the director of the Harlow Institute?\nexit\n"
    result = invoke("chat", kb_file, "--mode", "kblam", "--max-new-tokens", "6", input=script)
    ok(result)
    assert result.output.count("kblam>") == 2 and "added" in result.output


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = invoke("demo", "--out-dir", out, "--max-new-tokens", "8", "-q", "Who founded Veltrano Dynamics?",
                    "-q", "Where was Marie Curie born?")
    ok(result)
    report = json.loads((out / "report.json").read_text())
    assert len(report["answers"]) == 2 and len(report["triples"]) >= 5
    for answer in report["answers"]:
        assert answer["base_answer"] is not None and Path(answer["heatmap"]).stat().st_size > 1000
        assert answer["attended"], answer  # KBLaMLLM's response_metadata["kb_attention"] reached the demo
        assert {"name", "property", "value", "score"} <= set(answer["attended"][0])
    assert len(KnowledgeBase.load(out / "kb.json")) == len(report["triples"])
    assert "attended triples" in result.output and "base model" in result.output


def test_cli_reference_page_covers_every_command():
    doc = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    for command in ["extract", "kb show", "kb add", "kb remove", "encode", "ask", "chat", "train", "eval",
                    "bench compare", "bench scaling", "bench extraction", "bench eval", "demo"]:
        assert f"kblam {command}" in doc, command


def test_auto_threads(monkeypatch):
    from kblam_integrations.demo import auto_threads

    monkeypatch.setenv("KBLAM_NUM_THREADS", "3")
    assert auto_threads() == 3
    monkeypatch.setenv("KBLAM_NUM_THREADS", "lots")
    monkeypatch.setattr("os.getloadavg", lambda: (0.0, 0.0, 0.0))
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    assert auto_threads() == 4  # idle machine: every core
    monkeypatch.delenv("KBLAM_NUM_THREADS")
    monkeypatch.setattr("os.getloadavg", lambda: (7.5, 0.0, 0.0))
    assert auto_threads() == 1  # busy machine: one thread, never zero


def test_global_threads_option(kb_file, monkeypatch):
    monkeypatch.delenv("KBLAM_NUM_THREADS", raising=False)
    ok(invoke("--threads", "2", "kb", "show", kb_file))
    import os

    assert os.environ.pop("KBLAM_NUM_THREADS") == "2"
