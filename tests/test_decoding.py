"""Copy-speculative decoding gives exactly greedy decoding's output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from restorer.infer.decoders import greedy_decode, speculative_decode
from restorer.infer.drafting import draft

ROOT = Path(__file__).resolve().parent.parent


def test_draft_copies_the_source_after_the_last_token() -> None:
    src = [10, 11, 12, 13, 14, 1]
    assert draft(src, [], 0, 3) == ([10, 11, 12], 0)
    assert draft(src, [10, 11], 0, 3) == ([12, 13, 14], 2)
    # a rewritten token the source does not have: no draft
    assert draft(src, [10, 99], 1, 3) == ([], 1)
    # the longer matching context wins: a repeating output continues its repetition
    assert draft([5, 6, 7, 1], [5, 8, 9, 8, 9, 8], 1, 2)[0] == [9, 8]
    assert draft(src, [10, 11], 0, 0) == ([], 0)


def _sentences(tiny_model: Path) -> list[str]:
    from restorer.data import make_pairs
    from restorer.spin.spinner import Spinner

    corpus = tiny_model.parent.parent / "corpus" / "train.jsonl"
    texts = [json.loads(x)["text"] for x in corpus.read_text(encoding="utf-8").splitlines()[:60]]
    spun = [p["spun"] for p in make_pairs(texts, Spinner.from_style("mixed"), seed=3)]
    return spun + texts[:20] + ["Short.", "A “quoted” line — with 12 digits & émojis 🙂."]


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_speculative_equals_greedy_on_the_tiny_model(tiny_model: Path, batch_size: int) -> None:
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(str(tiny_model)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = _sentences(tiny_model)
    greedy = greedy_decode(model, tok, texts, batch_size, max_new_tokens=48)
    spec = speculative_decode(model, tok, texts, batch_size, max_new_tokens=48)
    assert [g.token_ids for g in greedy] == [s.token_ids for s in spec]
    assert [g.text for g in greedy] == [s.text for s in spec]
    for g, s in zip(greedy, spec, strict=True):
        assert g.token_probs == pytest.approx(s.token_probs, abs=1e-4)
        assert g.token_spans == s.token_spans


def test_speculative_equals_greedy_on_the_shipped_model() -> None:
    from restorer.infer import Restorer, default_model_dir

    if not (default_model_dir() / "config.json").exists():
        pytest.skip("no shipped model")
    r = Restorer.from_pretrained(device="cpu", backend="torch", judge="none")
    pairs = [json.loads(x) for x in (ROOT / "tests" / "golden" / "default.jsonl").read_text().splitlines()]
    text = (ROOT / "examples" / "spun_article.txt").read_text(encoding="utf-8")
    from restorer.text import document_spans

    sents = [p["input"] for p in pairs] + [text[a:b] for a, b in document_spans(text)]
    greedy = greedy_decode(r.seq2seq.model, r.tokenizer, sents, 8)
    spec = speculative_decode(r.seq2seq.model, r.tokenizer, sents, 8)
    assert [g.text for g in greedy] == [s.text for s in spec]


def _prefix_spans(tok: object, ids: list[int], text: str) -> list[tuple[int, int]]:
    """The spans by prefix decodes alone (the slow reference of token_char_spans)."""
    import restorer.infer.decoded as d

    original = d._piece_ends
    d._piece_ends = lambda *a: None  # type: ignore[assignment]
    try:
        return d.token_char_spans(tok, ids, text)
    finally:
        d._piece_ends = original  # type: ignore[assignment]


def test_token_spans_from_pieces_equal_the_prefix_decodes(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    from restorer.infer.decoded import _piece_ends, token_char_spans

    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = [*_sentences(tiny_model), "  two  spaces", "Ünïcödé ß ½ and ☃ snow", "x"]
    fast = 0
    for s in texts:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        text = tok.decode(ids, skip_special_tokens=True)
        spans = token_char_spans(tok, ids, text)
        assert spans == _prefix_spans(tok, ids, text), s
        assert all(0 <= a <= b <= len(text) for a, b in spans)
        assert all(not text[a:b].startswith(" ") for a, b in spans)
        fast += _piece_ends(tok, ids, text) is not None
    assert fast >= len(texts) // 2  # the fast path is the common one
    # byte-fallback pieces (an emoji the tiny vocabulary lacks) take the prefix decodes
    ids = tok("🙂", add_special_tokens=False)["input_ids"]
    assert any(p.startswith("<0x") for p in tok.convert_ids_to_tokens(ids))
    assert _piece_ends(tok, ids, tok.decode(ids)) is None


def test_speculative_with_parallel_batches_equals_greedy_and_restores_threads(tiny_model: Path) -> None:
    import threading

    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(str(tiny_model)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_model))
    texts = _sentences(tiny_model)
    greedy = [d.text for d in greedy_decode(model, tok, texts, 8, max_new_tokens=48)]
    before = torch.get_num_threads()
    results: list[list[str]] = []

    def run() -> None:  # several callers at once, each decoding 2 batches at a time
        out = speculative_decode(model, tok, texts, 8, max_new_tokens=48, workers=2)
        results.append([d.text for d in out])

    callers = [threading.Thread(target=run) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert results == [greedy] * 3
    assert torch.get_num_threads() == before
