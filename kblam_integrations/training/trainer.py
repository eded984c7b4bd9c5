"""Train KBLaM's adapters and KB query heads on synthetic KB question answering.

Why two losses: with the language-model loss alone, retrieval does not emerge in a few
thousand CPU steps (the model learns the answer template, not which triple to read).
So besides the paper's LM loss on answer tokens only, an auxiliary cross-entropy pulls
the KB attention logits of the answer-predicting positions, in the retrieval layers,
towards the asked triple(s) — or towards the learned null token when the KB cannot
answer. Training runs in phases (see :class:`Phase`): a cheap retrieval phase
(forward only through the frozen backbone, gradients only into the KB query heads and
key adapter) and a joint phase (LM + auxiliary loss, all trainable parts), with a
curriculum over KB size.

Runs through HF ``accelerate``: ``kblam train cfg.json`` in one process, ``accelerate
launch --multi_gpu --num_processes N -m kblam_integrations.cli train cfg.json`` data-parallel
over N GPUs, or over N CPU processes (gloo) on a machine without a GPU. Every process draws
the same batch and takes its share of the rows; the gradients of the trained parts are
summed across processes (the frozen backbone is never wrapped in DDP), so N processes make
the same updates as one process on the whole ``batch_size``. Only the main process writes
checkpoints, caches and logs.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from ..attention.context import use_kb
from ..encoding.manager import KBTokens
from ..errors import ConfigError
from ..kb.atomic_files import atomic_write_text
from ..kb.triple import Triple
from .retrieval_phase import process_share, sum_across_processes
from .tensor_cache import cached_tensors


@dataclass
class Phase:
    """One stage of training.

    ``lm_weight`` 0 means prompt-only forward passes (no answer tokens) and hidden
    states detached before the KB query heads: the backbone is never back-propagated.
    ``batch_size`` is the global batch: in a multi-process run each process takes its share.
    ``cached`` runs the phase on cached query features instead (see
    :mod:`.retrieval_phase`: retrieval loss only, hard-negative KBs, ~100x faster per
    step); on resume a cached phase that did not finish restarts from its beginning.
    """

    name: str
    steps: int
    lm_weight: float = 1.0
    aux_weight: float = 1.0
    batch_size: int = 8
    kb_sizes: list[int] = field(default_factory=lambda: [10, 25, 50, 100])
    lr: float = 1e-3
    cached: bool = False
    objective: str = "per_head"  # cached phases: "per_head" or "mixture" (see retrieval_phase.retrieval_loss)


@dataclass
class TrainConfig:
    output_dir: str = "runs/kblam"
    backbone: str | None = None
    encoder: str | None = None
    seed: int = 0
    train_entities: int = 2500
    questions: int = 12000
    refusal_fraction: float = 0.2
    max_answer_tokens: int = 48
    grad_accum: int = 1
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    log_every: int = 10
    checkpoint_every: int = 100
    # synthetic pools: one generator seed per pool of train_entities entities / questions
    data_seeds: list[int] | None = None
    # KB layers whose attention is the retrieval score (None: KBLaMConfig's default)
    retrieval_layers: list[int] | None = None
    # what the refusal classifier reads: "agreement", "attention+agreement" or "attention"
    # (see kblam_integrations/model/refusal.py)
    refusal_features: str = "agreement"
    # share of training triples whose property is written under another name ("based in",
    # "CEO"; see synthetic.PROPERTY_ALIASES), so retrieval learns to match paraphrased keys
    property_aliases: float = 0.0
    phases: list[Phase] = field(default_factory=lambda: [
        Phase("retrieval", steps=600, lm_weight=0.0, aux_weight=1.0, batch_size=32, kb_sizes=[16, 32, 64, 128], lr=2e-3),
        Phase("joint", steps=400, lm_weight=1.0, aux_weight=1.0, batch_size=8, kb_sizes=[16, 32, 64], lr=5e-4),
    ])

    @classmethod
    def load(cls, path: str | os.PathLike) -> "TrainConfig":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read training config {str(path)!r}: {exc}") from exc
        phases = [Phase(**p) for p in data.pop("phases", [])] or None
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training config fields: {unknown}")
        cfg = cls(**data)
        if phases:
            cfg.phases = phases
        from ..model.refusal import FEATURE_SETS

        if cfg.refusal_features not in FEATURE_SETS:
            raise ConfigError(f"training config field 'refusal_features': {cfg.refusal_features!r} is not one of "
                              f"{list(FEATURE_SETS)}")
        rate = cfg.property_aliases
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
            raise ConfigError(f"training config field 'property_aliases': {rate!r} is not a rate in [0, 1]")
        return cfg

    @property
    def pool_seeds(self) -> list[int]:
        return list(self.data_seeds) if self.data_seeds else [self.seed]

    def pool_tag(self, seed: int) -> str:
        """What a pool's cached tensors depend on: seed, size and the alias rate."""
        tag = f"{seed}-{self.train_entities}"
        return f"{tag}-alias{self.property_aliases:g}" if self.property_aliases else tag

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.phases)


class TrainingData:
    """A pool of training triples with cached sentence embeddings and questions about them."""

    def __init__(self, cfg: TrainConfig, model, cache: Path):
        from .synthetic import SyntheticKBGenerator

        self.triples: list[Triple] = []
        self.questions = []
        keys, values = [], []
        for seed in cfg.pool_seeds:
            gen = SyntheticKBGenerator(split="train", seed=seed, property_aliases=cfg.property_aliases)
            triples = gen.make_kb(cfg.train_entities)
            self.triples += triples
            self.questions += gen.make_questions(triples, cfg.questions)
            emb = cached_tensors(cache / f"embeddings-{cfg.pool_tag(seed)}.safetensors",
                                 lambda: dict(zip(("key", "value"),
                                                  model.encoder.embed_triples(triples, show_progress=True))))
            keys.append(emb["key"])
            values.append(emb["value"])
        self.key_emb, self.value_emb = torch.cat(keys), torch.cat(values)
        self.index = {t.id: i for i, t in enumerate(self.triples)}
        self.by_name: dict[str, list[int]] = {}
        for i, t in enumerate(self.triples):
            self.by_name.setdefault(t.name, []).append(i)
        self.refusal = gen_refusal()

    def batch(self, rng: random.Random, batch_size: int, kb_size: int, refusal_fraction: float):
        """Sample questions and one shared KB: the asked triples + random distractors.

        Some answerable questions are turned into refusals by leaving their triples out
        of the KB ("entity or property not in the KB").
        """
        examples = rng.sample(self.questions, batch_size)
        items = []
        kb_rows: set[int] = set()
        banned: set[int] = set()
        for ex in examples:
            rows = [self.index[t.id] for t in ex.triples if t.id in self.index]
            if rows and rng.random() < refusal_fraction:
                banned.update(rows)
                items.append((ex.question, self.refusal, []))
            elif rows:
                kb_rows.update(rows)
                items.append((ex.question, ex.answer, rows))
            else:
                items.append((ex.question, ex.answer, []))
        # unanswerable questions must stay unanswerable: never add triples they ask about
        for ex in examples:
            for name, prop in getattr(ex, "asked", ()):
                for r in self.by_name.get(name, ()):
                    if self.triples[r].property == prop and r not in kb_rows:
                        banned.add(r)
        from .retrieval_phase import fill_kb

        rows = fill_kb(rng, kb_rows, max(kb_size, len(kb_rows)), len(self.triples), banned)
        pos = {r: i for i, r in enumerate(rows)}
        return [(q, a, [pos[r] for r in rs]) for q, a, rs in items], rows


def gen_refusal() -> str:
    from .synthetic import REFUSAL

    return REFUSAL


def _tokenize(model, items, with_answers: bool, max_answer_tokens: int):
    """Right-padded ids, mask, labels (answer tokens only) and the answer-predicting positions."""
    tok = model.tokenizer
    end = tok.eos_token or ""
    seqs, label_masks, pred_positions = [], [], []
    for question, answer, _ in items:
        prompt = model.prompt_ids(question)[0].tolist()
        ans = tok(answer + end, add_special_tokens=False)["input_ids"][:max_answer_tokens] if with_answers else []
        seqs.append(prompt + ans)
        label_masks.append([0] * len(prompt) + [1] * len(ans))
        # positions whose next-token prediction is an answer token (incl. the last prompt token)
        pred_positions.append(list(range(len(prompt) - 1, len(prompt) - 1 + max(len(ans), 1))))
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    pred = torch.zeros(len(seqs), width, dtype=torch.bool)
    for i, (s, lm, pp) in enumerate(zip(seqs, label_masks, pred_positions)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        lab = torch.tensor([t if m else -100 for t, m in zip(s, lm)])
        labels[i, : len(s)] = lab
        pred[i, pp] = True
    return ids, mask, labels, pred


def aux_retrieval_loss(records, layers, targets, pred, n_triples: int, positions: int | None = None):
    """Cross-entropy of KB attention logits towards the asked triples (or the null token).

    ``records[layer].logits``: ``[B, H, T, N+1]`` (last column = null token).
    ``targets``: per example a list of triple columns (empty -> null).
    ``positions``: the number of answer-predicting positions the mean is over (default: those
    in ``pred``; a process's share of a batch passes the whole batch's, so shares sum up).
    Returns (loss, top-1 accuracy at the last prompt position).
    """
    b = len(targets)
    dist = torch.zeros(b, n_triples + 1)
    for i, rows in enumerate(targets):
        if rows:
            dist[i, rows] = 1.0 / len(rows)
        else:
            dist[i, n_triples] = 1.0
    losses, correct = [], 0.0
    first_pos = pred.float().argmax(dim=1)  # last prompt token
    for layer in layers:
        logits = records[layer].logits  # [B,H,T,N+1]
        dist_l = dist.to(logits.device)
        logp = F.log_softmax(logits.float(), dim=-1)
        ce = -(logp * dist_l[:, None, None, :]).sum(-1)  # [B,H,T]
        w = pred.to(logits.device)[:, None, :].float()
        n = w.sum() if positions is None else torch.tensor(float(positions))
        losses.append((ce * w).sum() / (n * logits.shape[1]).clamp_min(1))
        probs_last = logp.exp()[torch.arange(b), :, first_pos.to(logits.device)].mean(1)  # [B,N+1]
        correct += (dist_l.gather(1, probs_last.argmax(-1, keepdim=True)).squeeze(1) > 0).float().mean().item()
    return torch.stack(losses).mean(), correct / max(len(layers), 1)


def train(cfg: TrainConfig, *, resume: bool = True, progress: bool = True) -> Path:
    """Run (or resume) training; returns the directory holding the final checkpoint.

    Resuming restores the trained weights, the step and the learning-rate schedule; the
    AdamW moments restart (they would need pickle to save, which this project avoids).
    """
    from datetime import timedelta

    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration, InitProcessGroupKwargs, set_seed
    from tqdm.auto import tqdm

    from ..model.kblam_model import WEIGHTS_NAME, KBLaMModel

    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        gradient_accumulation_steps=cfg.grad_accum, cpu=not _has_accelerator_device(),
        # each step's batch is split over the processes: the LR schedule steps once per step, not N times
        dataloader_config=DataLoaderConfiguration(split_batches=True),
        # other processes wait while rank 0 computes the feature caches (minutes on a CPU)
        kwargs_handlers=[InitProcessGroupKwargs(timeout=timedelta(hours=6))])
    _check_processes_joined(accelerator)
    main = accelerator.is_main_process
    if main:
        (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    set_seed(cfg.seed)
    overrides = {"retrieval_layers": cfg.retrieval_layers} if cfg.retrieval_layers else {}
    model = KBLaMModel.from_backbone(cfg.backbone, cfg.encoder, **overrides)
    state_file = out / "checkpoint" / "trainer_state.json"
    step = 0
    if resume and state_file.is_file():
        model.load_trainable(out / "checkpoint" / WEIGHTS_NAME)
        step = json.loads(state_file.read_text())["step"]
    data = TrainingData(cfg, model, out / "cache")
    params = model.trainable_parameters()
    for p in params:
        p.requires_grad_(True)
    model.to(accelerator.device)
    log_f = open(out / "train_log.jsonl", "a") if main else None  # logging: main process only
    bar = tqdm(total=cfg.total_steps, initial=step, disable=not progress or not main, desc="kblam train")
    running_acc, running_loss = None, None
    start_time, start_step = time.time(), step
    phase_start = 0
    for phase in cfg.phases:
        phase_end = phase_start + phase.steps
        if step >= phase_end:
            phase_start = phase_end
            continue
        if phase.cached:
            step = _run_cached_phase(cfg, phase, model, data, out, phase_start, bar, log_f)
            _checkpoint(accelerator, model, out, step)
            phase_start = phase_end
            continue
        # fresh optimizer per phase (phases train different subsets at different rates)
        trainable = params if phase.lm_weight > 0 else (
            list(model.kb_queries.parameters()) + [model.adapters.key.weight]
            + ([model.adapters.null_key] if model.adapters.use_null_token else []))
        opt = torch.optim.AdamW(trainable, lr=phase.lr, weight_decay=cfg.weight_decay)
        # a cached phase leaves its last gradients behind: they must not enter this phase's first step
        opt.zero_grad(set_to_none=True)
        warm = max(1, int(cfg.warmup_ratio * phase.steps))

        def lr_lambda(s: int, warm=warm, total=phase.steps) -> float:
            if s < warm:
                return (s + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (s - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
        for _ in range(step - phase_start):
            sched.step()
        opt, sched = accelerator.prepare(opt, sched)
        rng = random.Random(cfg.seed * 1_000_003 + step)
        while step < phase_end:
            frac = (step - phase_start) / max(1, phase.steps)
            kb_size = phase.kb_sizes[min(len(phase.kb_sizes) - 1, int(frac * len(phase.kb_sizes)))]
            items, rows = data.batch(rng, phase.batch_size, kb_size, cfg.refusal_fraction)
            with_answers = phase.lm_weight > 0
            ids, mask, labels, pred = _tokenize(model, items, with_answers, cfg.max_answer_tokens)
            # every process drew the same batch; losses are normalised by the whole batch's counts
            n_pred, n_answer = int(pred.sum()), int((labels[:, 1:] != -100).sum())
            part = process_share(len(items))
            share = (part.stop - part.start) / len(items)
            width = int(mask[part].sum(1).max())  # drop padding columns no row of this share needs
            items, pred = items[part], pred[part, :width]
            ids, mask, labels = (t[part, :width].to(accelerator.device) for t in (ids, mask, labels))
            idx = torch.tensor(rows)
            with accelerator.accumulate(model):
                keys, values = model.adapters(data.key_emb[idx].to(accelerator.device),
                                              data.value_emb[idx].to(accelerator.device))
                tokens = KBTokens(-1, tuple(data.triples[r] for r in rows), keys, values)
                ctx = model.kb_context(tokens, keep_logits=True)
                ctx.detach_query_input = not with_answers
                decoder = model.backbone.get_decoder()
                with use_kb(ctx), torch.set_grad_enabled(with_answers):
                    hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
                aux, acc = aux_retrieval_loss(ctx.records, model.config.score_layers, [r for _, _, r in items], pred,
                                              len(rows), positions=n_pred)
                loss = phase.aux_weight * aux
                lm = torch.tensor(0.0)
                if with_answers:
                    # LM head only where an answer token is predicted (answer-only loss, and cheap)
                    target = labels[:, 1:]
                    sel = target != -100
                    logits = model.backbone.lm_head(hidden[:, :-1][sel]).float()
                    lm = F.cross_entropy(logits, target[sel], reduction="sum") / max(n_answer, 1)
                    loss = loss + phase.lm_weight * lm
                accelerator.backward(loss)
                # the backbone is not DDP-wrapped: sum the trained parts' gradients by hand, once they are
                # accumulated (an earlier sum would be counted again), and the logged stats every step
                stats = torch.tensor([loss.item(), aux.item(), lm.item(), acc * share], device=accelerator.device)
                loss, aux, lm, acc = sum_across_processes(trainable if accelerator.sync_gradients else [],
                                                          stats).tolist()
                opt.step()
                sched.step()
                opt.zero_grad()
            step += 1
            running_acc = acc if running_acc is None else 0.95 * running_acc + 0.05 * acc
            running_loss = loss if running_loss is None else 0.95 * running_loss + 0.05 * loss
            bar.update(1)
            bar.set_postfix(phase=phase.name, loss=f"{running_loss:.3f}", acc=f"{running_acc:.2f}", kb=kb_size)
            if step % cfg.log_every == 0 and main:
                rate = (step - start_step) / max(1e-9, time.time() - start_time)
                log_f.write(json.dumps({"step": step, "phase": phase.name, "kb_size": kb_size, "loss": loss,
                                        "aux": aux, "lm": lm, "retrieval_acc": acc,
                                        "running_acc": running_acc, "steps_per_s": rate,
                                        "lr": sched.get_last_lr()[0]}) + "\n")
                log_f.flush()
            if step % cfg.checkpoint_every == 0 or step == phase_end:
                _checkpoint(accelerator, model, out, step)
        phase_start = phase_end
    bar.close()
    if log_f is not None:
        log_f.close()
    # values are only trained by an in-loop phase with the LM loss; without one, pure mode must not inject them
    model.config.inject_values = any(p.lm_weight > 0 and not p.cached for p in cfg.phases)
    # an LM phase trained the value adapter: pure mode reads it; otherwise pure mode reads the
    # selected triples' own backbone states (attention/value_blocks.py), which need no training
    model.config.value_source = "adapter" if model.config.inject_values else "states"
    if main:
        accelerator.unwrap_model(model).save_pretrained(out / "final")
    accelerator.wait_for_everyone()  # every process returns a directory that holds the weights
    return out / "final"


def _has_accelerator_device() -> bool:
    """A GPU (or other torch accelerator) is present. Without one the trainer asks accelerate
    for the CPU explicitly: only then does a multi-process launch join one gloo group
    instead of running N unrelated copies of the same training."""
    acc = getattr(torch, "accelerator", None)  # torch >= 2.6
    return acc.is_available() if acc is not None else torch.cuda.is_available()


def _check_processes_joined(accelerator) -> None:
    """A launcher started several processes but accelerate did not join them: each would train
    alone on the whole data and they would overwrite each other's checkpoints."""
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched > 1 and accelerator.num_processes != launched:
        raise ConfigError(f"{launched} processes were launched but accelerate joined {accelerator.num_processes}")


def pool_query_features(cfg: TrainConfig, model, data: TrainingData, out: Path) -> torch.Tensor:
    """Query features of every training question, one cached file per pool (see :mod:`.query_features`)."""
    from .query_features import cached_query_features

    per_pool = len(data.questions) // len(cfg.pool_seeds)
    return torch.cat([
        cached_query_features(model, [q.question for q in data.questions[i * per_pool:(i + 1) * per_pool]],
                              model.config.score_layers,
                              out / "cache" / f"query-features-mean-{cfg.pool_tag(seed)}-{cfg.questions}.safetensors")
        for i, seed in enumerate(cfg.pool_seeds)])


def pool_question_embeddings(cfg: TrainConfig, model, data: TrainingData, out: Path) -> torch.Tensor:
    """Sentence embeddings of every training question (for the refusal classifier's key
    agreement), one cached file per pool."""
    per_pool = len(data.questions) // len(cfg.pool_seeds)
    return torch.cat([
        cached_tensors(out / "cache" / f"question-embeddings-{cfg.pool_tag(seed)}-{cfg.questions}.safetensors",
                       lambda: {"question": model.encoder.embed(
                           [q.question for q in data.questions[i * per_pool:(i + 1) * per_pool]],
                           show_progress=True)})["question"]
        for i, seed in enumerate(cfg.pool_seeds)])


def fit_pool_refusal_classifier(cfg: TrainConfig, phase: "Phase", model, data: TrainingData, out: Path,
                                sampler=None):
    """The refusal classifier fit that follows a cached phase (also ``scripts/fit_refusal.py``)."""
    from .retrieval_phase import RetrievalSampler, fit_refusal_classifier

    if sampler is None:
        sampler = RetrievalSampler(data.triples, data.questions, pool_query_features(cfg, model, data, out))
    q_emb = pool_question_embeddings(cfg, model, data, out) if cfg.refusal_features != "attention" else None
    return fit_refusal_classifier(model, sampler, data.key_emb, kb_sizes=phase.kb_sizes,
                                  refusal_fraction=cfg.refusal_fraction, seed=cfg.seed + 1, question_embeddings=q_emb,
                                  features=cfg.refusal_features)


def _run_cached_phase(cfg: TrainConfig, phase: Phase, model, data: TrainingData, out: Path, phase_start: int,
                      bar, log_f) -> int:
    """One retrieval phase on cached query features; returns the global step at its end."""
    from .retrieval_phase import RetrievalSampler, train_retrieval_phase

    feats = pool_query_features(cfg, model, data, out)
    sampler = RetrievalSampler(data.triples, data.questions, feats)
    bar.reset(total=cfg.total_steps)
    bar.update(phase_start)
    start, running = time.time(), None

    def on_step(s: int, loss: float, acc: float, kb_size: int) -> None:
        nonlocal running
        running = acc if running is None else 0.98 * running + 0.02 * acc
        bar.update(1)
        bar.set_postfix(phase=phase.name, loss=f"{loss:.3f}", acc=f"{running:.2f}", kb=kb_size)
        if s % cfg.log_every == 0 and log_f is not None:
            log_f.write(json.dumps({"step": phase_start + s, "phase": phase.name, "kb_size": kb_size, "loss": loss,
                                    "aux": loss, "lm": 0.0, "retrieval_acc": acc, "running_acc": running,
                                    "steps_per_s": s / max(1e-9, time.time() - start)}) + "\n")
            log_f.flush()

    train_retrieval_phase(model, sampler, data.key_emb, steps=phase.steps, batch_size=phase.batch_size,
                          kb_sizes=phase.kb_sizes, lr=phase.lr, refusal_fraction=cfg.refusal_fraction,
                          warmup_ratio=cfg.warmup_ratio, weight_decay=cfg.weight_decay, seed=cfg.seed + phase_start,
                          objective=phase.objective, on_step=on_step)
    fit_pool_refusal_classifier(cfg, phase, model, data, out, sampler)
    return phase_start + phase.steps


def _checkpoint(accelerator, model, out: Path, step: int) -> None:
    if not accelerator.is_main_process:
        return
    ck = out / "checkpoint"
    accelerator.unwrap_model(model).save_pretrained(ck, dtype=torch.float32)
    atomic_write_text(ck / "trainer_state.json", json.dumps({"step": step, "processes": accelerator.num_processes}))
