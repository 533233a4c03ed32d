"""The model card of a fine-tuned model: base model, fine-tune data, budget, before/after metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from restorer.train.config import RunConfig
from restorer.train.modelcard import front_matter

METRICS = ("repaired", "exact", "clean_changed")
SETS = {"new": "new style (held out)", "base": "base style (valid sample)"}
GUARDS = {"no_guard": "seq2seq, guard off", "guard": "seq2seq, guard on", "default": "judge (the default path)"}


def _f(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) else "–"


def metrics_table(before: dict[str, Any] | None, after: dict[str, Any] | None, sizes: dict[str, int]) -> str:
    """A Markdown table of the before/after metrics on both sets, guard off and on."""
    before, after = before or {}, after or {}
    rows = ["| set | path | metric | before | after | change |", "|---|---|---|---|---|---|"]
    for key, label in SETS.items():
        if key not in before and key not in after:
            continue
        for guard, on in GUARDS.items():
            if guard not in before.get(key, {}) and guard not in after.get(key, {}):
                continue
            for m in METRICS:
                b = before.get(key, {}).get(guard, {}).get(m)
                a = after.get(key, {}).get(guard, {}).get(m)
                change = f"{a - b:+.4f}" if isinstance(a, float) and isinstance(b, float) else "–"
                rows.append(
                    f"| {label}, {sizes.get(key, 0)} pairs | {on} | {m} | {_f(b)} | {_f(a)} | {change} |"
                )
    return "\n".join(rows)


def _data_lines(data: dict[str, Any]) -> list[str]:
    mode = data.get("mode")
    lines = [f"- New style from the {mode} `{data.get('source')}`"]
    if mode == "pairs":
        lines.append(f"- {data.get('pairs', 0)} training pairs; {data.get('valid_pairs', 0)} held-out pairs "
                     f"({data.get('valid_source')})")  # fmt: skip
    else:
        lines.append(f"- {data.get('valid_pairs', 0)} held-out pairs ({data.get('valid_source')})")
    mined = data.get("mined")
    if mined:
        lines.append(
            f"- Style mining: {mined['entries']} substitution entries ({mined['alternatives']} alternatives, "
            f"{mined['substitutions']} substitutions seen in {mined['changed_pairs']} changed pairs); measured "
            f"rate {mined['rate']:.2f}, most frequent alternative used {mined['consistency']:.0%} of the time: "
            "`style.yaml`, `dictionary.tsv`"
        )
    if data.get("style"):
        lines.append(f"- Spinner style of the new data: `{Path(data['style']).name}`")
    if data.get("corpus"):
        lines.append(
            f"- Clean text spun with it: `{data['corpus']}` ({data.get('corpus_sentences', 0)} sentences)"
        )
    replay = data.get("replay") or {}
    if replay:
        lines.append(f"- Replay of the base mix: `{replay['style']}` style on {replay['text']} "
                     f"({replay['sentences']} sentences, {replay['clean_share']:.0%} clean pairs)")  # fmt: skip
    shares = data.get("shares") or {}
    if shares:
        lines.append("- Mix of every batch: " + ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    return lines


def write_finetune_card(model_dir: Path, cfg: RunConfig, info: dict[str, Any]) -> None:
    """``README.md`` of a fine-tuned model directory (``info`` is finetune_info.json)."""
    mc, tc = cfg.model, cfg.train
    tr = info.get("training", {})
    base = info.get("base_model", "?")
    base_info = info.get("base_info") or {}
    best = tr.get("best") or {}
    lines = [
        *front_matter(["restorer", "spun-text", "t5", "fine-tuned"]),
        "",
        "# restorer style package: a dictionary and a fine-tuned proposer",
        "",
        f"A spinner style for `{base}`, made with `restorer finetune`: its dictionary (`dictionary.tsv`, "
        "imported by `style.yaml`) proposes edits to the base model's judge next to the base tables, and "
        "this directory's T5, fine-tuned from the base with replay of the base mix, proposes and vouches "
        "for the style's candidates next to the base model, whose own candidates cost what they cost without the style. "
        "The base model's files are never changed. Use it with `restorer restore --style DIR` "
        "(or `Restorer.from_pretrained(styles=[DIR])`); the T5 alone also loads with "
        "`restorer.Restorer.from_pretrained(DIR)` or plain `transformers` (`AutoTokenizer`, "
        "`T5ForConditionalGeneration`).",
        "",
        "## Base model",
        f"- `{base}`: {info.get('parameters', 0) / 1e6:.2f}M parameters, d_model {mc.d_model}, d_ff {mc.d_ff}, "
        f"{mc.num_layers}+{mc.num_decoder_layers} layers, {mc.num_heads} heads; its own tokenizer (not retrained)",
    ]
    if base_info:
        lines.append(
            f"- trained for {base_info.get('steps', '?')} steps on {base_info.get('pairs_seen', 0):,} pairs"
        )
    lines += ["", "## Fine-tune data", *_data_lines(info.get("data", {}))]
    lines += [
        "",
        "## Fine-tuning budget",
        f"- {tr.get('steps', 0)} steps, {tr.get('pairs_seen', 0):,} pairs, {tr.get('train_seconds', 0) / 60:.1f} "
        f"minutes of training ({info.get('elapsed_minutes', 0):.1f} minutes in all, budget "
        f"{tc.max_minutes or 'none'}), device `{tr.get('device', '?')}`",
        f"- AdamW lr {tc.lr}, {tc.schedule} schedule, warmup {tc.warmup_steps}, batch {tc.batch_size} x "
        f"accumulation {tc.grad_accum}",
        f"- Kept: the best `repaired` (guard off) on the held-out pairs, evaluated every {tc.eval_every} steps: "
        f"step {best.get('step', '?')}" + (" (the base model itself)" if best.get("step") == 0 else ""),
    ]
    if info.get("seconds"):
        lines.append(_seconds_line(info))
    if tr.get("interrupted"):
        lines.append("- Interrupted before the end of its budget: `restorer finetune --resume` continues it")
    lines += [
        "",
        "## Metrics before and after",
        "",
        "Before: the base model. After: the base model with this style on (`restorer restore --style "
        "DIR`). Paths: the seq2seq model alone with the guard off (the raw greedy decode) and on, and "
        "the judge (the default path, when the base model names one):",
        "",
        metrics_table(info.get("before"), info.get("after"), info.get("sizes", {})),
    ]
    if info.get("after") is None:
        lines += ["", "(not evaluated after fine-tuning: the run was interrupted)"]
    lines += [
        "",
        "## Known weaknesses",
        "- A fine-tune learns the new style from few examples: substitutions never seen in the pairs "
        "(or the mined style) are still missed.",
        "- The forgetting check covers the base style's valid sample only.",
    ]
    notes = info.get("notes") or []
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    (model_dir / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _seconds_line(info: dict[str, Any]) -> str:
    sec = info.get("seconds") or {}
    return "- Time of each step: " + ", ".join(f"{k.replace('_', ' ')} {v:.0f} s" for k, v in sec.items())


def write_style_card(out: Path, cfg: RunConfig, info: dict[str, Any]) -> None:
    """``README.md`` of a style package without training (``restorer finetune --no-train``)."""
    base = info.get("base_model", "?")
    lines = [
        *front_matter(["restorer", "spun-text", "spinner-style"]),
        "",
        "# restorer style package (dictionary only)",
        "",
        f"A spinner style for `{base}`, made by `restorer finetune --no-train`: its dictionary "
        "(`dictionary.tsv`, imported by `style.yaml`) is inverted into proposals that the base model's "
        "judge chooses among, next to the base tables, which it never changes. No weights were "
        "trained. Use it with `restorer restore --style DIR` or `Restorer.from_pretrained(styles=[DIR])`; "
        "edit the dictionary freely.",
        "",
        "## Data",
        *_data_lines(info.get("data", {})),
        "",
        "## Time",
        _seconds_line(info),
        f"- {info.get('elapsed_minutes', 0):.1f} minutes in all",
        "",
        "## Metrics before and after",
        "",
        "Before: the base model. After: the base model with this style on:",
        "",
        metrics_table(info.get("before"), info.get("after"), info.get("sizes", {})),
    ]
    notes = info.get("notes") or []
    if notes:
        lines += ["", "## Notes", *[f"- {n}" for n in notes]]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
