"""`restorer finetune`: adapt a trained model to a new spinner style without forgetting the old ones.

``run_finetune`` reads like a table of contents: check the inputs, prepare the data (mine a
style, split held-out pairs, set up the mix with replay), score the base model, train with
``restorer.train.loop.train`` from the base model's weights within the time budget, install the
best checkpoint as the output model directory, score it, and write its card.

Layout of the output directory ``OUT``::

    OUT/config.json, model.safetensors, tokenizer.json, ...   the fine-tuned model (save_pretrained)
    OUT/README.md                    the model card: base model, data, budget, before/after metrics
    OUT/finetune_info.json           the same as data; OUT/finetune_config.yaml, the settings
    OUT/mined_style.yaml, mined_dictionary.tsv   the mined spinner (with --pairs)
    OUT/finetune_data/               training pairs, held-out pairs, the base valid sample
    OUT/training/                    the training run: checkpoints (for --resume), logs, best, final
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from restorer.data import write_pairs
from restorer.infer.styles import STYLE_FILE
from restorer.train.config import RunConfig, load_config, save_config
from restorer.train.finetune.card import metrics_table, write_finetune_card, write_style_card
from restorer.train.finetune.data import FinetuneError, Prepared, check_sources, prepare

PACKAGED_CONFIG = Path(__file__).with_name("finetune.yaml")
KEPT_METRICS = ("repaired", "exact", "clean_changed", "chrf", "edit_f05")


def finetune_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """The packaged fine-tune defaults, then ``path`` (a YAML), then ``section.key=value`` overrides."""
    return load_config(path, overrides, base=PACKAGED_CONFIG)


def is_main_process() -> bool:
    """Rank 0 (before the accelerator exists: launchers set RANK)."""
    return int(os.environ.get("RANK", "0")) == 0


def check_run(cfg: RunConfig, resume: bool) -> tuple[Path, Path]:
    """The base model and output directories, or a ``FinetuneError`` saying what is wrong."""
    if not cfg.train.init_from:
        raise FinetuneError("no base model: give --model DIR (train.init_from)")
    base = Path(cfg.train.init_from)
    if not (base / "config.json").exists():
        raise FinetuneError(
            f"no model at {base} (no config.json): --model takes a model directory, e.g. runs/default/best"
        )
    out = Path(cfg.train.output_dir)
    if out.exists() and not out.is_dir():
        raise FinetuneError(f"--output {out} is a file, not a directory")
    if out.resolve() == base.resolve():
        raise FinetuneError("--output must differ from --model: the fine-tune writes a new model directory")
    if not resume and (out / "training" / "checkpoints").exists():
        raise FinetuneError(
            f"{out} already holds a fine-tune run: pass --resume to continue it, or choose another --output"
        )
    check_sources(cfg)
    if not cfg.finetune.train:
        from restorer.infer.pipeline import JudgeSpecError, read_judge_spec

        try:
            named = read_judge_spec(base)
        except JudgeSpecError as exc:
            raise FinetuneError(str(exc)) from None
        if named is None:
            raise FinetuneError(f"--no-train makes a dictionary for the judge, and {base} names none "
                                "(restorer.json): train a proposer instead (drop --no-train)")  # fmt: skip
    return base, out


# ----------------------------------------------------------------------------- evaluation


def evaluate_sets(model_dir: Path, sets: dict[str, list[dict[str, Any]]], cfg: RunConfig,
                  styles: list[Path] | None = None, seq2seq: bool = True) -> dict[str, Any]:  # fmt: skip
    """Metrics of a model directory (with ``styles`` on) on each pairs set: ``{set: {...}}`` with
    ``default`` (the judge path, when the model names a judge: what ``restorer restore`` runs) and,
    with ``seq2seq``, ``guard``/``no_guard`` (the seq2seq model alone, guard on and off)."""
    from restorer.eval.evaluation import evaluate, evaluate_pairs
    from restorer.infer.restorer import Restorer

    # torch for the base and the fine-tuned model alike, so before and after compare the weights only
    r = Restorer.from_pretrained(model_dir, device=cfg.train.device, batch_size=cfg.train.eval_batch_size,
                                 threads=cfg.train.threads or None, backend="torch",
                                 styles=[str(s) for s in styles or []])  # fmt: skip
    out: dict[str, Any] = {}
    for name, pairs in sets.items():
        if not pairs:
            continue
        entry: dict[str, Any] = {}
        if r.judge is not None:
            ev = evaluate(r.restore_sentences, [p["spun"] for p in pairs], [p["original"] for p in pairs])
            entry["default"] = {k: ev.metrics[k] for k in KEPT_METRICS if k in ev.metrics}
        if seq2seq:  # the fine-tuned model alone: under the judge it decodes beside the base model
            res = evaluate_pairs(r.style_decoder or r, pairs, both=True)
            entry.update({g: {k: res[g][k] for k in KEPT_METRICS if k in res[g]} for g in ("guard", "no_guard")})
        out[name] = entry
    return out


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# the evaluation after runs the style's own model beside the base (and makes its int8 export on
# first use): measured at 1.2x the evaluation before (132 s against 111 s, session 13)
AFTER_EVAL_FACTOR = 1.3


def loop_minutes(budget: float, t0: float, eval_seconds: float, now: float | None = None) -> float:
    """Minutes left for the training loop once the data, the evaluation before and the
    evaluation after (``AFTER_EVAL_FACTOR`` times as long) are paid for; 0 means no limit."""
    if budget <= 0:
        return 0.0
    spent = (time.time() if now is None else now) - t0
    left = budget * 60 - spent - AFTER_EVAL_FACTOR * eval_seconds - 5.0
    return max(left / 60, 0.05)


# ----------------------------------------------------------------------------- the run


def _save_data(out: Path, prepared: Prepared) -> None:
    d = out / "finetune_data"
    write_pairs(d / "valid_pairs.jsonl", prepared.valid_pairs)
    write_pairs(d / "base_valid_pairs.jsonl", prepared.base_valid_pairs)
    if prepared.train_pairs:
        write_pairs(d / "train_pairs.jsonl", prepared.train_pairs)


def install_model(src: Path, out: Path) -> None:
    """Copy a ``save_pretrained`` directory's files into the output directory."""
    for f in src.iterdir():
        if f.is_file():
            shutil.copy2(f, out / f.name)


def _base_info(base: Path) -> dict[str, Any]:
    info = _read_json(base / "training_info.json")
    return {k: info[k] for k in ("steps", "pairs_seen", "train_seconds") if k in info}


def run_finetune(cfg: RunConfig, resume: bool = False) -> dict[str, Any]:
    """Fine-tune ``train.init_from`` on ``cfg.finetune``'s data into ``train.output_dir``."""
    from restorer.train.loop import TrainData, train

    t0 = time.time()
    base, out = check_run(cfg, resume)
    main = is_main_process()
    if main:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "finetune_config.yaml")
    style_dir = out if main else Path(tempfile.mkdtemp(prefix="restorer-finetune-"))
    t = time.time()
    prepared = prepare(cfg, out, style_dir, resume)
    seconds = {"data": round(time.time() - t, 1)}
    for note in prepared.notes if main else []:
        print(f"restorer finetune: note: {note}", file=sys.stderr)
    if main:
        ensure_style_file(out, prepared.info)
    sets = {"new": prepared.valid_pairs, "base": prepared.base_valid_pairs}
    trains = cfg.finetune.train
    saved = _read_json(out / "finetune_info.json") if resume else {}
    before, eval_seconds = saved.get("before"), float(saved.get("eval_seconds", 0.0))
    if main:
        _save_data(out, prepared)
        if before is None:
            t = time.time()
            before = evaluate_sets(base, sets, cfg, seq2seq=trains)
            eval_seconds = time.time() - t
            _write_json(out / "finetune_info.json", {"before": before, "eval_seconds": eval_seconds})
        seconds["evaluate_before"] = round(eval_seconds, 1)
    if not trains:
        return _dictionary_only(cfg, base, out, prepared, sets, before, seconds, t0) if main else {}

    train_cfg = replace(cfg, train=replace(cfg.train, output_dir=str(out / "training"),
                                           max_minutes=loop_minutes(cfg.train.max_minutes, t0, eval_seconds)))  # fmt: skip
    data = TrainData(
        prepared.make_stream(cfg.finetune.seed + cfg.train.seed),
        prepared.valid_pairs,
        [p["original"] for p in prepared.valid_pairs],
        sum(s.size for s in prepared.sources),
        {"finetune": prepared.info},
    )
    result = train(train_cfg, resume=resume, data=data)
    if not main:
        return result

    work = out / "training"
    install_model(work / "best" if (work / "best").exists() else work / "final", out)
    seconds["train"] = round(result["train_seconds"], 1)
    t = time.time()
    # the output is a style package that carries its model: the base with the style on, as users run it
    after = None if result["interrupted"] else evaluate_sets(base, sets, cfg, styles=[out])
    seconds["evaluate_after"] = round(time.time() - t, 1)
    info = {
        "base_model": str(base),
        "base_info": _base_info(base),
        "parameters": result["parameters"],
        "data": prepared.info,
        "notes": prepared.notes,
        "sizes": {k: len(v) for k, v in sets.items()},
        "before": before,
        "after": after,
        "eval_seconds": eval_seconds,
        "training": {
            k: result[k] for k in ("steps", "pairs_seen", "train_seconds", "best", "device", "interrupted")
        },
        "seconds": seconds,
        "elapsed_minutes": round((time.time() - t0) / 60, 2),
    }
    _write_json(out / "finetune_info.json", info)
    write_finetune_card(out, replace(cfg, model=result_model_config(result, cfg)), info)
    print(f"\nfine-tuned {base} -> {out} ({result['steps']} steps, {result['pairs_seen']} pairs; "
          f"best step {(result['best'] or {}).get('step', '?')})\n")  # fmt: skip
    print(metrics_table(before, after, info["sizes"]))
    return {**result, "finetune": info}


def ensure_style_file(out: Path, data: dict[str, Any]) -> None:
    """Every output is a style package: ``style.yaml`` (the mined or imported style, or one that
    names the given style) makes ``restorer restore --style OUT`` work."""
    path = out / STYLE_FILE
    if path.exists():
        return
    given = data.get("style")
    style = {"description": "the style of `restorer finetune`'s data", "base": str(Path(given).resolve())
             if given and Path(given).exists() else given or "autoblog"}  # fmt: skip
    header = "# Written by `restorer finetune`; the style it was given, used with `restorer restore --style`.\n"
    path.write_text(header + yaml.safe_dump(style, sort_keys=False), encoding="utf-8")


def _dictionary_only(cfg: RunConfig, base: Path, out: Path, prepared: Prepared,
                     sets: dict[str, list[dict[str, Any]]], before: Any, seconds: dict[str, float],
                     t0: float) -> dict[str, Any]:  # fmt: skip
    """``--no-train``: the style package is its dictionary; score the base with it on, write the card."""
    t = time.time()
    after = evaluate_sets(base, sets, cfg, styles=[out], seq2seq=False)
    seconds["evaluate_after"] = round(time.time() - t, 1)
    info = {
        "base_model": str(base),
        "base_info": _base_info(base),
        "data": prepared.info,
        "notes": prepared.notes,
        "sizes": {k: len(v) for k, v in sets.items()},
        "before": before,
        "after": after,
        "training": None,
        "seconds": seconds,
        "elapsed_minutes": round((time.time() - t0) / 60, 2),
    }
    _write_json(out / "finetune_info.json", info)
    write_style_card(out, cfg, info)
    print(f"\nstyle package {out} (dictionary only, no training)\n")
    print(metrics_table(before, after, info["sizes"]))
    return {"finetune": info}


def result_model_config(result: dict[str, Any], cfg: RunConfig) -> Any:
    """The model section the run actually used (taken from the base model by ``train``)."""
    from restorer.model.t5 import ModelConfig

    model = result.get("config", {}).get("model")
    return ModelConfig(**model) if model else cfg.model
