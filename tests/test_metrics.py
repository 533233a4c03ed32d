"""Tests of restorer.eval's metrics: hand-computed cases, properties, and the offline evaluate route."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import sacrebleu
from hypothesis import given, settings
from hypothesis import strategies as st

from restorer.eval import (
    METRIC_NAMES,
    WordEdit,
    bleu_score,
    chrf_score,
    clean_changed_score,
    compute_metrics,
    edit_counts,
    edit_scores,
    exact_score,
    extract_edits,
    load_metric,
    metric_path,
    precision_recall_f,
    repaired_score,
    restoration_scores,
    token_edit_distance,
    tokenize_words,
    word_edit_distance,
)

REPO = Path(__file__).resolve().parents[1]

# A small corpus with spun words, a phrase edit, a damaged output and an untouched sentence.
SOURCES = [
    "the fast auburn fox leaps over the idle dog .",
    "we acted in accordance with the rules .",
    'She said, "it\'s a big house."',
    "Nothing was changed here.",
    "The people  were  happy.",
]
REFERENCES = [
    "the quick brown fox jumps over the lazy dog .",
    "we acted according to the rules .",
    'She said, "it\'s a large house."',
    "Nothing was changed here.",
    "The people were glad.",
]
PREDICTIONS = [
    "the quick brown fox leaps over the idle dog .",
    "we acted according to the rules .",
    'She told, "it\'s a big house."',
    "Nothing was altered here.",
    "The people were glad. ",
]
PREDICTIONS_ON_CLEAN = [
    "the quick brown fox jumps over the lazy dog .",
    "we acted according to the rules .",
    'She said, "it\'s a big house."',
    "Nothing was changed here.",
    "The people were glad.",
]


def approx(x: float) -> Any:
    return pytest.approx(x, rel=1e-12, abs=1e-12)


# --------------------------------------------------------------------------- tokens and distance


def test_tokenize_splits_punctuation_keeps_contractions() -> None:
    assert tokenize_words('He said, "don\'t" - well-known.') == [
        "He",
        "said",
        ",",
        '"',
        "don't",
        '"',
        "-",
        "well",
        "-",
        "known",
        ".",
    ]
    assert tokenize_words("  ") == []


def test_word_edit_distance_hand_cases() -> None:
    assert word_edit_distance("He said, yes.", "He says, yes.") == 1  # only the word, not the comma
    assert word_edit_distance("said,", "said") == 1  # the comma is its own token
    assert word_edit_distance("The cat", "the cat") == 1  # case-sensitive
    assert word_edit_distance("a  b\tc", "a b c") == 0  # whitespace is not a token
    assert word_edit_distance("in accordance with", "according to") == 3
    assert word_edit_distance("", "one two three") == 3
    assert word_edit_distance("a b c d e", "x a b c d") == 2


def _naive_distance(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _apply(tokens: Sequence[str], edits: Sequence[WordEdit]) -> list[str]:
    out: list[str] = []
    pos = 0
    for start, end, repl in sorted(edits):
        assert start >= pos
        out.extend(tokens[pos:start])
        out.extend(repl)
        pos = end
    out.extend(tokens[pos:])
    return out


TOKENS = st.lists(st.sampled_from(["a", "b", "c", "the", "cat", ",", "."]), max_size=9)


@settings(deadline=None)
@given(TOKENS, TOKENS, TOKENS)
def test_word_edit_distance_is_a_metric(a: list[str], b: list[str], c: list[str]) -> None:
    sa, sb, sc = " ".join(a), " ".join(b), " ".join(c)
    assert word_edit_distance(sa, sa) == 0
    assert word_edit_distance(sa, sb) == word_edit_distance(sb, sa)
    assert (word_edit_distance(sa, sb) == 0) == (a == b)
    assert word_edit_distance(sa, sc) <= word_edit_distance(sa, sb) + word_edit_distance(sb, sc)


@settings(deadline=None)
@given(TOKENS, TOKENS)
def test_distance_matches_plain_dp(a: list[str], b: list[str]) -> None:
    assert token_edit_distance(a, b) == _naive_distance(a, b)
    assert word_edit_distance(" ".join(a), " ".join(b)) == _naive_distance(a, b)


@settings(deadline=None)
@given(TOKENS, TOKENS)
def test_edits_rebuild_target_at_minimum_cost(a: list[str], b: list[str]) -> None:
    edits = extract_edits(" ".join(a), " ".join(b))
    assert _apply(a, edits) == b
    # each edit costs max(words removed, words inserted): the alignment is an optimal one
    assert sum(max(end - start, len(repl)) for start, end, repl in edits) == token_edit_distance(a, b)


# --------------------------------------------------------------------------- edits


def test_phrase_edit_is_one_edit() -> None:
    src = "we acted in accordance with the rules"
    ref = "we acted according to the rules"
    assert extract_edits(src, ref) == [(2, 5, ("according", "to"))]
    assert edit_counts([src], [ref], [ref]) == (1, 0, 0)
    # half-right phrase: the predicted edit differs from the gold one -> 1 FP + 1 FN
    assert extract_edits(src, "we acted according with the rules") == [(2, 4, ("according",))]
    assert edit_counts([src], ["we acted according with the rules"], [ref]) == (0, 1, 1)


def test_word_swaps_are_separate_edits() -> None:
    src = "the fast auburn fox leaps"
    ref = "the quick brown fox jumps"
    pred = "the quick red fox leaps"
    assert extract_edits(src, ref) == [(1, 2, ("quick",)), (2, 3, ("brown",)), (4, 5, ("jumps",))]
    assert extract_edits(src, pred) == [(1, 2, ("quick",)), (2, 3, ("red",))]
    assert edit_counts([src], [pred], [ref]) == (1, 1, 2)
    p, r, f = 1 / 2, 1 / 3, 1.25 * (1 / 2) * (1 / 3) / (0.25 * (1 / 2) + 1 / 3)
    assert edit_scores([src], [pred], [ref]) == {
        "edit_precision": approx(p),
        "edit_recall": approx(r),
        "edit_f05": approx(f),
    }


def test_edit_scores_corpus_level_and_conventions() -> None:
    # corpus: sentence 1 TP1 FP1 FN2, sentence 2 TP1 -> TP2 FP1 FN2
    src = ["the fast auburn fox leaps", "we acted in accordance with the rules"]
    ref = ["the quick brown fox jumps", "we acted according to the rules"]
    pred = ["the quick red fox leaps", "we acted according to the rules"]
    scores = edit_scores(src, pred, ref)
    assert scores["edit_precision"] == approx(2 / 3)
    assert scores["edit_recall"] == approx(2 / 4)
    assert scores["edit_f05"] == approx(1.25 * (2 / 3) * 0.5 / (0.25 * (2 / 3) + 0.5))
    # identity: no predicted edit -> P = 1.0 by convention, R = 0, F0.5 = 0
    assert edit_scores(src, src, ref) == {"edit_precision": 1.0, "edit_recall": 0.0, "edit_f05": 0.0}
    # nothing to fix and nothing done -> all 1.0
    assert edit_scores(ref, ref, ref) == {"edit_precision": 1.0, "edit_recall": 1.0, "edit_f05": 1.0}
    assert precision_recall_f(0, 3, 0) == (0.0, 1.0, 0.0)
    assert precision_recall_f(0, 0, 0, beta=1.0) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- repaired / exact / clean


SPUN = "the fast auburn fox leaps over the idle dog"  # 4 words spun
ORIG = "the quick brown fox jumps over the lazy dog"


def test_repaired_hand_cases() -> None:
    assert repaired_score([SPUN], [SPUN], [ORIG]) == 0.0  # identity
    assert repaired_score([SPUN], [ORIG], [ORIG]) == 1.0  # perfect
    half = "the quick brown fox leaps over the idle dog"  # 2 of 4 fixed
    assert repaired_score([SPUN], [half], [ORIG]) == approx(0.5)
    worse = "the fast auburn fox leaps across a idle pup"  # 3 more words wrong: 7 of 4
    assert repaired_score([SPUN], [worse], [ORIG]) == approx(1 - 7 / 4)
    assert repaired_score([SPUN], [worse], [ORIG]) < 0


def test_repaired_is_a_corpus_ratio() -> None:
    src = ["a big dog", "the fast auburn fox leaps"]  # 1 + 3 spun words
    ref = ["a large dog", "the quick brown fox jumps"]
    pred = ["a large dog", "the fast auburn fox leaps"]  # 1 fixed, 0 fixed
    assert repaired_score(src, pred, ref) == approx(1 - 3 / 4)  # not the mean of 1.0 and 0.0


def test_repaired_when_nothing_was_spun() -> None:
    clean = ["one two three", "four five"]
    assert repaired_score(clean, clean, clean) == 0.0
    assert repaired_score(clean, ["one two tree", "for fiv"], clean) == -3.0  # -(words damaged)


def test_exact() -> None:
    refs = ["a b", "c d", "e f", "g h"]
    preds = ["  a b\n", "c  d", "e f", "G h"]  # surrounding whitespace ignored, inner/case not
    assert exact_score(preds, refs) == approx(2 / 4)


def test_clean_changed() -> None:
    refs = ["the cat sat on the mat .", "hello world"]  # 7 + 2 words
    outs = ["the cat sat on the rug .", "hello world"]
    assert clean_changed_score(outs, refs) == approx(1 / 9)
    assert clean_changed_score(refs, refs) == 0.0


def test_chrf_and_bleu_are_sacrebleus() -> None:
    assert chrf_score(PREDICTIONS, REFERENCES) == sacrebleu.corpus_chrf(PREDICTIONS, [REFERENCES]).score
    assert bleu_score(PREDICTIONS, REFERENCES) == sacrebleu.corpus_bleu(PREDICTIONS, [REFERENCES]).score
    assert bleu_score(REFERENCES, REFERENCES) == approx(100.0)


# --------------------------------------------------------------------------- compute_metrics


def test_compute_metrics_keys_and_values() -> None:
    got = compute_metrics(SOURCES, PREDICTIONS, REFERENCES)
    keys = ["repaired", "exact", "chrf", "bleu", "edit_precision", "edit_recall", "edit_f05", "n"]
    assert list(got) == keys
    assert got["n"] == 5
    assert got["repaired"] == repaired_score(SOURCES, PREDICTIONS, REFERENCES)
    assert got["exact"] == exact_score(PREDICTIONS, REFERENCES)
    assert got["chrf"] == chrf_score(PREDICTIONS, REFERENCES)
    assert got["bleu"] == bleu_score(PREDICTIONS, REFERENCES)
    assert {k: got[k] for k in ("edit_precision", "edit_recall", "edit_f05")} == edit_scores(
        SOURCES, PREDICTIONS, REFERENCES
    )
    # by hand: spun 4+3+1+0+1 = 9, left 2+0+2+1+0 = 5
    assert got["repaired"] == approx(1 - 5 / 9)
    assert got["exact"] == approx(2 / 5)
    # gold 4+1+1+0+1 = 7 edits, predicted 2+1+1+1+1 = 6, of which 2+1+0+0+1 = 4 right
    assert edit_counts(SOURCES, PREDICTIONS, REFERENCES) == (4, 2, 3)

    with_clean = compute_metrics(SOURCES, PREDICTIONS, REFERENCES, PREDICTIONS_ON_CLEAN)
    assert list(with_clean) == [*keys[:-1], "clean_changed", "n"]
    # one word changed ("large" -> "big") out of 10 + 7 + 10 + 5 + 5 = 37 tokens
    assert with_clean["clean_changed"] == approx(1 / 37)


def test_restoration_scores_match_the_single_functions() -> None:
    got = restoration_scores(SOURCES, PREDICTIONS, REFERENCES)
    assert got == {
        "repaired": repaired_score(SOURCES, PREDICTIONS, REFERENCES),
        "exact": exact_score(PREDICTIONS, REFERENCES),
        **edit_scores(SOURCES, PREDICTIONS, REFERENCES),
        "n": 5,
    }


def test_length_mismatch_and_empty_input() -> None:
    with pytest.raises(ValueError, match="same number of sentences.*predictions=4"):
        compute_metrics(SOURCES, PREDICTIONS[:4], REFERENCES)
    with pytest.raises(ValueError, match="predictions_on_clean=2"):
        compute_metrics(SOURCES, PREDICTIONS, REFERENCES, PREDICTIONS_ON_CLEAN[:2])
    with pytest.raises(ValueError):
        repaired_score(SOURCES[:1], PREDICTIONS, REFERENCES)
    with pytest.raises(ValueError):
        exact_score(PREDICTIONS, REFERENCES[:2])
    with pytest.raises(ValueError):
        clean_changed_score(PREDICTIONS, REFERENCES[:2])
    with pytest.raises(ValueError, match="empty"):
        compute_metrics([], [], [])
    with pytest.raises(TypeError, match="single string"):
        exact_score("abc", "abc")


# --------------------------------------------------------------------------- evaluate modules

_CHILD = textwrap.dedent(
    """
    import json, socket, sys

    attempts = []

    def _deny(*args, **kwargs):
        attempts.append(repr(args)[:200])
        raise OSError("network disabled by test_metrics")

    socket.socket.connect = _deny
    socket.socket.connect_ex = _deny
    socket.create_connection = _deny
    socket.getaddrinfo = _deny

    import evaluate
    from restorer.eval import load_metric, metric_path
    from restorer.eval.repaired import Repaired

    data = json.load(sys.stdin)
    out = {"offline": evaluate.config.HF_EVALUATE_OFFLINE}
    rep = load_metric("repaired")
    out["class"] = type(rep).__module__ + "." + type(rep).__qualname__
    out["repaired"] = rep.compute(
        sources=data["sources"], predictions=data["predictions"], references=data["references"]
    )
    for s, p, r in zip(data["sources"], data["predictions"], data["references"]):
        rep.add_batch(sources=[s], predictions=[p], references=[r])
    out["repaired_batched"] = rep.compute()
    direct = evaluate.load(str(metric_path("clean_changed")), keep_in_memory=True)
    out["clean_changed"] = direct.compute(predictions=data["on_clean"], references=data["references"])
    out["instantiated"] = Repaired(keep_in_memory=True).compute(
        sources=data["sources"], predictions=data["predictions"], references=data["references"]
    )
    out["attempts"] = attempts
    print(json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def evaluate_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Load the metrics in a fresh interpreter: empty HF cache, offline flags, sockets disabled."""
    home = tmp_path_factory.mktemp("hf_home")
    env = dict(os.environ)
    env.update(
        HF_HOME=str(home),
        HF_MODULES_CACHE=str(home / "modules"),
        HF_HUB_OFFLINE="1",
        HF_EVALUATE_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    data = {
        "sources": SOURCES,
        "predictions": PREDICTIONS,
        "references": REFERENCES,
        "on_clean": PREDICTIONS_ON_CLEAN,
    }
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD],
        input=json.dumps(data),
        capture_output=True,
        text=True,
        env=env,
        cwd=home,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["modules_cache"] = home / "modules"
    return result


@pytest.mark.slow
def test_evaluate_loads_offline_from_local_scripts(evaluate_run: dict[str, Any]) -> None:
    assert evaluate_run["attempts"] == []
    assert evaluate_run["offline"] is True
    assert evaluate_run["class"].startswith("evaluate_modules.metrics.repaired.")
    assert evaluate_run["class"].endswith(".repaired.Repaired")
    # evaluate copied the script together with its relative import core.py into the fresh cache
    copied = sorted(p.name for p in (evaluate_run["modules_cache"] / "evaluate_modules").rglob("*.py"))
    assert copied.count("core.py") == 2 and "repaired.py" in copied and "clean_changed.py" in copied


@pytest.mark.slow
def test_evaluate_route_equals_pure_functions(evaluate_run: dict[str, Any]) -> None:
    expected = restoration_scores(SOURCES, PREDICTIONS, REFERENCES)
    assert evaluate_run["repaired"] == expected
    assert evaluate_run["repaired_batched"] == expected
    assert evaluate_run["instantiated"] == expected
    assert evaluate_run["clean_changed"] == {
        "clean_changed": clean_changed_score(PREDICTIONS_ON_CLEAN, REFERENCES)
    }


def test_metric_paths_and_unknown_name() -> None:
    for name in METRIC_NAMES:
        assert metric_path(name).is_file()
    with pytest.raises(ValueError, match="unknown metric 'bleurt'"):
        load_metric("bleurt")
