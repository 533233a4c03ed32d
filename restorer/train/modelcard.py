"""Model cards: every model directory says what data, budget and metrics it came from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from restorer.train.config import RunConfig


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def front_matter(tags: list[str]) -> list[str]:
    """The Hugging Face card metadata block every restorer model card starts with."""
    return ["---", "library_name: transformers", "pipeline_tag: text2text-generation", "language: en",
            "license: apache-2.0", f"tags: [{', '.join(tags)}]", "---"]  # fmt: skip


def write_model_card(model_dir: Path, cfg: RunConfig, info: dict[str, Any], extra: str = "") -> None:
    best = info.get("best") or {}
    final = info.get("final") or {}
    metrics = final or best
    mc, tc, dc = cfg.model, cfg.train, cfg.data
    hours = info.get("train_seconds", 0) / 3600
    lines = [
        *front_matter(["restorer", "spun-text", "t5"]),
        "",
        "# restorer model",
        "",
        "A T5 encoder-decoder trained from scratch to turn article-spun sentences back into the "
        "original English. Load it with `restorer.Restorer.from_pretrained(path)` or with plain "
        "`transformers` (`AutoTokenizer`, `T5ForConditionalGeneration`).",
        "",
        "## Model",
        f"- {info.get('parameters', 0) / 1e6:.2f}M parameters: d_model {mc.d_model}, d_ff {mc.d_ff}, "
        f"{mc.num_layers}+{mc.num_decoder_layers} layers, {mc.num_heads} heads, tied embeddings",
        f"- SentencePiece {cfg.tokenizer.model_type} tokenizer, {cfg.tokenizer.vocab_size} pieces, byte fallback, identity normalisation",
        "",
        "## Data",
        f"- Corpus: `{dc.corpus_dir}` ({info.get('corpus_sentences', '?')} training sentences; built by "
        "`restorer data build`: Brown, State of the Union addresses, Wikipedia summaries)",
        f"- Pairs spun on the fly with the `{dc.style}` spinner style; {dc.clean_share:.0%} clean identity pairs; "
        f"at most {dc.max_tokens} tokens per side",
        "",
        "## Training budget",
        f"- {info.get('steps', 0)} steps, {info.get('pairs_seen', 0):,} pairs, {hours:.2f} hours on "
        f"{info.get('processes', 1)} process(es), device `{info.get('device', '?')}`",
        f"- AdamW lr {tc.lr}, {tc.schedule} schedule, warmup {tc.warmup_steps}, batch {tc.batch_size} x accumulation {tc.grad_accum}",
        "",
        "## Metrics (fixed valid set, greedy decoding)",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|"] + [
            f"| {k} | {_fmt(v)} |" for k, v in metrics.items() if k != "step"
        ]
        if best and best.get("step") is not None:
            lines.append(f"\nBest `repaired` at step {best['step']}.")
    else:
        lines.append("(not evaluated)")
    lines += [
        "",
        "## Known weaknesses",
        "- Trained on a few million words of edited American English (news, speeches, encyclopedia "
        "summaries) on a CPU budget: expect misses on rare words, domain terms and long sentences.",
        "- It only knows spinners like the simulated ones; fine-tune on new styles with `restorer finetune`.",
        "- Sentences longer than the training length are split before restoring.",
    ]
    if extra:
        lines += ["", extra]
    (model_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
