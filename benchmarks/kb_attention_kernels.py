"""KB attention kernels at one KB size: the library's streamed softmax against a fused one.

Usage::

    .venv/bin/python benchmarks/kb_attention_kernels.py --threads 2          # 10k triples
    .venv/bin/python benchmarks/kb_attention_kernels.py --size 1000 --repeats 5

Why this exists: the KB scaling target (first token at 10k triples within 2x the empty
KB) is not met by the library's exact fp32 KB attention on a 2-core CPU, and
``docs/benchmarks/kb_scaling.md`` says why. This script measures the alternatives that
were weighed, in the same model and with the same timing as ``kb_scaling.py``: the
prefill of the chat-formatted question with the last position's logits only, with the
empty-KB time taken in the same process and interleaved run by run.

Variants (random knowledge tokens, as in ``kb_scaling.py``; values are injected):

* ``streamed fp32``: the library (``attention.rectangular``): fp16 tokens, layer-major,
  upcast chunk by chunk into fp32 buffers, one online softmax. Exact to fp32.
* ``flash <dtype> <layout>``: PyTorch's fused CPU flash-attention kernel
  (``aten::_scaled_dot_product_flash_attention_for_cpu``) over the stored tokens in
  their own dtype (fp32 accumulation and softmax inside the kernel; the KB query is
  rounded to the token dtype). Its log-sum-exp is merged with the text part and the null
  token. ``layer-major`` reads the library's ``[N, layers, H*D]`` tokens in place;
  ``head-major`` stores ``[layers, H, N, D]``, the kernel's own layout. The per-triple
  attention record (what ``generate()`` keeps) needs one more pass over the keys.

``record_max_abs_diff``: the largest difference in the first KB layer's recorded
per-triple attention (last prompt position) against ``streamed fp32``: that layer sees
identical inputs, so this is the kernel's own error. ``record_max_abs_diff_all_layers``
takes every KB layer; deeper layers also see hidden states that the previous layers'
injected (random) values changed, so it measures error propagation, not the kernel. The kernels live here, not
in the library. Writes ``docs/benchmarks/kb_attention_kernels.json`` (a list of rows)
and ``.md`` and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as C  # noqa: E402

DEFAULT_OUT = C.DOCS_DIR / "kb_attention_kernels.json"
COLUMNS = [("variant", "variant"), ("kb_size", "KB size"), ("ttft_s", "TTFT (s)"),
           ("ttft_empty_s", "TTFT empty KB (s)"), ("ttft_ratio", "TTFT / empty"),
           ("record_max_abs_diff", "record max abs. diff., first KB layer"),
           ("record_max_abs_diff_all_layers", "record max abs. diff., all KB layers")]
VARIANTS = [("streamed fp32", None, None), ("flash fp16 layer-major", "float16", "layer"),
            ("flash bf16 layer-major", "bfloat16", "layer"), ("flash fp16 head-major", "float16", "head"),
            ("flash bf16 head-major", "bfloat16", "head")]


def fused_kb_attention(t_scores, v_text, kb_query, keys, values, null_key, null_value, scaling, score_shift,
                       record):
    """One KB layer through the fused kernel; ``keys``/``values`` are ``[H, N, D]`` views."""
    import torch

    from kblam_integrations.attention.rectangular import _accumulate, _finite_max

    b, h, _, d = kb_query.shape
    n = keys.shape[1]
    m = _finite_max(t_scores)
    p = torch.exp(t_scores - m)
    total = p.sum(-1, keepdim=True)
    out = torch.matmul(p, v_text.float()).div_(total.clamp_min(1e-30))
    lse_text = m + torch.log(total)  # -inf on fully masked rows: their weight below is 0
    q = kb_query.to(keys.dtype)
    out_kb, lse_kb = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
        q, keys.unsqueeze(0).expand(b, h, n, d), values.unsqueeze(0).expand(b, h, n, d), scale=scaling)
    lse_kb = lse_kb.unsqueeze(-1) + score_shift
    lse = torch.logaddexp(lse_text, lse_kb)
    s_null = None
    if null_key is not None:
        s_null = torch.matmul(kb_query.float() * scaling, null_key.float().unsqueeze(-1)) + score_shift
        lse = torch.logaddexp(lse, s_null)
    out.mul_(torch.exp(lse_text - lse)).add_(out_kb.float().mul_(torch.exp(lse_kb - lse)))
    if s_null is not None:
        out.add_(torch.exp(s_null - lse) * null_value.float().unsqueeze(1))
    if record is not None:  # the last position's attention on every triple (and the null token)
        s_last = torch.matmul(keys, q[:, :, -1].permute(1, 2, 0)).permute(2, 0, 1).float() * scaling  # [B,H,N]
        if s_null is not None:
            s_last = torch.cat([s_last, s_null[:, :, -1, :] - score_shift], -1)
        probs = s_last.add_(score_shift).sub_(lse[:, :, -1]).exp_()
        _accumulate(record, probs.mean(dim=1).unsqueeze(1))
    return out


@contextlib.contextmanager
def kernel_swapped(ctx, per_layer):
    """Route the library's streamed KB attention of ``ctx``'s layers to :func:`fused_kb_attention`."""
    from kblam_integrations.attention import rectangular as R

    layer_of = {ctx.keys[:, j].data_ptr(): j for j in range(ctx.keys.shape[1])}
    original = R._online_attention

    def swapped(t_scores, v_text, kb_query, kb_keys, kb_values, null_key, null_value, scaling, score_shift,
                chunk_size, record, **_):
        keys, values = per_layer[layer_of[kb_keys.data_ptr()]]
        return fused_kb_attention(t_scores, v_text, kb_query, keys, values, null_key, null_value, scaling,
                                  score_shift, record)

    R._online_attention = swapped
    try:
        yield
    finally:
        R._online_attention = original


def layouts(tokens, heads: int, dtype: str, layout: str):
    """Per KB layer ``(keys, values)`` as ``[H, N, D]`` views in ``dtype`` and ``layout``."""
    import torch

    dt = getattr(torch, dtype)
    n, layers, dim = tokens.keys.shape
    d = dim // heads
    out = []
    for j in range(layers):
        pair = []
        for t in (tokens.keys, tokens.values):
            if layout == "head":
                pair.append(t[:, j].view(n, heads, d).permute(1, 0, 2).to(dt).contiguous())
            else:  # the library's own storage, converted in place of fp16
                pair.append(t[:, j].to(dt).view(n, heads, d).permute(1, 0, 2))
        out.append(tuple(pair))
    return out


def run(size: int, repeats: int, weights: str | None = None, model=None) -> list[dict]:
    import torch

    import kb_scaling as S
    from kblam_integrations.attention.context import use_kb

    if model is None:
        model, _ = C.load_model(weights)
    ids = model.prompt_ids(S.QUESTION)
    mask = torch.ones_like(ids)
    keep = {"logits_to_keep": 1} if C.supports_logits_to_keep(model.backbone) else {}
    tokens = S.random_kb_tokens(model, size)
    heads = model.backbone.config.num_attention_heads

    def first_token(per_layer=None, kb=tokens) -> dict:
        with torch.no_grad():
            ctx = model.kb_context(kb, record=True) if kb is not None else None
            swap = kernel_swapped(ctx, per_layer) if per_layer is not None else contextlib.nullcontext()
            with swap, use_kb(ctx):
                model.backbone(input_ids=ids, attention_mask=mask, use_cache=True, **keep)
            return {} if ctx is None else {layer: rec.last_probs for layer, rec in ctx.records.items()}

    reference = first_token()
    rows = []
    for name, dtype, layout in VARIANTS:
        per_layer = layouts(tokens, heads, dtype, layout) if dtype else None
        ttft, empty = S.paired_median(lambda: first_token(per_layer), lambda: first_token(kb=None), repeats)
        got = first_token(per_layer)
        first = min(reference)
        diff = float((got[first] - reference[first]).abs().max())
        diff_all = max(float((got[layer] - reference[layer]).abs().max()) for layer in reference)
        rows.append({"variant": name, "kb_size": size, "dtype": dtype or "float16 tokens, float32 compute",
                     "layout": layout or "layer", "threads": torch.get_num_threads(), "ttft_s": ttft,
                     "ttft_empty_s": empty, "ttft_ratio": ttft / empty, "record_max_abs_diff": diff,
                     "record_max_abs_diff_all_layers": diff_all})
        print(f"  {name:24s} TTFT {ttft:.3f}s, empty {empty:.3f}s, ratio {ttft / empty:.2f}, "
              f"record diff {diff:.1e} (all layers {diff_all:.1e})", flush=True)
        del per_layer
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring.")
    ap.add_argument("--size", type=int, default=10_000, help="KB size in triples")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per variant (median)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    ap.add_argument("--weights", default=None, help="KBLaM checkpoint (default: shipped, else untrained)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    args = ap.parse_args(argv)
    if args.size < 1:
        ap.error("--size must be >= 1")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    C.setup_env(args.threads)
    rows = run(args.size, args.repeats, args.weights)
    C.print_table(rows, COLUMNS, title=f"KB attention kernels at {args.size} triples")
    C.write_json(args.out, rows)
    md = args.out.with_suffix(".md")
    md.write_text(f"Measured with `python benchmarks/kb_attention_kernels.py --threads {rows[0]['threads']}"
                  f"{'' if args.size == 10_000 else f' --size {args.size}'}` (median of {args.repeats}).\n\n"
                  + C.markdown_table(rows, COLUMNS), encoding="utf-8")
    print(f"wrote {args.out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
