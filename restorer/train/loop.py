"""The accelerate training loop, shared by ``train.py`` and fine-tuning.

One function, ``train``, reads like a table of contents: :func:`set_up` the accelerator, the
tokenizer, the model, the data and the optimiser (resuming if asked); then loop over
:func:`train_step` with periodic :func:`write_log`, :func:`run_eval` (which exports the best
model) and time-based :func:`save_checkpoint`; finally export the ``final`` model. What the
steps share is a :class:`Run`, and how far it got a :class:`TrainState` (``trainer_state.json``).

``train.init_from`` starts from a trained model directory (its weights and its tokenizer) instead
of from scratch, and a ``TrainData`` replaces the default data (the corpus spun with
``data.style``): that is how ``restorer finetune`` uses this loop. SIGINT and SIGTERM stop the
loop after the current step, save a checkpoint and export the model (``--resume`` continues).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

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
from restorer.train.checkpoints import export_model, latest_checkpoint
from restorer.train.config import ConfigError, RunConfig, load_config, save_config
from restorer.train.csvlog import CsvLog


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


# ----------------------------------------------------------------------------- the run
@dataclass
class TrainState:
    """How far a run got: what ``trainer_state.json`` records beside accelerate's checkpoint."""

    step: int = 0
    pairs: int = 0
    tokens: int = 0
    train_seconds: float = 0.0
    best: dict[str, Any] | None = None  # the best evaluation so far (its step and metrics)
    pool: int = 0  # the batcher's position: its pool, and the batches of that pool already taken
    batch: int = 0


@dataclass
class Window:
    """What the next ``log.csv`` row averages: the steps since the last one."""

    start: float = field(default_factory=time.time)
    pairs: int = 0
    tokens: int = 0
    loss_sum: float = 0.0
    loss_n: int = 0


@dataclass
class Run:
    """One training run on this process: what the steps of :func:`train` share."""

    cfg: RunConfig
    out: Path
    accelerator: Any
    tokenizer: Any
    model: Any
    optimizer: Any
    scheduler: Any
    data: TrainData
    n_params: int
    state: TrainState = field(default_factory=TrainState)
    batcher: Any = None
    log: CsvLog | None = None  # main process only
    elog: CsvLog | None = None
    last_eval: dict[str, float] = field(default_factory=dict)
    last_eval_step: int = -1

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def info(self) -> dict[str, Any]:
        """The run's ``training_info.json``."""
        return {
            "parameters": self.n_params,
            "steps": self.state.step,
            "pairs_seen": self.state.pairs,
            "train_seconds": round(self.state.train_seconds, 1),
            "processes": self.accelerator.num_processes,
            "device": str(self.accelerator.device),
            "best": self.state.best,
            "corpus_sentences": self.data.sentences,
            "init_from": self.cfg.train.init_from,
            **self.data.info,
            "config": asdict(self.cfg),
        }


def set_up(cfg: RunConfig, resume: bool, data: TrainData | None) -> Run:
    """The accelerator, the tokenizer, the model, the data, the optimiser and the logs; the
    latest checkpoint loaded when resuming."""
    import torch

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

    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    run = Run(cfg, out, accelerator, tokenizer, model, optimizer, scheduler, data, n_params)

    ckpt = latest_checkpoint(out) if resume else None
    if resume and ckpt is None and main:
        print(f"no checkpoint in {out}/checkpoints: starting from scratch")
    if ckpt is not None:
        accelerator.load_state(str(ckpt))
        for key, value in json.loads((ckpt / "trainer_state.json").read_text()).items():
            setattr(run.state, key, value)
        if main:
            print(f"resumed from {ckpt} at step {run.state.step}")

    stream = data.make_stream(accelerator.process_index, accelerator.num_processes)
    run.batcher = BucketBatcher(stream, tokenizer, tc.batch_size, dc.pool_batches, dc.max_tokens, seed=dc.seed,
                                state=BatcherState(run.state.pool, run.state.batch))  # fmt: skip
    if main:
        run.log = CsvLog(out / "log.csv", ["step", "elapsed_s", "loss", "lr", "pairs_per_s", "tokens_per_s", "pairs"])
        run.elog = CsvLog(
            out / "eval.csv", ["step", "pairs", "repaired", "exact", "chrf", "bleu", "edit_f05", "clean_changed"]
        )
        print(f"model: {n_params / 1e6:.2f}M parameters; {data.sentences} training sentences; "
              f"{accelerator.num_processes} process(es) on {accelerator.device}; mixed precision {accelerator.mixed_precision}")  # fmt: skip
    return run


def train_step(run: Run, batches: Iterator[dict[str, Any]], window: Window) -> None:
    """One optimiser step: ``grad_accum`` batches forward and backward, then the update."""
    tc, accelerator, model = run.cfg.train, run.accelerator, run.model
    for _ in range(tc.grad_accum):
        batch = {k: v.to(accelerator.device) for k, v in next(batches).items()}
        with accelerator.accumulate(model):
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        n_pairs = batch["input_ids"].shape[0] * accelerator.num_processes
        n_tok = (
            int((batch["attention_mask"].sum() + (batch["labels"] != -100).sum()).item())
            * accelerator.num_processes
        )
        window.pairs += n_pairs
        window.tokens += n_tok
        run.state.pairs += n_pairs
        run.state.tokens += n_tok
        window.loss_sum += float(loss.detach())
        window.loss_n += 1
    run.state.step += 1


def write_log(run: Run, window: Window, bar: Any) -> None:
    """A ``log.csv`` row for the window (main process), shown on the progress bar too."""
    dt = max(time.time() - window.start, 1e-9)
    row = {
        "step": run.state.step,
        "elapsed_s": round(run.state.train_seconds, 1),
        "loss": round(window.loss_sum / max(window.loss_n, 1), 4),
        "lr": f"{run.scheduler.get_last_lr()[0]:.2e}",
        "pairs_per_s": round(window.pairs / dt, 1),
        "tokens_per_s": round(window.tokens / dt, 0),
        "pairs": run.state.pairs,
    }
    run.log.write(row)  # type: ignore[union-attr]
    bar.set_postfix(loss=row["loss"], pairs_s=row["pairs_per_s"], tok_s=row["tokens_per_s"])


def run_eval(run: Run) -> dict[str, float]:
    """Evaluate on the valid sets (main process), log it, and export the model when it is the
    best so far; every process waits for it."""
    state, accelerator = run.state, run.accelerator
    metrics: dict[str, float] = {}
    if run.main:
        unwrapped = accelerator.unwrap_model(run.model)
        unwrapped.eval()
        metrics = evaluate_model(unwrapped, run.tokenizer, run.data.valid_pairs, run.data.valid_clean, run.cfg)
        unwrapped.train()
        run.elog.write({"step": state.step, "pairs": state.pairs, **metrics})  # type: ignore[union-attr]
        score = metrics["repaired"]
        if state.best is None or score > state.best["repaired"]:
            state.best = {"step": state.step, **metrics}
            export_model(unwrapped, run.tokenizer, run.cfg, run.out / "best", run.info())
        print(f"eval step {state.step}: " + " ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "n"))
    accelerator.wait_for_everyone()
    run.last_eval = dict(metrics)
    run.last_eval_step = state.step
    return metrics


def save_checkpoint(run: Run) -> None:
    """accelerate's state and ``trainer_state.json`` in ``checkpoints/step-N``; only the newest
    ``keep_checkpoints`` are kept."""
    state, accelerator, out = run.state, run.accelerator, run.out
    state.pool, state.batch = run.batcher.state.pool, run.batcher.state.batch
    path = out / "checkpoints" / f"step-{state.step}"
    accelerator.save_state(str(path), safe_serialization=True)
    if run.main:
        (path / "trainer_state.json").write_text(json.dumps(asdict(state), indent=2))
        for old in sorted((out / "checkpoints").glob("step-*"), key=lambda p: int(p.name.split("-")[1]))[
            : -run.cfg.train.keep_checkpoints
        ]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def final_metrics(run: Run, interrupted: bool) -> dict[str, float]:
    """The metrics of the last step: evaluated now unless they already were (none when the
    run does not evaluate, or was interrupted between evaluations)."""
    # every rank takes the same branch here: run_eval has barriers inside
    if run.cfg.train.eval_every <= 0:
        return {}
    if run.last_eval_step == run.state.step or interrupted:
        return dict(run.last_eval) if run.last_eval_step == run.state.step else {}
    return run_eval(run)


# ----------------------------------------------------------------------------- the loop
def train(cfg: RunConfig, resume: bool = False, data: TrainData | None = None) -> dict[str, Any]:
    """Train (or, with ``train.init_from``, continue training) a model; ``data`` replaces the
    default data. Returns the run's info, with ``final`` metrics and ``interrupted``."""
    from tqdm.auto import tqdm

    run = set_up(cfg, resume, data)
    tc, state, accelerator = run.cfg.train, run.state, run.accelerator
    run.model.train()
    start = time.time()
    deadline = start + tc.max_minutes * 60 if tc.max_minutes > 0 else math.inf
    last_ckpt = time.time()
    window = Window()
    seconds_at_start = state.train_seconds
    if tc.init_from and state.step == 0 and tc.eval_every > 0:
        run_eval(run)  # the starting model's score: the best model is never worse than it
    bar = tqdm(total=tc.max_steps, initial=state.step, disable=not run.main, dynamic_ncols=True, smoothing=0.05)
    batches = iter(run.batcher)
    interrupted = False
    with StopSignal() as stop:
        while state.step < tc.max_steps and time.time() < deadline:
            train_step(run, batches, window)
            state.train_seconds = seconds_at_start + (time.time() - start)
            bar.update(1)
            if state.step % tc.log_every == 0 and run.main:
                write_log(run, window, bar)
                window = Window()
            if tc.eval_every > 0 and state.step % tc.eval_every == 0:
                run_eval(run)
            if time.time() - last_ckpt >= tc.checkpoint_minutes * 60:
                save_checkpoint(run)
                last_ckpt = time.time()
            if stop.signum:
                accelerator.set_trigger()
            if accelerator.check_trigger():  # every process stops at the same step
                interrupted = True
                break
        bar.close()  # the handlers stay until the model is saved
        final = final_metrics(run, interrupted)
        save_checkpoint(run)
        if run.main:
            export_model(accelerator.unwrap_model(run.model), run.tokenizer, run.cfg, run.out / "final",
                         {**run.info(), "final": final})  # fmt: skip
            if interrupted:
                print(f"stopped at step {state.step}: checkpoint saved in {run.out / 'checkpoints'}; "
                      "continue with --resume", file=sys.stderr)  # fmt: skip
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return {**run.info(), "final": final, "main_process": run.main, "interrupted": interrupted}
