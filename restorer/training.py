"""The accelerate training loop, shared by ``train.py`` and fine-tuning.

One function, ``train``, reads like a table of contents: set up the accelerator, the tokenizer,
the model, the data and the optimiser; resume if asked; then loop over batches with periodic
logging, evaluation, time-based checkpoints and export of the best model.

``train.init_from`` starts from a trained model directory (its weights and its tokenizer) instead
of from scratch, and a ``TrainData`` replaces the default data (the corpus spun with
``data.style``): that is how ``restorer finetune`` uses this loop. SIGINT and SIGTERM stop the
loop after the current step, save a checkpoint and export the model (``--resume`` continues).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from restorer.config import ConfigError, RunConfig, load_config, save_config
from restorer.data import (
    BatcherState,
    BucketBatcher,
    ExampleStream,
    PairStream,
    load_sentences,
    make_pairs,
    write_pairs,
)
from restorer.model.t5 import model_config_of


@dataclass
class TrainData:
    """Training data other than the default one (the corpus spun with ``data.style``)."""

    make_stream: Callable[[int, int], ExampleStream]  # (rank, world_size) -> this process's stream
    valid_pairs: list[dict[str, Any]]  # evaluated every eval_every steps; the best `repaired` is kept
    valid_clean: list[str]  # clean sentences for clean_changed
    sentences: int  # corpus sentences behind the stream (for the card)
    info: dict[str, Any] = field(default_factory=dict)  # added to training_info.json


class StopSignal:
    """While active, SIGINT and SIGTERM ask the loop to stop after the current step (it then
    saves); a second SIGINT aborts at once. Handlers are only installed in the main thread."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step and saving a checkpoint "
              "(Ctrl-C again aborts without saving)", file=sys.stderr, flush=True)  # fmt: skip

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


# ----------------------------------------------------------------------------- pieces
def make_accelerator(cfg: RunConfig) -> Any:
    import torch
    from accelerate import Accelerator

    tc = cfg.train
    cpu = tc.device == "cpu" or (tc.device == "auto" and not torch.cuda.is_available())
    mp = tc.mixed_precision
    if mp == "auto":
        mp = "no" if cpu else ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    if tc.threads > 0:
        torch.set_num_threads(tc.threads)
    return Accelerator(cpu=cpu, mixed_precision=mp, gradient_accumulation_steps=tc.grad_accum)


def ensure_tokenizer(cfg: RunConfig, out: Path, accelerator: Any) -> Any:
    """Load the run's tokenizer, training it on the corpus's target side the first time."""
    from restorer.model.tokenizer import load_tokenizer, train_tokenizer

    tok_dir = out / "tokenizer"
    if accelerator.is_main_process and not (tok_dir / "tokenizer.json").exists():
        sentences = load_sentences(Path(cfg.data.corpus_dir) / "train.jsonl")
        train_tokenizer(sentences, tok_dir, cfg.tokenizer)
    accelerator.wait_for_everyone()
    return load_tokenizer(tok_dir)


def load_init(cfg: RunConfig, out: Path, accelerator: Any) -> tuple[Any, Any, RunConfig]:
    """Tokenizer, fp32 model and updated config of the run's starting model ``train.init_from``.

    The tokenizer is the model's own (copied into the run), never retrained; the config's
    ``model`` (and ``tokenizer``, when the model records it) sections are taken from the model."""
    import torch
    from transformers import T5ForConditionalGeneration

    from restorer.model.tokenizer import load_tokenizer

    src = Path(cfg.train.init_from)
    if not (src / "config.json").exists():
        raise ConfigError(f"train.init_from: no model at {src} (no config.json)")
    tok_dir = out / "tokenizer"
    if accelerator.is_main_process and not (tok_dir / "tokenizer.json").exists():
        load_tokenizer(src).save_pretrained(str(tok_dir))
    accelerator.wait_for_everyone()
    tokenizer = load_tokenizer(tok_dir)
    torch.manual_seed(cfg.train.seed)
    model = T5ForConditionalGeneration.from_pretrained(str(src), dtype=torch.float32)
    if len(tokenizer) > model.config.vocab_size:
        raise ConfigError(
            f"train.init_from: {src}: the tokenizer has more pieces than the model's vocabulary"
        )
    cfg = replace(cfg, model=model_config_of(model.config))
    if (src / "restorer_config.yaml").exists():
        # an older or foreign config is skipped: the card then shows this run's tokenizer section
        with contextlib.suppress(ConfigError):
            cfg = replace(cfg, tokenizer=load_config(src / "restorer_config.yaml").tokenizer)
    return tokenizer, model, cfg


def lr_lambda(cfg: RunConfig):  # -> Callable[[int], float]
    tc = cfg.train

    def f(step: int) -> float:
        if step < tc.warmup_steps:
            return (step + 1) / max(1, tc.warmup_steps)
        if tc.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps))
        if tc.schedule == "linear":
            decay = 1.0 - progress
        else:
            decay = 0.5 * (1.0 + math.cos(math.pi * progress))
        return tc.min_lr_ratio + (1.0 - tc.min_lr_ratio) * decay

    return f


def make_optimizer(model: Any, cfg: RunConfig) -> Any:
    import torch

    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "layer_norm" in name else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.train.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.train.lr, betas=(0.9, 0.98), eps=1e-8)


def valid_sets(cfg: RunConfig, out: Path, spinner: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Fixed valid pairs (spun with the training style) and clean valid sentences."""
    import random

    path = out / "valid_pairs.jsonl"
    clean_path = out / "valid_clean.jsonl"
    if path.exists() and clean_path.exists():
        pairs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]
        clean = [
            json.loads(x)["text"] for x in clean_path.read_text(encoding="utf-8").splitlines() if x.strip()
        ]
        return pairs, clean
    sents = load_sentences(Path(cfg.data.corpus_dir) / "valid.jsonl", cfg.data.min_words)
    rng = random.Random(cfg.data.valid_seed)
    rng.shuffle(sents)
    n, m = cfg.data.valid_size, cfg.data.valid_clean_size
    pairs = make_pairs(sents[:n], spinner, seed=f"valid:{cfg.data.valid_seed}")
    clean = sents[n : n + m]
    write_pairs(path, pairs)
    write_pairs(clean_path, [{"text": c} for c in clean])
    return pairs, clean


def evaluate_model(
    model: Any, tokenizer: Any, pairs: list[dict[str, Any]], clean: list[str], cfg: RunConfig
) -> dict[str, float]:
    """The metrics of the model being trained: its greedy decode, no guard."""
    from functools import partial

    from restorer.eval.evaluation import evaluate
    from restorer.infer.decoders import greedy_restore

    tc = cfg.train
    restore = partial(greedy_restore, model, tokenizer, batch_size=tc.eval_batch_size, max_new_tokens=tc.eval_max_new_tokens)
    return evaluate(restore, [p["spun"] for p in pairs], [p["original"] for p in pairs], clean).metrics


def export_model(model: Any, tokenizer: Any, cfg: RunConfig, out_dir: Path, info: dict[str, Any]) -> None:
    """``save_pretrained`` (safetensors) + tokenizer + config + model card."""
    from restorer.modelcard import write_model_card

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    save_config(cfg, tmp / "restorer_config.yaml")
    (tmp / "training_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    write_model_card(tmp, cfg, info)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)


class CsvLog:
    def __init__(self, path: Path, fields: list[str]) -> None:
        self.path, self.fields = path, fields
        if not path.exists():
            with open(path, "w", newline="") as fh:
                csv.writer(fh).writerow(fields)

    def write(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.writer(fh).writerow([row.get(f, "") for f in self.fields])


def latest_checkpoint(out: Path) -> Path | None:
    ckpts = sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))
    ckpts = [c for c in ckpts if (c / "trainer_state.json").exists()]
    return ckpts[-1] if ckpts else None


def default_data(cfg: RunConfig, out: Path, main: bool) -> TrainData:
    """The corpus spun on the fly with ``data.style`` and its fixed valid sets."""
    from restorer.spin.spinner import Spinner

    dc = cfg.data
    spinner = Spinner.from_style(dc.style)
    sentences = load_sentences(Path(dc.corpus_dir) / "train.jsonl", dc.min_words)
    valid_pairs, valid_clean = valid_sets(cfg, out, spinner) if main else ([], [])

    def make_stream(rank: int, world_size: int) -> PairStream:
        return PairStream(sentences, spinner, dc.clean_share, seed=dc.seed + cfg.train.seed, rank=rank,
                          world_size=world_size)  # fmt: skip

    return TrainData(make_stream, valid_pairs, valid_clean, len(sentences))


# ----------------------------------------------------------------------------- the loop
def train(cfg: RunConfig, resume: bool = False, data: TrainData | None = None) -> dict[str, Any]:
    """Train (or, with ``train.init_from``, continue training) a model; ``data`` replaces the
    default data. Returns the run's info, with ``final`` metrics and ``interrupted``."""
    import torch
    from tqdm.auto import tqdm

    from restorer.model.t5 import build_model, count_parameters

    tc, dc = cfg.train, cfg.data
    out = Path(tc.output_dir)
    accelerator = make_accelerator(cfg)
    main = accelerator.is_main_process
    if main:
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()

    if tc.init_from:
        tokenizer, model, cfg = load_init(cfg, out, accelerator)
    else:
        tokenizer = ensure_tokenizer(cfg, out, accelerator)
        model = build_model(
            cfg.model, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, seed=tc.seed
        )
    if main:
        save_config(cfg, out / "config.yaml")
    n_params = count_parameters(model)
    data = data or default_data(cfg, out, main)
    valid_pairs, valid_clean = (data.valid_pairs, data.valid_clean) if main else ([], [])

    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state: dict[str, Any] = {
        "step": 0,
        "pairs": 0,
        "tokens": 0,
        "train_seconds": 0.0,
        "best": None,
        "pool": 0,
        "batch": 0,
    }
    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and main:
        print(f"no checkpoint in {out}/checkpoints: starting from scratch")
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        state.update(json.loads((ckpt / "trainer_state.json").read_text()))
        if main:
            print(f"resumed from {ckpt} at step {state['step']}")

    stream = data.make_stream(accelerator.process_index, accelerator.num_processes)
    batcher = BucketBatcher(stream, tokenizer, tc.batch_size, dc.pool_batches, dc.max_tokens, seed=dc.seed,
                            state=BatcherState(state["pool"], state["batch"]))  # fmt: skip
    log = (
        CsvLog(out / "log.csv", ["step", "elapsed_s", "loss", "lr", "pairs_per_s", "tokens_per_s", "pairs"])
        if main
        else None
    )
    elog = (
        CsvLog(
            out / "eval.csv",
            ["step", "pairs", "repaired", "exact", "chrf", "bleu", "edit_f05", "clean_changed"],
        )
        if main
        else None
    )
    if main:
        print(f"model: {n_params / 1e6:.2f}M parameters; {data.sentences} training sentences; "
              f"{accelerator.num_processes} process(es) on {accelerator.device}; mixed precision {accelerator.mixed_precision}")  # fmt: skip

    def save_checkpoint() -> None:
        state["pool"], state["batch"] = batcher.state.pool, batcher.state.batch
        path = out / "checkpoints" / f"step-{state['step']}"
        accelerator.save_state(str(path), safe_serialization=True)
        if main:
            (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
            for old in sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[
                : -tc.keep_checkpoints
            ]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    last_eval: dict[str, float] = {}
    last_eval_step = [-1]

    def run_eval() -> dict[str, float]:
        metrics: dict[str, float] = {}
        if main:
            unwrapped = accelerator.unwrap_model(model)
            unwrapped.eval()
            metrics = evaluate_model(unwrapped, tokenizer, valid_pairs, valid_clean, cfg)
            unwrapped.train()
            elog.write({"step": state["step"], "pairs": state["pairs"], **metrics})  # type: ignore[union-attr]
            score = metrics["repaired"]
            if state["best"] is None or score > state["best"]["repaired"]:
                state["best"] = {"step": state["step"], **metrics}
                export_model(unwrapped, tokenizer, cfg, out / "best", info())
            print(
                f"eval step {state['step']}: "
                + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "n")
            )
        accelerator.wait_for_everyone()
        last_eval.clear()
        last_eval.update(metrics)
        last_eval_step[0] = state["step"]
        return metrics

    def info() -> dict[str, Any]:
        return {
            "parameters": n_params,
            "steps": state["step"],
            "pairs_seen": state["pairs"],
            "train_seconds": round(state["train_seconds"], 1),
            "processes": accelerator.num_processes,
            "device": str(accelerator.device),
            "best": state["best"],
            "corpus_sentences": data.sentences,
            "init_from": tc.init_from,
            **data.info,
            "config": asdict(cfg),
        }

    model.train()
    start = time.time()
    deadline = start + tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
    last_ckpt = time.time()
    win_pairs = win_tokens = 0
    win_start = time.time()
    loss_sum, loss_n = 0.0, 0
    seconds_at_start = state["train_seconds"]
    if tc.init_from and state["step"] == 0 and tc.eval_every > 0:
        run_eval()  # the starting model's score: the best model is never worse than it
    bar = tqdm(
        total=tc.max_steps, initial=state["step"], disable=not main, dynamic_ncols=True, smoothing=0.05
    )
    batches = iter(batcher)
    interrupted = False
    with StopSignal() as stop:
        while state["step"] < tc.max_steps and time.time() < deadline:
            for _ in range(tc.grad_accum):
                batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
                with accelerator.accumulate(model):
                    loss = model(**batch).loss
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                n_pairs = batch["input_ids"].shape[0] * accelerator.num_processes
                n_tok = (
                    int((batch["attention_mask"].sum() + (batch["labels"] != -100).sum()).item())
                    * accelerator.num_processes
                )
                win_pairs += n_pairs
                win_tokens += n_tok
                state["pairs"] += n_pairs
                state["tokens"] += n_tok
                loss_sum += float(loss.detach())
                loss_n += 1
            state["step"] += 1
            state["train_seconds"] = seconds_at_start + (time.time() - start)
            bar.update(1)
            if state["step"] % tc.log_every == 0 and main:
                dt = max(time.time() - win_start, 1e-9)
                row = {
                    "step": state["step"],
                    "elapsed_s": round(state["train_seconds"], 1),
                    "loss": round(loss_sum / max(loss_n, 1), 4),
                    "lr": f"{scheduler.get_last_lr()[0]:.2e}",
                    "pairs_per_s": round(win_pairs / dt, 1),
                    "tokens_per_s": round(win_tokens / dt, 0),
                    "pairs": state["pairs"],
                }
                log.write(row)  # type: ignore[union-attr]
                bar.set_postfix(loss=row["loss"], pairs_s=row["pairs_per_s"], tok_s=row["tokens_per_s"])
                win_pairs = win_tokens = 0
                win_start = time.time()
                loss_sum, loss_n = 0.0, 0
            if tc.eval_every > 0 and state["step"] % tc.eval_every == 0:
                run_eval()
            if time.time() - last_ckpt >= tc.checkpoint_minutes * 60:
                save_checkpoint()
                last_ckpt = time.time()
            if stop.signum:
                accelerator.set_trigger()
            if accelerator.check_trigger():  # every process stops at the same step
                interrupted = True
                break
        bar.close()  # the handlers stay until the model is saved
        # every rank takes the same branch here: run_eval has barriers inside
        if tc.eval_every <= 0:
            final_metrics: dict[str, float] = {}
        elif last_eval_step[0] == state["step"] or interrupted:
            final_metrics = dict(last_eval) if last_eval_step[0] == state["step"] else {}
        else:
            final_metrics = run_eval()
        save_checkpoint()
        if main:
            export_model(
                accelerator.unwrap_model(model),
                tokenizer,
                cfg,
                out / "final",
                {**info(), "final": final_metrics},
            )
            if interrupted:
                print(f"stopped at step {state['step']}: checkpoint saved in {out / 'checkpoints'}; "
                      "continue with --resume", file=sys.stderr)  # fmt: skip
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {**info(), "final": final_metrics, "main_process": main, "interrupted": interrupted}
