"""Tokenizer, config, pairs/bucketing, and a CPU end-to-end run of the tiny model."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from restorer.data import BatcherState, BucketBatcher, PairStream, read_pairs
from restorer.spin.spinner import Spinner
from restorer.train.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parent.parent

SUBJECTS = ["The company", "The children", "Our team", "The city council", "Many people", "The new school"]
VERBS = ["said", "announced", "reported", "showed", "found", "believed"]
OBJECTS = [
    "that the game was important last week.",
    "a big change in the local health program.",
    "that prices rose by 12 percent this year.",
    "the results of a recent study on Tuesday.",
    "that the players needed more help.",
]


def make_corpus(path: Path, n_train: int = 300, n_valid: int = 40) -> Path:
    rng = random.Random(0)
    path.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("valid", n_valid), ("test", n_valid)):
        with open(path / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for i in range(n):
                s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
                fh.write(json.dumps({"text": s, "source": "test", "doc": f"{name}/{i}"}) + "\n")
    return path


# ----------------------------------------------------------------------------- tokenizer

TRICKY = [
    "“Curly quotes” and ‘single’ ones — em dash – en dash & ampersand.",
    "Accents: café, naïve, résumé, Zürich, São Paulo.",
    "Emoji 😀🎉 and symbols ½ € ™ survive.",
    "Digits 1,234,567.89 and 2026-11-24 stay digits.",
    "Two  spaces inside a sentence are kept.",
    "Rare script: 東京 and Ελληνικά fall back to bytes.",
]


def test_tokenizer_round_trip_is_exact(tmp_path: Path) -> None:
    from restorer.model.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer

    texts = [
        json.loads(x)["text"] for x in (make_corpus(tmp_path / "c") / "train.jsonl").read_text().splitlines()
    ]
    train_tokenizer(texts, tmp_path / "tok", TokenizerConfig(vocab_size=300))
    tok = load_tokenizer(tmp_path / "tok")
    for s in TRICKY + texts[:20]:
        ids = tok(s)["input_ids"]
        assert ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True) == s


# ----------------------------------------------------------------------------- config


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_config(
        ROOT / "configs" / "tiny.yaml", ["train.lr=5e-4", "model.d_model=48", "data.style=autoblog"]
    )
    assert cfg.train.lr == 5e-4 and cfg.model.d_model == 48 and cfg.data.style == "autoblog"
    assert load_config(ROOT / "configs" / "default.yaml").model.d_model == 256
    for bad in (["train.nope=1"], ["lr=1"], ["bogus.lr=1"], ["train.max_steps=abc"], ["train.lr"]):
        with pytest.raises(ConfigError):
            load_config(ROOT / "configs" / "tiny.yaml", bad)
    with pytest.raises(ConfigError):
        load_config(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- pairs and batches


def test_pair_stream_is_deterministic_and_shards_by_rank() -> None:
    sents = [f"The company said {i} things last week." for i in range(50)]
    sp = Spinner.from_style("mixed")
    a = PairStream(sents, sp, clean_share=0.2, seed=3)
    b = PairStream(sents, sp, clean_share=0.2, seed=3)
    assert [a.example(k) for k in range(60)] == [b.example(k) for k in range(60)]
    r0 = PairStream(sents, sp, seed=3, rank=0, world_size=2)
    r1 = PairStream(sents, sp, seed=3, rank=1, world_size=2)
    originals = {r0.example(k)[1] for k in range(25)} | {r1.example(k)[1] for k in range(25)}
    assert originals == set(sents)  # one epoch split between the ranks, nothing lost
    assert any(s == o for s, o in (a.example(k) for k in range(60)))  # clean identity pairs exist


def test_bucket_batcher_pads_dynamically_and_resumes(tmp_path: Path) -> None:
    from restorer.model.tokenizer import TokenizerConfig, load_tokenizer, train_tokenizer

    texts = [
        json.loads(x)["text"] for x in (make_corpus(tmp_path / "c") / "train.jsonl").read_text().splitlines()
    ]
    train_tokenizer(texts, tmp_path / "tok", TokenizerConfig(vocab_size=300))
    tok = load_tokenizer(tmp_path / "tok")
    stream = PairStream(texts, Spinner.from_style("mixed"), seed=1)
    batcher = BucketBatcher(stream, tok, batch_size=8, pool_batches=4, max_tokens=64, seed=1)
    it = iter(batcher)
    batches = [next(it) for _ in range(6)]
    for b in batches:
        assert b["input_ids"].shape == b["attention_mask"].shape
        assert int(b["attention_mask"][:, -1].sum()) >= 1  # padded to the longest, not beyond
        assert (b["labels"] == -100).any() or b["labels"].shape[1] == max(
            int((r != -100).sum()) for r in b["labels"]
        )
    # resuming from a saved state gives exactly the batches that followed
    state = BatcherState(batcher.state.pool, batcher.state.batch)
    nxt = [next(it) for _ in range(3)]
    again = iter(BucketBatcher(stream, tok, 8, 4, 64, seed=1, state=state))
    for x, y in zip(nxt, [next(again) for _ in range(3)], strict=True):
        assert x["input_ids"].equal(y["input_ids"]) and x["labels"].equal(y["labels"])


# ----------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_tiny_model_train_save_reload_resume_restore(tmp_path: Path) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from restorer.infer import Restorer
    from restorer.train.loop import train

    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    overrides = [
        f"data.corpus_dir={corpus}",
        f"train.output_dir={out}",
        "train.max_steps=12",
        "train.eval_every=6",
    ]
    cfg = load_config(ROOT / "configs" / "tiny.yaml", overrides)
    result = train(cfg)
    assert result["steps"] == 12
    assert (out / "final" / "model.safetensors").exists() and (out / "best" / "README.md").exists()
    assert "repaired" in result["final"]
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) > 1

    # plain transformers loads the exported directory
    model = T5ForConditionalGeneration.from_pretrained(str(out / "final"))
    tok = AutoTokenizer.from_pretrained(str(out / "final"))
    assert model.config.vocab_size == len(tok)

    # resume continues from the checkpoint, not from scratch
    cfg2 = load_config(
        ROOT / "configs" / "tiny.yaml", [*overrides[:-2], "train.max_steps=18", "train.eval_every=0"]
    )
    result2 = train(cfg2, resume=True)
    assert result2["steps"] == 18
    assert result2["pairs_seen"] > result["pairs_seen"]

    # the wrapper restores text, keeping the layout
    r = Restorer.from_pretrained(out / "final", device="cpu")
    doc = "The company said that prices rose.\n\n  Many people found a big change.\n"
    restored = r.restore(doc)
    assert restored.count("\n") == doc.count("\n") and restored.splitlines()[2].startswith("  ")
    assert len(r.restore(["One.", "Two.", ""])) == 3

    # shipping packs fp16 safetensors and scores them (guard on and off) into the card
    from restorer.data import write_pairs
    from restorer.train.ship import ship_model

    pairs = tmp_path / "pairs.jsonl"
    write_pairs(pairs, [{"spun": "The firm stated final week.", "original": "The company said last week."}] * 3)
    info = ship_model(out / "final", tmp_path / "shipped", eval_pairs=pairs)
    assert set(info["evaluation"]) >= {"guard", "no_guard", "torch"}
    card = (tmp_path / "shipped" / "README.md").read_text(encoding="utf-8")
    assert "| metric | torch fp32, guard on | torch fp32, guard off |" in card
    # with CTranslate2 installed the shipped directory carries its int8 export, Restorer's CPU path
    if (tmp_path / "shipped" / "ctranslate2").exists():
        assert "CTranslate2 int8, guard on" in card and "ctranslate2" in info["evaluation"]
        assert Restorer.from_pretrained(tmp_path / "shipped", device="cpu").backend == "ctranslate2"
    shipped = T5ForConditionalGeneration.from_pretrained(str(tmp_path / "shipped"))
    assert next(shipped.parameters()).dtype.is_floating_point


def test_read_pairs_errors(tmp_path: Path) -> None:
    from restorer.data import PairsError

    p = tmp_path / "p.jsonl"
    p.write_text('{"spun": "a", "original": "b"}\nnot json\n')
    with pytest.raises(PairsError, match="not JSON"):
        read_pairs(p)
    p.write_text('{"text": "a"}\n')
    with pytest.raises(PairsError, match="expected"):
        read_pairs(p)


@pytest.mark.slow
def test_distributed_two_cpu_processes(tmp_path: Path) -> None:
    """The real multi-process path: accelerate launches 2 CPU processes (gloo)."""
    import subprocess
    import sys

    corpus = make_corpus(tmp_path / "corpus", n_train=120, n_valid=20)
    out = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(ROOT / "train.py"), str(ROOT / "configs" / "tiny.yaml"), f"data.corpus_dir={corpus}",
        f"train.output_dir={out}", "train.max_steps=4", "train.eval_every=2", "train.device=cpu",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "2 process(es)" in r.stdout
    assert (out / "final" / "model.safetensors").exists()
    state = json.loads(next((out / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    assert state["step"] == 4
