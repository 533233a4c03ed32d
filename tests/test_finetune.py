"""`restorer finetune`: style mining, the data mix, and end-to-end fine-tunes of the tiny model."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_training import make_corpus

from restorer.cli import main as cli_main
from restorer.spin.lexicon import default_lexicon
from restorer.spin.spinner import Spinner
from restorer.spin.styles import load_style
from restorer.train.finetune.data import MixStream, Source, clean_draw, held_out_size, pairs_draw
from restorer.train.finetune.mining import _Support, mine_style, split_span, tokens

ROOT = Path(__file__).resolve().parent.parent

# a spinner we know: one-word swaps (inflected by the importer), phrases of unequal and equal length
DICTIONARY = """company\tfirm
child\tyoungster
say\tstate
important\tvital
show\tdemonstrate
according to\tin accordance with
make sure\tbe certain
because\tas a result of
very\textremely
"""

SUBJECTS = ["The company", "The children", "Our company", "A child", "The new company"]
VERBS = ["said", "says", "showed", "shows", "is saying"]
ENDS = [
    "that the game was very important.",
    "that prices rose because demand was strong.",
    "that, according to the report, sales fell.",
    "that we must make sure the children are safe.",
    "an important result on Tuesday.",
]


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(ENDS)}" for _ in range(n)]


def known_spinner(tmp_path: Path, rate: float = 0.8) -> Spinner:
    d = tmp_path / "known.tsv"
    d.write_text(DICTIONARY, encoding="utf-8")
    return Spinner(load_style("autoblog", overrides={"dictionaries": [str(d)], "dictionary_only": True,
                                                     "rate": rate, "coverage": 1.0, "fix_articles": 1.0}))  # fmt: skip


def spin_pairs(spinner: Spinner, texts: list[str]) -> list[dict[str, str]]:
    return [{"spun": spinner.spin(s, f"t:{i}").text, "original": s} for i, s in enumerate(texts)]


def write_jsonl(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _keep_torch_threads() -> Iterator[None]:
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("ft_corpus") / "corpus", n_train=200, n_valid=16)


# a run of a few steps of the tiny model on one thread
TINY = ["train.threads=1", "train.max_steps=6", "train.eval_every=3", "train.batch_size=8",
        "train.log_every=1", "data.pool_batches=4", "finetune.base_valid_size=8"]  # fmt: skip


def tiny_args(model: Path, out: Path, corpus: Path, *extra: str) -> list[str]:
    """``restorer finetune`` arguments for a tiny run with ``corpus`` as the base corpus."""
    return ["finetune", "--model", str(model), "--output", str(out), "--base-corpus", str(corpus),
            *[a for s in TINY for a in ("--set", s)], *extra]  # fmt: skip


# ----------------------------------------------------------------------------- style mining


def test_mining_recovers_known_substitutions(tmp_path: Path) -> None:
    pairs = spin_pairs(known_spinner(tmp_path), sentences(300))
    mined = mine_style(pairs)
    table = {k: c.most_common(1)[0][0] for k, c in mined.entries.items()}
    assert table["company"] == "firm" and table["important"] == "vital" and table["very"] == "extremely"
    assert table["child"] == "youngster"  # children -> youngsters, under the base form
    assert table["say"] == "state" and table["show"] == "demonstrate"  # said/says, showed/shows
    assert table["according to"] == "in accordance with" and table["because"] == "as a result of"
    assert table["make sure"] == "be certain"  # equal-length phrase kept whole: make -> be is no swap
    assert not {"a", "an", "make", "sure"} & set(table)  # article fixes and half-phrases left out
    assert set(table) <= {"company", "child", "say", "show", "important", "according to", "make sure",
                          "because", "very"}  # fmt: skip
    assert 0.7 < mined.rate() < 0.9  # the spinner's rate, measured
    assert mined.consistency() == 1.0  # one favourite per word


def test_mined_style_loads_and_spins_like_the_spinner(tmp_path: Path) -> None:
    mined = mine_style(spin_pairs(known_spinner(tmp_path), sentences(200)))
    style_file, tsv = mined.save(tmp_path / "mined", source="pairs.jsonl")
    assert "# company: replaced" in tsv.read_text(encoding="utf-8")
    style = load_style(style_file, overrides={"rate": 1.0})
    assert style.dictionary_only and style.choice == "favourite"
    spun = Spinner(style).spin("The children said, according to the company, it was very important.", 1).text
    assert spun == "The youngsters stated, in accordance with the firm, it was extremely vital."


def test_mining_replacements_that_contain_the_original_word(tmp_path: Path) -> None:
    d = tmp_path / "d.tsv"
    d.write_text("need\tbe in need of\ngreat\tof great magnitude\nyear\tannual period\n", encoding="utf-8")
    spinner = Spinner(load_style("autoblog", overrides={"dictionaries": [str(d)], "dictionary_only": True,
                                                        "rate": 1.0, "coverage": 1.0, "fix_articles": 1.0}))  # fmt: skip
    texts = ["We need help this year.", "It was a great day.", "A great team needed us for years."]
    pairs = spin_pairs(spinner, texts * 3)
    assert pairs[1]["spun"] == "It was an of great magnitude day."  # the article is fixed for the replacement
    table = {k: c.most_common(1)[0][0] for k, c in mine_style(pairs).entries.items()}
    assert table == {"need": "be in need of", "great": "of great magnitude", "year": "annual period"}


def test_split_span_needs_support_for_every_swap() -> None:
    support = _Support(default_lexicon())
    orig, spun = tokens("the big company"), tokens("the large firm")
    assert split_span((1, 3, 1, 3), orig, spun, support) == [(1, 2, 1, 2), (2, 3, 2, 3)]  # thesaurus synonyms
    orig, spun = tokens("make sure"), tokens("be certain")
    assert split_span((0, 2, 0, 2), orig, spun, support) == [(0, 2, 0, 2)]


def test_mix_stream_is_deterministic_and_weighted() -> None:
    pairs = [{"spun": f"s{i}", "original": f"o{i}"} for i in range(10)]
    sources = [Source("pairs", 0.7, pairs_draw(pairs), 10), Source("clean", 0.3, clean_draw(["c"]), 1)]
    a, b = MixStream(sources, seed=1), MixStream(sources, seed=1)
    xs = [a.example(k) for k in range(400)]
    assert xs == [b.example(k) for k in range(400)]
    assert 0.2 < sum(x == ("c", "c") for x in xs) / 400 < 0.4
    r0, r1 = MixStream(sources, 1, 0, 2), MixStream(sources, 1, 1, 2)
    assert [r0.example(k) for k in range(3)] == [xs[0], xs[2], xs[4]]
    assert [r1.example(k) for k in range(3)] == [xs[1], xs[3], xs[5]]
    assert held_out_size(1000, 0.1, 5, 200) == 100 and held_out_size(20, 0.1, 5, 200) == 5
    assert held_out_size(4, 0.1, 5, 200) == 2  # never more than half


def test_the_training_loop_leaves_room_for_the_longer_evaluation_after() -> None:
    from restorer.train.finetune.run import AFTER_EVAL_FACTOR, loop_minutes

    # 25 minutes, 2 of them spent on data and the evaluation before (100 s of it)
    left = loop_minutes(25.0, t0=0.0, eval_seconds=100.0, now=120.0)
    assert left * 60 + 120.0 + AFTER_EVAL_FACTOR * 100.0 + 5.0 == pytest.approx(25 * 60)
    assert AFTER_EVAL_FACTOR > 1.2  # measured: the evaluation after took 1.2x the one before
    assert loop_minutes(0.0, 0.0, 100.0) == 0.0  # no budget, no limit
    assert loop_minutes(1.0, t0=0.0, eval_seconds=100.0, now=60.0) == 0.05  # never below a few steps


def test_packaged_defaults_are_configs_finetune_yaml() -> None:
    from restorer.train.config import load_config
    from restorer.train.finetune import finetune_config

    cfg = finetune_config(None)
    assert cfg == load_config(ROOT / "configs" / "finetune.yaml")
    assert cfg.train.lr == 5e-5 and cfg.train.eval_every == 100 and cfg.train.checkpoint_minutes == 5


# ----------------------------------------------------------------------------- end to end


def test_finetune_from_pairs(
    tiny_model: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from restorer.infer import Restorer

    texts = [json.loads(x)["text"] for x in (corpus / "train.jsonl").read_text().splitlines()][:60]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", spin_pairs(known_spinner(tmp_path), texts))
    out = tmp_path / "ft"
    assert cli_main(tiny_args(tiny_model, out, corpus, "--pairs", str(pairs))) == 0
    printed = capsys.readouterr().out
    assert "| new style (held out), 6 pairs | seq2seq, guard off | repaired |" in printed
    assert "| base style (valid sample), 8 pairs | seq2seq, guard on | clean_changed |" in printed

    model = T5ForConditionalGeneration.from_pretrained(str(out))
    assert model.config.vocab_size >= len(AutoTokenizer.from_pretrained(str(out)))
    assert (out / "tokenizer.json").read_text() == (
        tiny_model / "tokenizer.json"
    ).read_text()  # not retrained
    assert len(Restorer.from_pretrained(out, device="cpu").restore(["The firm stated.", ""])) == 2

    info = json.loads((out / "finetune_info.json").read_text())
    assert info["data"]["pairs"] == 54 and info["data"]["valid_pairs"] == 6
    assert info["data"]["mined"]["entries"] >= 3 and set(info["data"]["shares"]) == {
        "pairs",
        "spun",
        "clean",
        "replay",
    }
    assert set(info["before"]) == set(info["after"]) == {"new", "base"}
    assert info["training"]["steps"] == 6
    card = (out / "README.md").read_text(encoding="utf-8")
    assert str(tiny_model) in card and "| set | path | metric | before | after | change |" in card
    assert "Style mining:" in card and "Replay of the base mix: `mixed`" in card
    assert load_style(out / "style.yaml").dictionary_only
    assert (out / "evidence.tsv").exists() and set(info["seconds"]) == {"data", "evaluate_before", "train", "evaluate_after"}
    assert (out / "finetune_data" / "valid_pairs.jsonl").exists()


def test_no_train_writes_a_dictionary_style_package(
    tiny_model: Path, tiny_lm: Path, corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--no-train: the package is the mined dictionary (and its evidence), scored with the base's
    judge before and after; no weights; ``restore --style`` uses it; a base without judge is refused."""
    import shutil

    from restorer.infer import Restorer

    base = tmp_path / "base"
    shutil.copytree(tiny_model, base)
    (base / "restorer.json").write_text(json.dumps({"judge": {"lm": str(tiny_lm), "proposers": ["tables"]}}))
    texts = [json.loads(x)["text"] for x in (corpus / "train.jsonl").read_text().splitlines()][:60]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", spin_pairs(known_spinner(tmp_path), texts))
    out = tmp_path / "style"
    assert cli_main(tiny_args(base, out, corpus, "--pairs", str(pairs), "--no-train")) == 0
    printed = capsys.readouterr().out
    assert "| new style (held out), 6 pairs | judge (the default path) | repaired |" in printed
    assert {p.name for p in out.iterdir()} >= {"style.yaml", "dictionary.tsv", "evidence.tsv", "README.md"}
    assert not (out / "model.safetensors").exists() and not (out / "training").exists()
    info = json.loads((out / "finetune_info.json").read_text())
    assert info["training"] is None and set(info["after"]["new"]) == {"default"}
    assert set(info["seconds"]) == {"data", "evaluate_before", "evaluate_after"}
    assert "dictionary only" in (out / "README.md").read_text()
    assert "firm\tcompany" in (out / "evidence.tsv").read_text()
    r = Restorer.from_pretrained(base, device="cpu", backend="torch", styles=[out])
    assert r.judge is not None and len(r.judge.proposer.evidence) > 0
    assert cli_main(tiny_args(tiny_model, tmp_path / "x", corpus, "--pairs", str(pairs), "--no-train")) == 2
    assert "names none" in capsys.readouterr().err


def test_finetune_from_dictionary_via_train_py(tiny_model: Path, corpus: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT))
    import train as train_script

    d = tmp_path / "theirs.txt"
    d.write_text("company|firm|business\nchild|kid\nsay|state\n", encoding="utf-8")
    out = tmp_path / "ft"
    rc = train_script.main([str(ROOT / "configs" / "finetune.yaml"), f"train.init_from={tiny_model}",
                            f"train.output_dir={out}", f"finetune.dictionary={d}",
                            f"finetune.base_corpus={corpus}", *TINY])  # fmt: skip
    assert rc == 0
    info = json.loads((out / "finetune_info.json").read_text())
    assert info["data"]["mode"] == "dictionary" and info["data"]["valid_pairs"] > 0
    assert info["data"]["corpus"] == str(corpus)  # the base corpus, spun with the dictionary's style
    style = load_style(out / "style.yaml")
    assert style.dictionary_only and Path(style.dictionaries[0]).read_text().startswith("company|")
    assert (out / "model.safetensors").exists() and "dictionary" in (out / "README.md").read_text()


def test_finetune_from_style_and_text_corpus(tiny_model: Path, corpus: Path, tmp_path: Path) -> None:
    (tmp_path / "known.tsv").write_text(DICTIONARY, encoding="utf-8")
    style = tmp_path / "theirs.yaml"
    style.write_text(
        "base: autoblog\ndictionaries: [known.tsv]\ndictionary_only: true\nrate: 0.9\ncoverage: 1.0\n"
    )
    text = tmp_path / "mine" / "notes.txt"  # the user's own text: segmented into sentences
    text.parent.mkdir()
    text.write_text("\n\n".join(" ".join(sentences(4, seed=i)) for i in range(30)), encoding="utf-8")
    out = tmp_path / "ft"
    assert (
        cli_main(tiny_args(tiny_model, out, corpus, "--style", str(style), "--corpus", str(text.parent))) == 0
    )
    info = json.loads((out / "finetune_info.json").read_text())
    assert info["data"]["mode"] == "style" and info["data"]["valid_pairs"] >= 5
    assert "held-out corpus sentences" in info["data"]["valid_source"]
    held = {
        json.loads(x)["original"]
        for x in (out / "finetune_data" / "valid_pairs.jsonl").read_text().splitlines()
    }
    assert held and all(s in text.read_text() for s in held)


def test_finetune_on_short_phrases_without_a_corpus(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    phrases = [("the firm", "the company"), ("vital news", "important news"), ("youngsters", "children"),
               ("stated it", "said it"), ("a vital day", "an important day"), ("our firm", "our company")]  # fmt: skip
    pairs = write_jsonl(tmp_path / "phrases.jsonl", [{"spun": s, "original": o} for s, o in phrases * 3])
    out = tmp_path / "ft"
    assert cli_main(tiny_args(tiny_model, out, tmp_path / "no_corpus", "--pairs", str(pairs))) == 0
    err = capsys.readouterr().err
    assert "no corpus to spin with the mined style" in err and "no base corpus" in err
    info = json.loads((out / "finetune_info.json").read_text())
    assert set(info["data"]["shares"]) == {"pairs", "clean", "replay"}
    # company, important, child (children), say (said), less what was held out (copies go together)
    assert info["data"]["mined"]["entries"] >= 3 and info["data"]["valid_pairs"] == 5
    assert "base" not in info["before"]  # no base valid set without the base corpus


def test_interrupt_with_sigterm_then_resume(tiny_model: Path, corpus: Path, tmp_path: Path) -> None:
    from restorer.train.finetune import finetune_config, run_finetune

    texts = [json.loads(x)["text"] for x in (corpus / "train.jsonl").read_text().splitlines()][:40]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", spin_pairs(known_spinner(tmp_path), texts))
    out = tmp_path / "ft"
    args = tiny_args(tiny_model, out, corpus, "--pairs", str(pairs), "--set", "train.max_steps=100000",
                     "--set", "train.eval_every=0")  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "restorer.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    log = out / "training" / "log.csv"
    deadline = time.time() + 90
    while time.time() < deadline and not (log.exists() and len(log.read_text().splitlines()) > 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()[-2000:]
    assert b"SIGTERM: stopping after this step" in err
    state = json.loads(next((out / "training" / "checkpoints").glob("step-*/trainer_state.json")).read_text())
    info = json.loads((out / "finetune_info.json").read_text())
    assert info["training"]["interrupted"] and info["after"] is None and info["before"]
    assert (out / "model.safetensors").exists()  # the best model so far is already usable

    # resume: the saved settings, a few more steps; the step count and the pairs seen continue
    cfg = finetune_config(out / "finetune_config.yaml", [f"train.max_steps={state['step'] + 3}"])
    result = run_finetune(cfg, resume=True)
    assert result["steps"] == state["step"] + 3 and result["pairs_seen"] > state["pairs"]
    assert not result["interrupted"] and result["finetune"]["after"]
    assert result["finetune"]["before"] == info["before"]  # not evaluated again


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing model", "no model at"),
        ("no data option", "give the new style's data"),
        ("two data options", "give only one of"),
        ("empty pairs", "no pairs"),
        ("bad pairs", "not JSON"),
        ("no output", "--output DIR"),
        ("dictionary without corpus", "needs clean text to spin"),
        ("output is the model", "--output must differ from --model"),
    ],
)
def test_bad_input_gives_one_line_errors(
    case: str, message: str, tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"spun": "the firm", "original": "the company"}] * 4)
    (tmp_path / "empty.jsonl").write_text("\n")
    (tmp_path / "bad.jsonl").write_text('{"spun": "a", "original": "b"}\nnot json\n')
    (tmp_path / "d.tsv").write_text("company\tfirm\n")
    model, out = str(tiny_model), str(tmp_path / "out")
    nowhere = ["--base-corpus", str(tmp_path / "none")]
    argv = {
        "missing model": ["--model", str(tmp_path / "nope"), "--output", out, "--pairs", str(pairs)],
        "no data option": ["--model", model, "--output", out],
        "two data options": ["--model", model, "--output", out, "--pairs", str(pairs), "--style", "autoblog"],
        "empty pairs": ["--model", model, "--output", out, "--pairs", str(tmp_path / "empty.jsonl")],
        "bad pairs": ["--model", model, "--output", out, "--pairs", str(tmp_path / "bad.jsonl")],
        "no output": ["--model", model, "--pairs", str(pairs)],
        "dictionary without corpus": [
            "--model",
            model,
            "--output",
            out,
            "--dictionary",
            str(tmp_path / "d.tsv"),
            *nowhere,
        ],
        "output is the model": ["--model", model, "--output", model, "--pairs", str(pairs)],
    }[case]
    assert cli_main(["finetune", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("restorer: error: ") and message in err and err.count("\n") == 1, err
