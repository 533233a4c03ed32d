"""The judge tier: proposals from the inverted tables, the LM scorer (fast = naive), the
judge's decisions, and Restorer with ``--judge``. The LM is a tiny random Llama made in the
tests (conftest ``tiny_lm``); nothing is downloaded."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from restorer.infer.guard import GuardConfig
from restorer.infer.judge import Judge, JudgeConfig, Judged, apply
from restorer.infer.proposals import Candidate, ProposalConfig, Proposer

SENTS = [
    "The firm stated final week that youngsters had been glad.",
    "Folks visit the metropolis as a result of its historical past.",
    "In accordance with the report, the government will act so as to assist.",
    "Short.",
]


@pytest.fixture(scope="module")
def proposer() -> Proposer:
    return Proposer(ProposalConfig(thesaurus_top_k=8))


@pytest.fixture(scope="module")
def scorer(tiny_lm: Path):  # -> LMScorer
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from restorer.infer.lm import LMScorer, LMScorerConfig

    model = AutoModelForCausalLM.from_pretrained(str(tiny_lm), dtype=torch.float32).eval()
    return LMScorer(model, AutoTokenizer.from_pretrained(str(tiny_lm)), LMScorerConfig(max_batch_tokens=256, dtype="fp32"))


# ----------------------------------------------------------------------------- proposals


def _repls(cands: list[Candidate], original: str) -> set[str]:
    return {c.replacement for c in cands if c.original == original}


def test_proposals_invert_tables_with_inflection_and_case(proposer: Proposer) -> None:
    cands = proposer.propose(SENTS[0])
    assert "company" in _repls(cands, "firm")
    assert "said" in _repls(cands, "stated")
    assert "last week" in _repls(cands, "final week")
    assert "children" in _repls(cands, "youngsters")  # plural kept
    assert "were" in _repls(cands, "had been")
    cands = proposer.propose("Youngsters play.")
    assert "Children" in _repls(cands, "Youngsters")  # sentence capital kept
    for c in proposer.propose(SENTS[2]):
        assert SENTS[2][c.start : c.end] == c.original
    assert "according to" in {c.replacement.lower() for c in proposer.propose(SENTS[2])}


def test_proposals_tag_their_source_and_never_touch_digits(proposer: Proposer) -> None:
    cands = proposer.propose("The firm sold 3 homes in 12 months.")
    assert {c.source for c in cands} <= {"table", "thesaurus"}
    assert any(c.source == "table" and c.replacement == "company" for c in cands)
    assert not any(any(ch.isdigit() for ch in c.original + c.replacement) for c in cands)
    assert not proposer.propose("")


def test_style_dictionary_feeds_the_proposals() -> None:
    from restorer.spin.lexicon import Lexicon

    style = Lexicon()
    style.add_literal("style", "quantum", ["zorblax"])
    p = Proposer(ProposalConfig(tables=False, thesaurus=False), styles=[style])
    cands = p.propose("The zorblax computer.")
    assert [(c.original, c.replacement, c.source) for c in cands] == [("zorblax", "quantum", "style")]


# ----------------------------------------------------------------------------- the LM scorer


def _variants(proposer: Proposer) -> tuple[list[str], list[list[str]]]:
    bases = SENTS
    return bases, [[apply(s, [c]) for c in proposer.propose(s)][:12] + [s + " More words."] for s in bases]


@pytest.mark.parametrize("window", [None, 3])
def test_fast_gains_equal_naive_full_rescoring(scorer, proposer: Proposer, window: int | None) -> None:
    bases, variants = _variants(proposer)
    assert sum(map(len, variants)) > 20
    fast = scorer.gains(bases, variants, window)
    scorer.clear()
    scorer.cfg.max_row_tokens = 16  # a sentence's variants split over several packed rows
    try:
        split = scorer.gains(bases, variants, window)
    finally:
        scorer.cfg.max_row_tokens = 192
        scorer.clear()
    naive = scorer.gains_naive(bases, variants, window)
    for s_, f in zip(split, fast, strict=True):
        assert s_ == pytest.approx(f, abs=1e-4)
    for f, n in zip(fast, naive, strict=True):
        assert len(f) == len(n)
        for a, b in zip(f, n, strict=True):
            assert a == pytest.approx(b, abs=1e-4)


def test_the_lean_forward_skips_padding_without_changing_real_tokens(scorer) -> None:
    """Ragged rows: the linear layers run on the real tokens only; those come out as the
    transformers model computes them, one row at a time with no padding."""
    import torch

    rows = scorer.encode([SENTS[0], SENTS[1] + " And then some more words follow here."])
    B, T = len(rows), max(map(len, rows))
    ids = torch.zeros(B, T, dtype=torch.long)
    mask = torch.zeros(B, 1, T, T, dtype=torch.bool)
    valid = torch.zeros(B, T, dtype=torch.bool)
    for r, b in enumerate(rows):
        ids[r, : len(b)] = torch.tensor(b)
        mask[r, 0, : len(b), : len(b)] = torch.tril(torch.ones(len(b), len(b), dtype=torch.bool))
        mask[r, 0, len(b) :, 0] = True
        valid[r, : len(b)] = True
    assert not bool(valid.all())
    with torch.inference_mode():
        hidden, kv = scorer._forward(ids, torch.arange(T).expand(B, T), mask, None, valid)
        for r, b in enumerate(rows):
            ref = scorer.model.model(input_ids=torch.tensor([b])).last_hidden_state[0]
            assert torch.allclose(hidden[r, : len(b)], ref, atol=1e-4)
            assert bool((hidden[r, len(b) :] == 0).all())


def test_a_base_grown_from_a_cached_prefix_equals_a_full_pass(scorer) -> None:
    """The re-check's bases (a sentence with its accepted edits) compute only their tokens from
    where they part from the sentence already passed; their states and scores are a full pass's."""
    import torch

    first = SENTS[0] + " And then some more words follow here."
    grown = [first.replace("more words", "other words"), first + " Even more.", first.replace("follow", "came")]
    scorer.clear()
    scorer._ensure_bases(scorer.encode([first]))
    n0 = scorer.n_forward_tokens
    states = scorer._ensure_bases(scorer.encode(grown))
    fed = scorer.n_forward_tokens - n0
    scorer.clear()
    fresh = scorer._ensure_bases(scorer.encode(grown))
    full = scorer.n_forward_tokens - n0 - fed
    scorer.clear()
    assert fed < full / 2  # only the tokens after the shared prefix went through the LM
    for a, b in zip(states, fresh, strict=True):
        assert a.ids == b.ids
        assert torch.allclose(a.hidden, b.hidden, atol=1e-4)
        assert torch.allclose(a.lp, b.lp, atol=1e-4)
        for (ka, va), (kb, vb) in zip(a.kv, b.kv, strict=True):
            assert torch.allclose(ka, kb, atol=1e-4) and torch.allclose(va, vb, atol=1e-4)


def test_the_fp32_output_layer_in_blocks_equals_the_full_softmax(scorer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp32 output layer gathers the log-sum-exp over blocks of rows and vocabulary; a
    token's log-probability is the full softmax's, with blocks that do not divide the sizes."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    w = scorer.model.lm_head.weight
    hidden = torch.randn(37, w.shape[1])
    targets = torch.randint(0, w.shape[0], (37,))
    want = torch.log_softmax(hidden @ w.T, -1).gather(1, targets[:, None])[:, 0]
    monkeypatch.setattr(type(scorer), "HEAD_ROWS", 8)
    monkeypatch.setattr(type(scorer), "HEAD_VOCAB", 7)
    with torch.inference_mode():
        got = scorer._head_lp(hidden, targets)
    assert w.shape[0] % 7 and 37 % 8  # ragged last blocks on both sides
    assert torch.allclose(got, want, atol=1e-5)
    assert torch.allclose(got, -F.cross_entropy(hidden @ w.T, targets, reduction="none"), atol=1e-5)


def test_exact_gain_is_the_difference_of_sentence_scores(scorer) -> None:
    base, var = SENTS[0], SENTS[0].replace("firm", "company")
    total = scorer.sentence_scores([base, var])
    (g,) = scorer.gains([base], [[var]])
    assert g[0] == pytest.approx(total[1] - total[0], abs=1e-4)
    scorer.clear()


def test_first_gains_are_the_first_changed_token(scorer) -> None:
    import torch

    base, var = SENTS[0], SENTS[0].replace("final", "last")
    (fg,) = scorer.first_gains([base], [[var]])
    scorer.clear()
    b_ids, v_ids = scorer.encode([base, var])
    k = next(i for i, (x, y) in enumerate(zip(b_ids, v_ids, strict=False)) if x != y)
    lps = scorer.token_logprobs([b_ids[: k + 1], v_ids[: k + 1]])
    assert fg[0] == pytest.approx(float(lps[1][-1] - lps[0][-1]), abs=1e-4)
    assert isinstance(lps[0], torch.Tensor)


# ----------------------------------------------------------------------------- the judge


class StubScorer:
    """Gains from a table: (base, variant) -> nats; first gains equal to the gains."""

    def __init__(self, table: dict[tuple[str, str], float]) -> None:
        self.table = table
        self.calls = 0

    def gains(self, bases, variants, window=None):
        self.calls += 1
        return [[self.table.get((b, v), -5.0) for v in vs] for b, vs in zip(bases, variants, strict=True)]

    gains_naive = gains
    first_gains = gains

    def clear(self) -> None:
        pass


def test_judge_accepts_only_what_beats_the_cost_and_never_overlaps() -> None:
    s = "The firm stated it."
    c1 = Candidate(4, 8, "firm", "company", "table")
    c2 = Candidate(4, 8, "firm", "business", "thesaurus", rank=3)
    c3 = Candidate(9, 15, "stated", "said", "table")
    table = {
        (s, apply(s, [c1])): 2.0,  # beats margin 1.0
        (s, apply(s, [c2])): 2.5,  # more gain, but thesaurus cost 1 + 3 * 0.1 on top
        (s, apply(s, [c3])): 0.5,  # below the margin
        (apply(s, [c1]), s): -2.0,  # in context: undoing c1 loses 2 nats
    }
    cfg = JudgeConfig(margin=1.0, thesaurus_cost=1.0, rank_cost=0.1, rounds=2)
    (j,) = Judge(StubScorer(table), cfg).judge([s], [[c1, c2, c3]])
    assert j.accepted == [c1]
    reasons = {v.candidate.replacement: v.reason for v in j.verdicts}
    assert reasons["business"] in ("overlap", "below cost")
    assert reasons["said"] == "below cost"
    v1 = next(v for v in j.verdicts if v.accepted)
    assert v1.gain == pytest.approx(2.0) and 0.5 < v1.confidence < 1.0


def test_judge_recheck_undoes_an_edit_that_no_longer_pays() -> None:
    s = "w a b c"  # (not the first word: that costs more)
    c1 = Candidate(2, 3, "a", "x", "table")
    c2 = Candidate(6, 7, "c", "y", "table")
    both = apply(s, [c1, c2])
    table = {(s, apply(s, [c1])): 3.0, (s, apply(s, [c2])): 3.0,
             (both, apply(s, [c2])): 0.5, (both, apply(s, [c1])): -3.0}  # fmt: skip
    (j,) = Judge(StubScorer(table), JudgeConfig(margin=1.0, rounds=2)).judge([s], [[c1, c2]])
    assert j.accepted == [c2]  # with c2 in, c1 gains only 0.5: undone
    (j1,) = Judge(StubScorer(table), JudgeConfig(margin=1.0, rounds=1)).judge([s], [[c1, c2]])
    assert set(j1.accepted) == {c1, c2}


def test_prefilter_keeps_the_best_first_gains() -> None:
    s = "w0 w1 w2 w3"
    cands = [Candidate(3 * i, 3 * i + 2, f"w{i}", f"v{i}", "table") for i in range(4)]
    table = {(s, apply(s, [c])): float(i + 2) for i, c in enumerate(cands)}
    (j,) = Judge(StubScorer(table), JudgeConfig(margin=1.0, keep=2, rounds=1)).judge([s], [cands])
    assert {c.replacement for c in j.accepted} == {"v2", "v3"}
    assert sum(v.reason == "pre-filter" for v in j.verdicts) == 2
    assert all(v.gain is None for v in j.verdicts if v.reason == "pre-filter")


def test_fast_and_naive_judges_make_the_same_decisions(scorer, proposer: Proposer) -> None:
    cands = [proposer.propose(s) for s in SENTS]
    cfg = JudgeConfig(margin=0.0, thesaurus_cost=0.0, rank_cost=0.0, keep=6, rounds=2)
    fast = Judge(scorer, cfg).judge(SENTS, cands)
    scorer.clear()
    naive = Judge(scorer, cfg, naive=True).judge(SENTS, cands)
    scorer.clear()
    assert any(j.accepted for j in fast)  # with no cost a random LM takes some edits
    for f, n in zip(fast, naive, strict=True):
        assert [v.accepted for v in f.verdicts] == [v.accepted for v in n.verdicts]
        for a, b in zip(f.verdicts, n.verdicts, strict=True):
            assert (a.gain is None) == (b.gain is None)
            if a.gain is not None:
                assert a.gain == pytest.approx(b.gain, abs=1e-3)
    assert not math.isnan(sum(v.gain or 0.0 for j in fast for v in j.verdicts))


# ----------------------------------------------------------------------------- Restorer


@pytest.fixture(scope="module")
def judged_model(tiny_model: Path, tiny_lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny seq2seq model with a restorer.json naming the tiny LM as its judge, at no cost
    (so the random LM takes edits)."""
    out = tmp_path_factory.mktemp("judged") / "model"
    shutil.copytree(tiny_model, out)
    spec = {"lm": str(tiny_lm), "proposers": ["tables"],
            "judge": {"margin": -100.0, "rounds": 1}}  # fmt: skip
    (out / "restorer.json").write_text(json.dumps({"judge": spec}))
    return out


def test_restorer_uses_the_judge_its_directory_names(judged_model: Path) -> None:
    from restorer import Restorer

    r = Restorer.from_pretrained(judged_model, device="cpu", backend="torch")
    assert r.judge is not None
    text = "  The firm stated final week that youngsters had been glad.\n\nSee https://example.com/firm now."
    exp = r.explain(text)
    assert exp.edits, "with no cost every table edit pays"
    assert {e.source for e in exp.edits} == {"table"}
    assert all(e.gain is not None for e in exp.edits)
    assert exp.text.startswith("  ") and "\n\n" in exp.text and "https://example.com/firm" in exp.text
    # the output differs from the input only inside accepted edits
    rebuilt, pos = [], 0
    for e in sorted(exp.edits, key=lambda e: e.start):
        rebuilt += [text[pos : e.start], e.replacement]
        pos = e.end
    assert "".join([*rebuilt, text[pos:]]) == exp.text
    d = exp.to_dict()
    assert {"source", "gain"} <= set(d["edits"][0])


def test_judge_none_restores_with_the_seq2seq_model_alone(judged_model: Path, tiny_model: Path) -> None:
    from restorer import Restorer

    r = Restorer.from_pretrained(judged_model, device="cpu", backend="torch", judge="none")
    old = Restorer.from_pretrained(tiny_model, device="cpu", backend="torch")
    assert r.judge is None and old.judge is None
    assert r.restore(SENTS) == old.restore(SENTS)


def test_guard_refuses_protected_candidates(judged_model: Path) -> None:
    from restorer import Restorer

    r = Restorer.from_pretrained(judged_model, device="cpu", backend="torch")
    s = "Email firm@example.com about the firm."
    exp = r.explain(s)
    assert "firm@example.com" in exp.text
    assert all(not (e.start < 22 and e.end > 6) for e in exp.edits)
    assert any(e.reason for e in exp.rejected)
    off = Restorer.from_pretrained(judged_model, device="cpu", backend="torch", guard=GuardConfig(enabled=False))
    assert off.judge is not None


def test_bad_judge_section_is_a_clear_error(tiny_model: Path, tmp_path: Path) -> None:
    from restorer import Restorer

    d = tmp_path / "m"
    shutil.copytree(tiny_model, d)
    (d / "restorer.json").write_text(json.dumps({"judge": {"lm": "x", "proposers": ["oracle"]}}))
    with pytest.raises(ValueError, match="unknown proposer"):
        Restorer.from_pretrained(d, device="cpu", backend="torch")
    (d / "restorer.json").write_text(json.dumps({"judge": {"lm": "x", "scorer": {"dtyp": "bf16"}}}))
    with pytest.raises(ValueError, match="unknown judge scorer setting"):
        Restorer.from_pretrained(d, device="cpu", backend="torch")
    (d / "restorer.json").write_text(json.dumps({"judge": {"lm": "x", "scorer": {"max_batch_tokens": "1k"}}}))
    with pytest.raises(ValueError, match="max_batch_tokens must be a whole number"):
        Restorer.from_pretrained(d, device="cpu", backend="torch")


def test_bf16_scorer_is_close_to_fp32(tiny_lm: Path, proposer: Proposer) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from restorer.infer.lm import LMScorer, LMScorerConfig, resolve_dtype

    tok = AutoTokenizer.from_pretrained(str(tiny_lm))
    bases, variants = _variants(proposer)
    gains = {}
    for dt in ("fp32", "bf16"):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_lm), dtype=torch.float32).eval()
        sc = LMScorer(model, tok, LMScorerConfig(dtype=dt))
        assert sc.dtype == resolve_dtype(dt, "cpu")
        gains[dt] = [g for row in sc.gains(bases, variants, 6) for g in row]
    diffs = [abs(a - b) for a, b in zip(gains["fp32"], gains["bf16"], strict=True)]
    assert max(diffs) < 0.5 and sum(diffs) / len(diffs) < 0.1
    with pytest.raises(ValueError, match="unknown LM dtype"):
        resolve_dtype("int3", "cpu")


@pytest.mark.parametrize(("avx512_bf16", "amx", "want"), [(False, False, "fp32"), (True, False, "bf16"), (False, True, "bf16")])
def test_auto_dtype_is_bf16_only_where_the_cpu_multiplies_it_natively(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, want: str
) -> None:
    """oneDNN accepts bf16 on any AVX512 CPU and emulates it there at a third of fp32's speed:
    ``auto`` must not take its word for it."""
    import torch

    from restorer.infer.lm import resolve_dtype

    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_dtype("auto", "cpu") == (torch.bfloat16 if want == "bf16" else torch.float32)


def test_cli_explain_reports_the_judge_and_judge_none_turns_it_off(
    judged_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from restorer.cli import main

    src = tmp_path / "in.txt"
    src.write_text("The firm stated final week.\n\n  Youngsters had been glad.\n", encoding="utf-8")
    assert main(["restore", str(src), "--model", str(judged_model), "--backend", "torch", "--explain"]) == 0
    out, err = capsys.readouterr()
    assert out.count("\n") == 3 and "[-" in out and "{+" in out
    assert "judge:" in err and "(table, " in err and "nats" in err
    jl = tmp_path / "in.jsonl"
    jl.write_text(json.dumps({"text": "The firm stated final week."}) + "\n", encoding="utf-8")
    assert main(["restore", str(jl), "--format", "jsonl", "--model", str(judged_model), "--backend", "torch", "--explain"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["edits"] and all(e["source"] == "table" and isinstance(e["gain"], float) for e in row["edits"])
    assert main(["restore", str(src), "--model", str(judged_model), "--backend", "torch", "--judge", "none"]) == 0
    out, err = capsys.readouterr()
    assert "judge:" not in err and out.count("\n") == 3


def test_unknown_judge_name_is_a_clear_cli_error(tiny_model: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from restorer.cli import main

    monkeypatch.setenv("RESTORER_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "in.txt"
    src.write_text("The firm stated.\n", encoding="utf-8")
    assert main(["restore", str(src), "--model", str(tiny_model), "--judge", "no-such-lm"]) == 2
    assert "no-such-lm" in capsys.readouterr().err


def test_loose_proposers_never_touch_names_or_delete_freely() -> None:
    from restorer.infer.decoded import Decoded
    from restorer.infer.pipeline import JudgeSpec, JudgeTier

    tier = JudgeTier(None, JudgeSpec(proposers=["tables", "seq2seq"]))
    s = "Manager Erik ten Hag stated the big match was won."
    ok, refused = tier.candidates(s, Decoded("Manager Erik ten Witch said the match was won."), GuardConfig())
    assert any(c.original == "stated" and c.replacement == "said" and c.agree for c in ok)
    assert not any("Hag" in c.original for c in ok)
    reasons = {(e.original.strip(), e.replacement.strip()): e.reason for e in refused}
    assert reasons[("Hag", "Witch")] == "capitalised word"
    assert not any(c.original.strip() == "big" and not c.replacement.strip() for c in ok)
    # a capital that opens the sentence (after a quote) is not a name by position
    ok2, _ = tier.candidates("“Folks said so.", Decoded("“People said so."), GuardConfig())
    assert any(c.original == "Folks" and c.replacement == "People" for c in ok2)


def test_a_sentence_first_word_costs_more() -> None:
    """The LM has no left context for a sentence's first word (after any opening quote or
    bracket), so changing it costs ``first_word_cost`` more; the same edit inside pays."""
    cfg = JudgeConfig(margin=1.0, first_word_cost=2.0, rounds=1)
    for s, start in [("Breakfast costs extra.", 0), ("“Breakfast costs extra.”", 1), ("Our breakfast costs extra.", 4)]:
        c = Candidate(start, start + 9, s[start : start + 9], "Lunch", "thesaurus")
        inside = start == 4
        assert cfg.cost(c, s) == pytest.approx(cfg.cost(c) + (0.0 if inside else 2.0))
        gain = cfg.cost(c) + 1.0  # pays inside a sentence, not at its start
        (j,) = Judge(StubScorer({(s, apply(s, [c])): gain}), cfg).judge([s], [[c]])
        assert bool(j.accepted) == inside


# ----------------------------------------------------------------------------- the seq2seq prior


def test_seq2seq_prior_is_the_first_changed_token_under_teacher_forcing(tiny_model: Path, tmp_path: Path) -> None:
    """One copy-forced pass per sentence gives, for every variant, log P(variant token) - log
    P(spun token) at the first token where they part: checked against a forced pass of each
    variant itself (whose prefix up to there is the same)."""
    import torch

    from restorer.infer.seq2seq_prior import Seq2SeqPrior

    prior = Seq2SeqPrior.load(tiny_model)
    assert prior is not None
    s = SENTS[0]
    variants = [s.replace("firm", "company"), s.replace("final week", "last week"), s, s.rstrip(".")]
    (got,) = prior.first_gains([s], [variants])
    x = prior.tok(s)["input_ids"]
    for v_text, g in zip(variants, got, strict=True):
        v = prior.tok(v_text)["input_ids"]
        b = next((k for k in range(min(len(v), len(x))) if v[k] != x[k]), None)
        if b is None:  # the same sentence: no prior
            assert g == 0.0
            continue
        with torch.inference_mode():
            logits = prior.model(input_ids=torch.tensor([x]),
                                 decoder_input_ids=torch.tensor([[prior.start_id, *v[:-1]]])).logits[0]  # fmt: skip
        lp = torch.log_softmax(logits[b], -1)
        assert g == pytest.approx(float(lp[v[b]] - lp[x[b]]), abs=1e-4)
        assert g != 0.0
    # batched with other sentences: the same numbers
    (_, again, _) = prior.first_gains([SENTS[1], s, "x " * 200], [[SENTS[1].upper()], variants, ["y"]])
    assert again == pytest.approx(got, abs=1e-4)
    # a directory without transformers weights (a CTranslate2 export alone) has no prior
    (tmp_path / "config.json").write_text("{}")
    assert Seq2SeqPrior.load(tmp_path) is None


class StubPrior:
    def __init__(self, value: dict[str, float]) -> None:
        self.value = value

    def first_gains(self, sentences, variants):
        return [[self.value.get(v, 0.0) for v in vs] for vs in variants]


def test_the_prior_moves_the_cost_clipped() -> None:
    s = "The firm stated it."
    c1 = Candidate(4, 8, "firm", "company", "table")
    c2 = Candidate(9, 15, "stated", "said", "table")
    v1, v2 = apply(s, [c1]), apply(s, [c2])
    cfg = JudgeConfig(margin=3.0, prior_weight=0.5, prior_min=-4.0, prior_max=2.0, prior_offset=1.0, rounds=1)
    scorer = StubScorer({(s, v1): 2.5, (s, v2): 2.5})
    (j,) = Judge(scorer, cfg, prior=StubPrior({v1: 10.0, v2: -50.0})).judge([s], [[c1, c2]])
    by = {v.candidate.replacement: v for v in j.verdicts}
    assert by["company"].prior == pytest.approx(1.0 + 0.5 * 2.0)  # clipped at prior_max
    assert by["said"].prior == pytest.approx(1.0 + 0.5 * -4.0)  # clipped at prior_min
    assert by["company"].cost == pytest.approx(3.0 - 2.0) and by["said"].cost == pytest.approx(3.0 + 1.0)
    assert j.accepted == [c1]  # the same LM gain: the prior decides
    (j0,) = Judge(scorer, cfg).judge([s], [[c1, c2]])  # no prior: the plain costs
    assert j0.accepted == [] and all(v.prior is None for v in j0.verdicts)


def test_a_style_models_prior_vouches_only_for_the_styles_candidates() -> None:
    """A style's fine-tuned seq2seq model vouches next to the base's: for the style's candidates
    the higher prior counts; the base's candidates keep the base prior alone (no forgetting)."""
    s = "The firm stated it."
    c1 = Candidate(4, 8, "firm", "company", "table")
    c2 = Candidate(9, 15, "stated", "said", "style", style=True)
    v1, v2 = apply(s, [c1]), apply(s, [c2])
    cfg = JudgeConfig(margin=3.0, prior_min=-4.0, prior_max=4.0, rounds=1)
    scorer = StubScorer({(s, v1): 1.0, (s, v2): 1.0})
    base, style = StubPrior({v1: -3.0, v2: -3.0}), StubPrior({v1: 4.0, v2: 2.5})
    (j,) = Judge(scorer, cfg, prior=[base, style]).judge([s], [[c1, c2]])
    assert {v.candidate.replacement: v.prior for v in j.verdicts} == {"company": -3.0, "said": 2.5}
    assert j.accepted == [c2]
    (alone,) = Judge(scorer, cfg, prior=base).judge([s], [[c1, c2]])
    assert alone.accepted == [] and Judge(scorer, cfg, prior=[base, style]).prior is base


def test_a_style_models_decode_adds_its_edits_as_the_styles_candidates(judged_model: Path) -> None:
    from restorer import Restorer
    from restorer.infer.decoded import Decoded
    from restorer.infer.guard import GuardConfig

    tier = Restorer.from_pretrained(judged_model, device="cpu", backend="torch").judge
    s = "The firm stated it was glad."
    plain, _ = tier.candidates(s, Decoded(s), GuardConfig())
    base_only, _ = tier.candidates(s, Decoded("The firm said it was glad."), GuardConfig())
    both, _ = tier.candidates(s, Decoded("The firm said it was glad."), GuardConfig(),
                              [Decoded("The company stated it was blue.")])  # fmt: skip
    new = {(c.original, c.replacement, c.source, c.agree, c.style) for c in both} - {
        (c.original, c.replacement, c.source, c.agree, c.style) for c in base_only}  # fmt: skip
    assert new == {("glad", "blue", "seq2seq", False, True)}  # only the style's model proposed it
    by = {(c.original, c.replacement): c for c in both}
    # the style's model agreeing with a base table row changes nothing of the base's candidates
    assert not by[("firm", "company")].agree and not by[("firm", "company")].style
    assert {c for c in both if not c.style} == set(base_only) and not any(c.agree for c in plain)
    assert sum(c.replacement == "said" for c in both) == sum(c.replacement == "said" for c in base_only)  # no duplicate
    agreed, _ = tier.candidates(s, Decoded("The company stated it was glad."), GuardConfig())
    assert {(c.original, c.replacement): c for c in agreed}[("firm", "company")].agree  # the base model's agreement counts


# ----------------------------------------------------------------------------- base evidence


def test_proposal_evidence_counts_where_a_row_was_right() -> None:
    from restorer.train.finetune.mining import proposal_evidence

    tables = Proposer(ProposalConfig(thesaurus=False))
    pairs = [{"spun": "The firm stated it.", "original": "The company said it."},
             {"spun": "The firm stated it.", "original": "The firm stated it."}]  # fmt: skip
    ev = proposal_evidence(pairs, tables, ("table",))
    assert ev[("stated", "said")] == (1, 2)
    assert ev[("firm", "company")] == (1, 2)
    assert not any(k[0] == "the" for k in ev)  # nothing proposed there
    assert proposal_evidence(pairs, tables, ("thesaurus",)) == {}


def test_base_evidence_is_relative_to_its_source_and_moves_the_cost() -> None:
    counts = {("stated", "said"): (18, 20), ("firm", "company"): (0, 20), ("zzz", "no such row"): (5, 5)}
    p = Proposer(ProposalConfig(thesaurus=False), base_evidence=counts)
    ev = {(c.original, c.replacement): c.evidence for c in p.propose("The firm stated final week.")}
    assert ev[("stated", "said")] > 0 > ev[("firm", "company")]
    assert ev[("final", "last")] == 0.0  # never seen: the source's own rate
    assert ("zzz", "no such row") not in p.evidence
    # a row seen often moves further than one seen rarely at the same rate
    few = Proposer(ProposalConfig(thesaurus=False), base_evidence={("stated", "said"): (9, 10), ("firm", "company"): (0, 10)})
    assert 0 < few.evidence[("stated", "said")] < p.evidence[("stated", "said")]
    sure = next(c for c in p.propose("He stated it.") if c.replacement == "said")
    cfg = JudgeConfig(evidence_weight=1.0, evidence_max=0.5)
    assert cfg.cost(sure) == pytest.approx(cfg.margin + cfg.table_cost - 0.5)
    assert JudgeConfig().cost(sure) == JudgeConfig().margin + JudgeConfig().table_cost  # weight 0: off


def test_a_model_directory_names_its_evidence_file(judged_model: Path, tmp_path: Path) -> None:
    from restorer import Restorer
    from restorer.infer.styles import write_evidence

    d = tmp_path / "m"
    shutil.copytree(judged_model, d)
    spec = json.loads((d / "restorer.json").read_text())
    spec["judge"]["evidence"] = "evidence.tsv"
    (d / "restorer.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="cannot read the base rows"):
        Restorer.from_pretrained(d, device="cpu", backend="torch")
    write_evidence(d / "evidence.tsv", {("stated", "said"): (18, 20), ("firm", "company"): (0, 20)})
    r = Restorer.from_pretrained(d, device="cpu", backend="torch")
    assert r.judge.spec.evidence == "evidence.tsv"
    assert r.judge.proposer.evidence[("stated", "said")] > 0


def test_an_edit_alone_in_its_sentence_pays_without_the_evidence() -> None:
    s = "w a b c"
    c1 = Candidate(2, 3, "a", "x", "table", evidence=2.0)
    c2 = Candidate(6, 7, "c", "y", "table", evidence=2.0)
    both = apply(s, [c1, c2])
    # each gains 2 nats, below margin 3 without its evidence, above it with (weight 1: 2 nats off)
    table = {(s, apply(s, [c1])): 2.0, (s, apply(s, [c2])): 2.0,
             (both, apply(s, [c2])): -2.0, (both, apply(s, [c1])): -2.0, (apply(s, [c1]), s): -2.0}  # fmt: skip
    gated = JudgeConfig(margin=3.0, rounds=2, evidence_weight=1.0, evidence_alone=0.0)
    (j,) = Judge(StubScorer(table), gated).judge([s], [[c1, c2]])
    assert set(j.accepted) == {c1, c2}, "two edits keep each other company"
    (j,) = Judge(StubScorer(table), gated).judge([s], [[c1]])
    assert j.accepted == [] and j.verdicts[0].reason.startswith("alone")
    (j,) = Judge(StubScorer(table), JudgeConfig(margin=3.0, rounds=2, evidence_weight=1.0)).judge([s], [[c1]])
    assert j.accepted == [c1], "without evidence_alone the evidence counts in full"
    lone = JudgeConfig(margin=1.0, rounds=2, alone_cost=1.5)  # gain 2 > margin 1, < 1 + 1.5 alone
    (j,) = Judge(StubScorer(table), lone).judge([s], [[c1]])
    assert j.accepted == [] and j.verdicts[0].reason.startswith("alone")
    (j,) = Judge(StubScorer(table), lone).judge([s], [[c1, c2]])
    assert set(j.accepted) == {c1, c2}
    # two edits each pay pair_cost more; the weaker goes first, then the other is alone
    pair = JudgeConfig(margin=1.0, rounds=2, alone_cost=1.5, pair_cost=1.5)
    (j,) = Judge(StubScorer(table), pair).judge([s], [[c1, c2]])
    assert j.accepted == [] and sorted(v.reason.split(":")[0] for v in j.verdicts) == ["alone", "pair"]
    (j,) = Judge(StubScorer(table), replace(pair, alone_cost=0.0)).judge([s], [[c1, c2]])
    assert len(j.accepted) == 1  # the one left is alone, and alone pays nothing more here
    (j,) = Judge(StubScorer(table), replace(pair, pair_cost=0.5)).judge([s], [[c1, c2]])
    assert set(j.accepted) == {c1, c2} and all(v.cost == 1.5 for v in j.verdicts)


def test_few_edits_cost_more_in_a_long_sentence() -> None:
    """``few_per_word``: a lone edit's extra cost grows with the sentence's words over
    ``few_words``, and never falls under it."""
    c = Candidate(2, 3, "a", "x", "table")
    cfg = JudgeConfig(margin=1.0, rounds=1, alone_cost=2.0, pair_cost=1.0, few_per_word=0.5, few_words=4)
    assert cfg.alone_extra(c, 1, 4) == 2.0 and cfg.alone_extra(c, 1, 6) == 3.0 and cfg.alone_extra(c, 1, 2) == 2.0
    assert cfg.alone_extra(c, 1, 0) == 2.0 and cfg.alone_extra(c, 2, 6) == 2.0 and cfg.alone_extra(c, 3, 60) == 0.0
    assert cfg.alone_extra(c, 1) == 2.0 and replace(cfg, few_per_word=0.0).alone_extra(c, 1, 60) == 2.0
    assert cfg.alone_extra(replace(c, source="style"), 1, 60) == 0.0
    # gain 3.5: pays margin 1 + alone 2 in a 4-word sentence, not 1 + 3 in a 6-word one
    for s, ok in (("w a b c", True), ("w a b c d e", False)):
        (j,) = Judge(StubScorer({(s, apply(s, [c])): 3.5}), cfg).judge([s], [[c]])
        assert (j.accepted == [c]) is ok
        assert ok or j.verdicts[0].reason.startswith("alone")


def test_a_style_edit_keeps_its_own_calibration_only_in_short_inputs() -> None:
    """``style_alone_words``: a style's lone edit pays no alone cost in a short input (its own
    phrases), and the base's alone cost (and, with ``style_evidence_alone``, loses its evidence)
    in a longer one, a sentence of other text."""
    st = Candidate(2, 3, "a", "x", "style", evidence=2.0)
    cfg = JudgeConfig(margin=1.0, rounds=1, alone_cost=2.0, pair_cost=1.0, style_weight=1.5, style_alone_words=4)
    assert cfg.alone_extra(st, 1, 4) == 0.0 and cfg.alone_extra(st, 1, None) == 0.0
    assert cfg.alone_extra(st, 1, 5) == 2.0 and cfg.alone_extra(st, 2, 5) == 1.0 and cfg.alone_extra(st, 3, 50) == 0.0
    assert replace(cfg, style_evidence_alone=True).alone_extra(st, 1, 5) == 2.0 + 1.5 * 2.0
    assert replace(cfg, style_alone_words=None).alone_extra(st, 1, 50) == 0.0  # the old rule: never
    # end to end: the same lone style edit with gain 2.5 - (margin 1 - 1.5 * 2 evidence) is taken
    # in a 4-word phrase and left in a 6-word sentence (evidence gone: 1 + 2 alone > 2.5)
    strict = replace(cfg, style_evidence_alone=True)
    for s, ok in (("w a b c", True), ("w a b c d e", False)):
        (j,) = Judge(StubScorer({(s, apply(s, [st])): 2.5}), strict).judge([s], [[st]])
        assert (j.accepted == [st]) is ok
        assert ok or j.verdicts[0].reason.startswith("alone")


def _judged(sentence: str, *edits: tuple[str, str, str, float]) -> Judged:
    """A judged sentence with accepted edits (word, replacement, source, net)."""
    from restorer.infer.judge import Verdict

    vs = []
    for word, repl, source, net in edits:
        at = sentence.index(word)
        vs.append(Verdict(Candidate(at, at + len(word), word, repl, source), net + 1.0, 1.0, accepted=True))
    return Judged(sentence, vs)


def test_a_document_that_looks_clean_raises_the_bar_for_its_edits() -> None:
    filler = ["The committee met again on Tuesday and agreed on the budget for next year."] * 9  # 15 words each
    cfg = JudgeConfig(document_spin=0.02, document_words=100, document_cost=6.0)

    def gate(doc: list[Judged], config: JudgeConfig = cfg) -> list[Judged]:
        Judge(StubScorer({}), config).gate_document(doc)
        return doc

    # 2 of 145 words edited: clean-looking; the weak edit goes, the strong one stays (paying 6 more)
    doc = gate([_judged(f, ) for f in filler] + [
        _judged("A dozen youngsters sang in the hall.", ("youngsters", "children", "table", 3.0)),
        _judged("Every pupil gets a book.", ("pupil", "student", "table", 9.0))])  # fmt: skip
    weak, strong = doc[-2].verdicts[0], doc[-1].verdicts[0]
    assert not weak.accepted and weak.reason.startswith("document looks clean")
    assert strong.accepted and strong.net == pytest.approx(3.0)
    # a style's edits keep their own calibration
    doc = gate([_judged(f) for f in filler] + [_judged("A counterfeit consciousness.", ("counterfeit", "artificial", "style", 1.0))])
    assert doc[-1].verdicts[0].accepted
    # a spun document (many words edited) and a short one are left alone
    spun = [_judged(f, ("committee", "board", "table", 1.0), ("agreed", "settled", "table", 1.0)) for f in filler]
    assert all(v.accepted for j in gate(spun) for v in j.verdicts)
    short = gate([_judged("A dozen youngsters sang in the hall.", ("youngsters", "children", "table", 3.0))])
    assert short[0].verdicts[0].accepted
    off = gate([_judged(f) for f in filler] + [_judged("A dozen youngsters sang.", ("youngsters", "children", "table", 3.0))],
               JudgeConfig())  # fmt: skip
    assert off[-1].verdicts[0].accepted, "off by default: a model directory turns it on"


def test_documents_are_gated_one_by_one_or_together(judged_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from restorer.infer import Restorer

    r = Restorer.from_pretrained(judged_model, device="cpu", threads=1)
    seen: list[list[str]] = []
    monkeypatch.setattr(r.judge.judge, "gate_document", lambda doc: seen.append([j.sentence for j in doc]))
    texts = ["The firm stated it. It was final.", "Youngsters sang."]
    r.explain(texts)
    assert seen == [["The firm stated it.", "It was final."], ["Youngsters sang."]]
    seen.clear()
    r.restore(texts, together=True)
    assert seen == [["The firm stated it.", "It was final.", "Youngsters sang."]]
    with pytest.raises(ValueError, match="document numbers"):
        r.explain_sentences(["One.", "Two."], [0])


def test_the_cost_floor_stops_edits_the_lm_finds_no_likelier() -> None:
    """Priors (the evidence, the seq2seq prior, agreement) can take an edit's cost below zero,
    so that it goes in though the LM prefers the original; ``cost_floor`` forbids that."""
    s = "w a b c"
    c1 = Candidate(2, 3, "a", "x", "table", evidence=3.0)
    table = {(s, apply(s, [c1])): -1.0, (apply(s, [c1]), s): 1.0}  # the LM prefers the original
    cfg = JudgeConfig(margin=1.0, rounds=1, evidence_weight=1.0)  # cost 1 - 3 = -2: net +1
    (j,) = Judge(StubScorer(table), cfg).judge([s], [[c1]])
    assert j.accepted == [c1]
    (j,) = Judge(StubScorer(table), replace(cfg, cost_floor=0.0)).judge([s], [[c1]])
    assert j.accepted == [] and j.verdicts[0].cost == 0.0
    style = Candidate(2, 3, "a", "x", "style", evidence=3.0)  # a style keeps its own calibration
    (j,) = Judge(StubScorer(table), replace(cfg, cost_floor=0.0, style_weight=1.0)).judge([s], [[style]])
    assert j.accepted == [style]


def test_a_styles_one_word_edits_can_have_their_own_floor() -> None:
    """A style's evidence can carry a one-word edit the LM does not want ("information" ->
    "knowledge" in clean news text); ``style_word_floor`` stops that, and leaves its phrase
    rows alone."""
    s = "w a b c d"
    word = Candidate(2, 3, "a", "x", "style", evidence=3.0)
    phrase = Candidate(6, 9, "c d", "y", "style", evidence=3.0)
    table = {(s, apply(s, [word])): -1.0, (s, apply(s, [phrase])): -1.0}
    cfg = JudgeConfig(margin=1.0, rounds=1, style_weight=1.0)  # cost 1 - 3 = -2: net +1 each
    (j,) = Judge(StubScorer(table), cfg).judge([s], [[word, phrase]])
    assert set(j.accepted) == {word, phrase}
    (j,) = Judge(StubScorer(table), replace(cfg, style_word_floor=0.0)).judge([s], [[word, phrase]])
    assert j.accepted == [phrase]
